//! Posting to the chat webhook (a Slack-compatible incoming webhook: `POST {"text": …}`),
//! used by forward_notification.
//!
//! The webhook URL is the credential: it is handed to the HTTP client and nothing else. Errors
//! name the webhook by its host and quote only the server's answer; transport errors are
//! stripped of their URL (`reqwest::Error::without_url`).

use refresh_core::notification::{chat_payload, ChatWebhook};
use std::time::Duration;

/// Longest piece of the server's answer quoted in an error.
const MAX_QUOTED_CHARS: usize = 200;

/// How hard one notification is pushed: a few quick attempts, then it is reported and
/// dropped (the refresh never waits for the chat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each later one.
    pub first_backoff: Duration,
    /// Per attempt, connection included.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PostError {
    /// An answer that retrying will not change (400 `invalid_payload`, 403, 404
    /// `no_service`, a redirect…): the webhook or its secret needs an operator.
    #[error("chat webhook at {host} refused the post: HTTP {status}: {answer}")]
    Refused {
        host: String,
        status: u16,
        answer: String,
    },
    /// Every attempt failed on the network, timed out, or got 429 / 5xx.
    #[error("chat webhook at {host} did not take the post in {attempts} attempts: {last}")]
    GaveUp {
        host: String,
        attempts: u32,
        last: String,
    },
    #[error("chat webhook: {0}")]
    Client(String),
}

/// A client for webhook posts: no redirects (a moved webhook is an operator's matter, and a
/// redirect must not carry the post elsewhere), the policy's timeout per attempt.
pub fn client(policy: &RetryPolicy) -> Result<reqwest::Client, PostError> {
    reqwest::Client::builder()
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| PostError::Client(error_chain(&e.without_url())))
}

/// Posts `text` to the webhook, retrying network errors, 429 and 5xx with back-off. Returns
/// the number of attempts it took. Forwarding switched off is not an error: `Ok(0)`.
pub async fn post(
    client: &reqwest::Client,
    webhook: &ChatWebhook,
    text: &str,
    policy: &RetryPolicy,
) -> Result<u32, PostError> {
    let (Some(url), Some(host)) = (webhook.url(), webhook.host()) else {
        return Ok(0);
    };
    let body = chat_payload(text);
    let mut backoff = policy.first_backoff;
    let mut last = String::new();
    let attempts = policy.attempts.max(1);
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
        }
        match client.post(url).json(&body).send().await {
            Ok(response) if response.status().is_success() => return Ok(attempt),
            Ok(response) => {
                let status = response.status();
                let answer = quoted(&response.text().await.unwrap_or_default());
                if status.as_u16() != 429 && !status.is_server_error() {
                    return Err(PostError::Refused {
                        host: host.to_string(),
                        status: status.as_u16(),
                        answer,
                    });
                }
                last = format!("HTTP {}: {answer}", status.as_u16());
            }
            Err(e) => last = error_chain(&e.without_url()),
        }
        tracing::warn!(host, attempt, error = %last, "chat post failed; retrying if attempts remain");
    }
    Err(PostError::GaveUp {
        host: host.to_string(),
        attempts,
        last,
    })
}

/// The error and its sources on one line ("error sending request: … Connection refused").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

fn quoted(answer: &str) -> String {
    let line = answer.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}
