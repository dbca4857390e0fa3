//! Not a step of a state machine: the stack's notification topic invokes it (SNS → Lambda)
//! for every stage notification, and it posts the notification's chat line
//! (`refresh_core::notification::chat_text`) to the chat webhook.
//!
//! The webhook URL is read from its secret (`CHAT_WEBHOOK_SECRET_ID`) on every invocation,
//! so a rotated URL takes effect at once and an emptied secret turns forwarding off. The URL
//! never reaches a log line, an error or the output. A post that fails is retried a few times
//! and then reported as `ChatWebhookFailed`; nothing here can touch a refresh (the state
//! machines published and went on long before).

use crate::chat::{self, RetryPolicy};
use crate::runtime::{parse_input, StepFailure};
use crate::Context;
use refresh_core::config::vars;
use refresh_core::error::{ErrorKind, StepError, StepResult};
use refresh_core::notification::{chat_text, ChatWebhook};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// The SNS event (AWS's shape: unknown fields are allowed, AWS adds them).
#[derive(Debug, Deserialize)]
pub struct SnsEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SnsRecord>,
}

#[derive(Debug, Deserialize)]
pub struct SnsRecord {
    #[serde(rename = "Sns")]
    pub sns: SnsMessage,
}

#[derive(Debug, Deserialize)]
pub struct SnsMessage {
    #[serde(rename = "MessageId", default)]
    pub message_id: Option<String>,
    #[serde(rename = "Subject", default)]
    pub subject: Option<String>,
    #[serde(rename = "Message")]
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    /// Notifications posted.
    pub posted: usize,
    /// Why nothing was posted, when forwarding is off.
    pub skipped: Option<String>,
}

pub fn parse(payload: Value) -> StepResult<SnsEvent> {
    parse_input(payload)
}

pub async fn handle(ctx: Arc<Context>, event: SnsEvent) -> Result<Forwarded, StepFailure> {
    let secret_id = ctx.config.chat_webhook_secret_id.as_deref().ok_or_else(|| {
        StepError::new(
            ErrorKind::Configuration,
            format!(
                "{} is not set: no chat webhook to forward to",
                vars::CHAT_WEBHOOK_SECRET_ID
            ),
        )
    })?;
    let value = refresh_core::secrets::load_secret_string(&ctx.aws, secret_id).await?;
    let webhook = ChatWebhook::from_secret_value(value.expose_secret())?;
    forward(&webhook, &event, &RetryPolicy::default()).await
}

/// Posts each record's chat line; every failure is logged, and any makes the invocation fail
/// as `ChatWebhookFailed` (after the others were tried).
pub async fn forward(
    webhook: &ChatWebhook,
    event: &SnsEvent,
    policy: &RetryPolicy,
) -> Result<Forwarded, StepFailure> {
    if matches!(webhook, ChatWebhook::Off) {
        let why = "the chat webhook secret is empty: forwarding is off";
        tracing::info!(notifications = event.records.len(), "{why}");
        return Ok(Forwarded {
            posted: 0,
            skipped: Some(why.to_string()),
        });
    }
    let client = chat::client(policy).map_err(chat_failure)?;
    let mut posted = 0;
    let mut failures = Vec::new();
    for record in &event.records {
        let text = chat_text(record.sns.subject.as_deref(), &record.sns.message);
        let message_id = record.sns.message_id.as_deref().unwrap_or("?");
        match chat::post(&client, webhook, &text, policy).await {
            Ok(attempts) => {
                posted += 1;
                tracing::info!(message_id, host = webhook.host(), attempts, "notification posted to the chat");
            }
            Err(e) => {
                tracing::error!(message_id, error = %e, "notification not posted to the chat");
                failures.push(e.to_string());
            }
        }
    }
    if failures.is_empty() {
        Ok(Forwarded {
            posted,
            skipped: None,
        })
    } else {
        Err(StepFailure::chat_webhook_failed(format!(
            "{} of {} notifications not posted: {}",
            failures.len(),
            event.records.len(),
            failures.join("; ")
        )))
    }
}

fn chat_failure(e: chat::PostError) -> StepFailure {
    StepFailure::chat_webhook_failed(e.to_string())
}
