//! forward_notification against a real HTTP listener on 127.0.0.1: what the chat receives,
//! the retries, and that the webhook URL (its path is the credential) is in no error.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use refresh_core::notification::{chat_text, ChatWebhook};
use refresh_functions::chat::RetryPolicy;
use refresh_functions::steps::forward_notification::{forward, SnsEvent};
use refresh_functions::steps::Step;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "T0001/B0001/s3cr3tT0k3nXYZ";

/// What the listener got, and the statuses it answers with (then 200 "ok").
#[derive(Default)]
struct Hook {
    received: Mutex<Vec<(Option<String>, Value)>>,
    answers: Mutex<VecDeque<(StatusCode, &'static str)>>,
}

async fn receive(
    State(hook): State<Arc<Hook>>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, &'static str) {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    hook.received.lock().unwrap().push((content_type, body));
    hook.answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((StatusCode::OK, "ok"))
}

/// A listener on 127.0.0.1 serving `/services/<TOKEN>`, and the webhook pointing at it.
async fn listener(answers: &[(StatusCode, &'static str)]) -> (Arc<Hook>, ChatWebhook) {
    let hook = Arc::new(Hook::default());
    hook.answers.lock().unwrap().extend(answers.iter().copied());
    let app = Router::new()
        .route(&format!("/services/{TOKEN}"), post(receive))
        .with_state(Arc::clone(&hook));
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(socket, app).await });
    let webhook =
        ChatWebhook::from_secret_value(&format!("http://{address}/services/{TOKEN}")).unwrap();
    (hook, webhook)
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        first_backoff: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
    }
}

/// An SNS → Lambda event as AWS delivers it, carrying one notification.
fn sns_event(subject: &str, message: &Value) -> Value {
    json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:000000000000:refresh-refresh-stages:5f1c",
        "Sns": {
            "Type": "Notification",
            "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
            "TopicArn": "arn:aws:sns:us-east-1:000000000000:refresh-refresh-stages",
            "Subject": subject,
            "Message": message.to_string(),
            "Timestamp": "2026-12-02T00:41:09.000Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/cert.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            "MessageAttributes": {}
        }
    }]})
}

fn promoted() -> Value {
    json!({"event": "refresh.promoted", "media_type": "image", "environment": "staging",
           "execution": "arn:aws:states:us-east-1:000000000000:execution:refresh-data-refresh:run-1",
           "index": "image-20261202", "filtered_index": "image-20261202-filtered",
           "documents": 3012, "previous_indices": ["image-20261125"]})
}

fn event(subject: &str, message: &Value) -> SnsEvent {
    let payload = sns_event(subject, message);
    Step::ForwardNotification
        .check_input(payload.clone())
        .expect("the step takes SNS's event");
    serde_json::from_value(payload).unwrap()
}

#[tokio::test]
async fn the_chat_gets_the_notification_as_slack_json() {
    let (hook, webhook) = listener(&[]).await;
    let subject = "image promoted (staging)";
    let out = forward(&webhook, &event(subject, &promoted()), &quick())
        .await
        .unwrap();
    assert_eq!(out.posted, 1);
    let received = hook.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (content_type, body) = &received[0];
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let expected = chat_text(Some(subject), &promoted().to_string());
    assert_eq!(body, &json!({ "text": expected }));
    assert_eq!(
        expected,
        ":white_check_mark: image refresh promoted (staging) — image-20261202 → live, 3 012 docs (replaces image-20261125)"
    );
}

#[tokio::test]
async fn a_busy_or_failing_chat_is_tried_again() {
    let (hook, webhook) = listener(&[
        (StatusCode::SERVICE_UNAVAILABLE, "down"),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
    ])
    .await;
    let out = forward(&webhook, &event("s", &promoted()), &quick())
        .await
        .unwrap();
    assert_eq!(out.posted, 1);
    assert_eq!(hook.received.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_refusal_is_reported_at_once_without_the_url() {
    let (hook, webhook) = listener(&[(StatusCode::NOT_FOUND, "no_service")]).await;
    let err = forward(&webhook, &event("s", &promoted()), &quick())
        .await
        .unwrap_err();
    assert_eq!(err.name, "ChatWebhookFailed");
    assert!(
        err.message.contains("HTTP 404: no_service"),
        "{}",
        err.message
    );
    assert!(err.message.contains("127.0.0.1"), "{}", err.message);
    assert!(!err.message.contains(TOKEN), "{}", err.message);
    assert_eq!(
        hook.received.lock().unwrap().len(),
        1,
        "a 404 is not retried"
    );
}

#[tokio::test]
async fn an_unreachable_chat_gives_up_after_the_attempts_without_the_url() {
    // A port nothing listens on any more.
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    drop(socket);
    let webhook =
        ChatWebhook::from_secret_value(&format!("http://{address}/services/{TOKEN}")).unwrap();
    let err = forward(&webhook, &event("s", &promoted()), &quick())
        .await
        .unwrap_err();
    assert_eq!(err.name, "ChatWebhookFailed");
    assert!(err.message.contains("in 3 attempts"), "{}", err.message);
    assert!(!err.message.contains(TOKEN), "{}", err.message);
    assert!(!err.message.contains("/services/"), "{}", err.message);
}

#[tokio::test]
async fn an_empty_secret_turns_forwarding_off() {
    let off = ChatWebhook::from_secret_value("").unwrap();
    let out = forward(&off, &event("s", &promoted()), &quick())
        .await
        .unwrap();
    assert_eq!(out.posted, 0);
    assert!(out.skipped.is_some());
}

#[tokio::test]
async fn a_plain_text_message_is_still_posted() {
    let (hook, webhook) = listener(&[]).await;
    let payload = sns_event("Hello", &json!("ignored"));
    let mut event: SnsEvent = serde_json::from_value(payload).unwrap();
    event.records[0].sns.message = "a message someone typed in the console".to_string();
    forward(&webhook, &event, &quick()).await.unwrap();
    let received = hook.received.lock().unwrap().clone();
    assert_eq!(
        received[0].1,
        json!({"text": ":bell: Hello\n> a message someone typed in the console"})
    );
}
