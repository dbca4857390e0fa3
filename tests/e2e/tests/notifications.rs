//! Stage notifications: a queue subscribed to the stack's topic receives, in order, the
//! messages (JSON, `docs/OPERATIONS.md` "Notifications") of a refresh that succeeds, of one
//! that fails past admission (naming the state that failed), and of one refused; and the chat
//! forwarder posts what the topic hears to a webhook listening on 127.0.0.1.

use anyhow::{Context, Result};
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use e2e::{aws_cli_json, exclusive, load_sample_data, Stack};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const RUN_TIMEOUT: Duration = Duration::from_secs(900);

struct Subscription {
    queue_url: String,
}

/// The SQS commands of the AWS CLI v1 resolve their own legacy endpoint and ignore
/// `AWS_ENDPOINT_URL`: name it.
fn sqs(args: &[&str]) -> Result<Value> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").context("AWS_ENDPOINT_URL")?;
    let mut all = vec!["--endpoint-url", endpoint.as_str(), "sqs"];
    all.extend_from_slice(args);
    aws_cli_json(&all)
}

impl Subscription {
    /// A fresh queue subscribed to the stack's notification topic.
    fn create(stack: &Stack) -> Result<Subscription> {
        let topic = topic_arn(stack)?;
        let name = format!("e2e-notifications-{}", std::process::id());
        let queue_url = sqs(&["create-queue", "--queue-name", &name])?["QueueUrl"]
            .as_str()
            .context("no QueueUrl")?
            .to_string();
        let queue_arn = sqs(&[
            "get-queue-attributes",
            "--queue-url",
            &queue_url,
            "--attribute-names",
            "QueueArn",
        ])?["Attributes"]["QueueArn"]
            .as_str()
            .context("no QueueArn")?
            .to_string();
        aws_cli_json(&[
            "sns",
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "sqs",
            "--notification-endpoint",
            &queue_arn,
        ])?;
        Ok(Subscription { queue_url })
    }

    /// Every message received until the queue stays empty for a few seconds, as
    /// `(subject, message)` in the order SNS published them.
    fn drain(&self) -> Result<Vec<(String, String)>> {
        let mut received: Vec<(String, String, String)> = Vec::new();
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < Duration::from_secs(5) {
            let batch = sqs(&[
                "receive-message",
                "--queue-url",
                &self.queue_url,
                "--max-number-of-messages",
                "10",
                "--wait-time-seconds",
                "1",
            ])?;
            let messages = batch["Messages"].as_array().cloned().unwrap_or_default();
            if !messages.is_empty() {
                quiet_since = Instant::now();
            }
            for message in messages {
                let envelope: Value =
                    serde_json::from_str(message["Body"].as_str().context("no Body")?)?;
                received.push((
                    envelope["Timestamp"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    envelope["Subject"].as_str().unwrap_or_default().to_string(),
                    envelope["Message"].as_str().unwrap_or_default().to_string(),
                ));
                sqs(&[
                    "delete-message",
                    "--queue-url",
                    &self.queue_url,
                    "--receipt-handle",
                    message["ReceiptHandle"].as_str().context("no handle")?,
                ])?;
            }
        }
        received.sort();
        Ok(received.into_iter().map(|(_, s, m)| (s, m)).collect())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = sqs(&["delete-queue", "--queue-url", &self.queue_url]);
    }
}

fn subjects(messages: &[(String, String)]) -> Vec<&str> {
    messages
        .iter()
        .map(|(subject, _)| subject.as_str())
        .collect()
}

#[tokio::test]
async fn a_queue_on_the_topic_hears_every_stage_in_order() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let subscription = Subscription::create(&stack)?;

    let ok = stack
        .run(
            &stack.refresh_arn,
            "e2e-notified",
            json!({"media_type": "audio", "environment": "staging"}),
            RUN_TIMEOUT,
        )
        .await?;
    assert_eq!(ok.status, "SUCCEEDED", "{:?} {:?}", ok.error, ok.cause);
    let messages = subscription.drain()?;
    assert_eq!(
        subjects(&messages),
        [
            "audio refresh started (staging)",
            "audio copy done (staging)",
            "audio reindex done (staging)",
            "audio filtered index done (staging)",
            "audio promoted (staging)",
            "audio refresh succeeded (staging)",
        ],
        "{messages:#?}"
    );
    let json_of = |subject: &str| -> Value {
        messages
            .iter()
            .find(|(s, _)| s.contains(subject))
            .and_then(|(_, m)| serde_json::from_str(m).ok())
            .unwrap_or_default()
    };
    let new_index = ok.output["new_index"].clone();
    let started = json_of("started");
    assert_eq!(started["event"], "refresh.started", "{started}");
    assert_eq!(started["new_index"], new_index, "{started}");
    assert_eq!(started["execution"], json!(ok.arn), "{started}");
    let copied = json_of("copy done");
    assert_eq!(copied["event"], "refresh.copy_done", "{copied}");
    assert!(copied["rows_copied"].as_u64() > Some(0), "{copied}");
    let reindexed = json_of("reindex done");
    assert_eq!(reindexed["index"], new_index, "{reindexed}");
    let promoted = json_of("promoted");
    assert_eq!(promoted["event"], "refresh.promoted", "{promoted}");
    assert_eq!(promoted["index"], new_index, "{promoted}");
    assert_eq!(
        promoted["documents"], ok.output["total_after"],
        "{promoted}"
    );
    let succeeded = json_of("succeeded");
    assert_eq!(succeeded["event"], "refresh.succeeded", "{succeeded}");
    assert_eq!(
        succeeded["total_after"], ok.output["total_after"],
        "{succeeded}"
    );
    assert_eq!(succeeded["delta"], ok.output["delta"], "{succeeded}");

    // Past admission and failed: the failure, with what cleanup removed.
    let failed = stack
        .run(
            &stack.refresh_arn,
            "e2e-notified-failure",
            json!({"media_type": "audio", "environment": "staging", "skip_copy": true}),
            RUN_TIMEOUT,
        )
        .await?;
    assert_eq!(failed.status, "FAILED");
    let messages = subscription.drain()?;
    assert_eq!(
        subjects(&messages),
        [
            "audio refresh started (staging)",
            "audio refresh FAILED (staging)"
        ],
        "{messages:#?}"
    );
    let failure: Value = serde_json::from_str(&messages[1].1)?;
    assert_eq!(failure["event"], "refresh.failed", "{failure}");
    assert_eq!(
        failure["error"]["Error"].as_str(),
        failed.error.as_deref(),
        "{failure}"
    );
    // No temp table to reuse: the skip_copy path's first task fails.
    assert_eq!(
        failure["failed_state"], "Filter tags on existing temp table",
        "{failure}"
    );
    assert!(failure["cleanup"].is_object(), "{failure}");
    assert!(
        failure["cleanup"].get("dropped_temp_table").is_some(),
        "{failure}"
    );

    // Refused before anything was created.
    let refused = stack
        .run(
            &stack.refresh_arn,
            "e2e-notified-refused",
            json!({"media_type": "video", "environment": "staging"}),
            RUN_TIMEOUT,
        )
        .await?;
    assert_eq!(refused.error.as_deref(), Some("InvalidInput"));
    let messages = subscription.drain()?;
    assert_eq!(
        subjects(&messages),
        ["Data refresh refused"],
        "{messages:#?}"
    );
    let refusal: Value = serde_json::from_str(&messages[0].1)?;
    assert_eq!(refusal["event"], "refresh.refused", "{refusal}");
    assert_eq!(refusal["error"]["Error"], "InvalidInput", "{refusal}");
    assert_eq!(refusal["input"]["media_type"], "video", "{refusal}");

    // The filtered-index machine publishes to the same topic.
    let rebuilt = stack
        .run(
            &stack.filtered_arn,
            "e2e-notified-filtered",
            json!({"media_type": "audio", "environment": "staging"}),
            RUN_TIMEOUT,
        )
        .await?;
    assert_eq!(
        rebuilt.status, "SUCCEEDED",
        "{:?} {:?}",
        rebuilt.error, rebuilt.cause
    );
    let messages = subscription.drain()?;
    assert_eq!(
        subjects(&messages),
        [
            "audio filtered index rebuild started (staging)",
            "audio filtered index rebuilt (staging)"
        ],
        "{messages:#?}"
    );
    let done: Value = serde_json::from_str(&messages[1].1)?;
    assert_eq!(done["event"], "filtered_index.rebuilt", "{done}");
    assert!(
        done["index"]
            .as_str()
            .is_some_and(|i| i.ends_with("-filtered")),
        "{done}"
    );
    assert!(done["documents"].as_u64().is_some(), "{done}");

    // A rebuild Elasticsearch refuses to create an index for (no room for one more shard;
    // 7.9 has no create-index block): its notice names the state.
    let aliases_before = stack.alias_targets("audio-filtered").await?;
    let (_, stats) = stack
        .es(reqwest::Method::GET, "_cluster/stats", None)
        .await?;
    let open_shards = stats["indices"]["shards"]["total"]
        .as_u64()
        .context("no shard count")?;
    let full = stack
        .es(
            reqwest::Method::PUT,
            "_cluster/settings",
            Some(json!({"transient": {"cluster.max_shards_per_node": open_shards}})),
        )
        .await?;
    assert_eq!(full.0, 200, "{full:?}");
    let refused_index = stack
        .run(
            &stack.filtered_arn,
            "e2e-notified-filtered-failure",
            json!({"media_type": "audio", "environment": "staging"}),
            RUN_TIMEOUT,
        )
        .await;
    let room = stack
        .es(
            reqwest::Method::PUT,
            "_cluster/settings",
            Some(json!({"transient": {"cluster.max_shards_per_node": null}})),
        )
        .await?;
    assert_eq!(room.0, 200, "{room:?}");
    let refused_index = refused_index?;
    let aliases_after = stack.alias_targets("audio-filtered").await?;
    e2e::record(
        "elasticsearch",
        "no room for one more shard when the filtered-index rebuild creates its index",
        &format!(
            "failed cleanly ({}), notified as failed in Create filtered index",
            refused_index.error.as_deref().unwrap_or("-")
        ),
        if aliases_after == aliases_before {
            "nothing".to_string()
        } else {
            "the filtered alias moved".to_string()
        },
        "notifications::a_queue_on_the_topic_hears_every_stage_in_order",
    );
    assert_eq!(refused_index.status, "FAILED");
    let messages = subscription.drain()?;
    assert_eq!(
        subjects(&messages),
        [
            "audio filtered index rebuild started (staging)",
            "audio filtered index rebuild FAILED (staging)"
        ],
        "{messages:#?}"
    );
    let failure: Value = serde_json::from_str(&messages[1].1)?;
    assert_eq!(failure["event"], "filtered_index.failed", "{failure}");
    assert_eq!(
        failure["failed_state"], "Create filtered index",
        "{failure}"
    );
    assert_eq!(
        failure["error"]["Error"].as_str(),
        refused_index.error.as_deref(),
        "{failure}"
    );
    assert_eq!(stack.alias_targets("audio-filtered").await?, aliases_before);
    Ok(())
}

/// The secret of the stack's chat webhook (`localstack/deploy` always creates one locally),
/// pointed at a listener for the test's life and put back as it was afterwards.
struct ChatSecret {
    arn: String,
    previous: String,
}

impl ChatSecret {
    fn point_at(stack: &Stack, url: &str) -> Result<ChatSecret> {
        let described = aws_cli_json(&[
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            &stack.stack_name,
        ])?;
        let arn = described["Stacks"][0]["Parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["ParameterKey"] == "ChatWebhookSecretArn")
            .and_then(|p| p["ParameterValue"].as_str())
            .filter(|arn| !arn.is_empty())
            .context("the stack has no ChatWebhookSecretArn: deploy it with localstack/deploy")?
            .to_string();
        let previous = aws_cli_json(&["secretsmanager", "get-secret-value", "--secret-id", &arn])?
            ["SecretString"]
            .as_str()
            .unwrap_or(r#"{"url": ""}"#)
            .to_string();
        let value = json!({ "url": url }).to_string();
        aws_cli_json(&[
            "secretsmanager",
            "put-secret-value",
            "--secret-id",
            &arn,
            "--secret-string",
            &value,
        ])?;
        Ok(ChatSecret { arn, previous })
    }
}

impl Drop for ChatSecret {
    fn drop(&mut self) {
        let _ = aws_cli_json(&[
            "secretsmanager",
            "put-secret-value",
            "--secret-id",
            &self.arn,
            "--secret-string",
            &self.previous,
        ]);
    }
}

type Received = Arc<Mutex<Vec<Value>>>;

async fn receive(State(received): State<Received>, body: String) -> &'static str {
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    received.lock().await.push(body);
    "ok"
}

#[tokio::test]
async fn the_chat_webhook_gets_each_notification_as_slack_json() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;

    // A Slack-compatible incoming webhook on loopback; its path plays the secret token.
    let token = format!(
        "e2e{}x{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let received: Received = Arc::default();
    let app = Router::new()
        .route(&format!("/services/{token}"), post(receive))
        .with_state(Arc::clone(&received));
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = socket.local_addr()?;
    tokio::spawn(async move { axum::serve(socket, app).await });
    let _secret = ChatSecret::point_at(&stack, &format!("http://{address}/services/{token}"))?;

    let topic = topic_arn(&stack)?;
    let marker = format!("audio-e2e{}", std::process::id());
    let promoted = json!({
        "event": "refresh.promoted", "media_type": "audio", "environment": "staging",
        "execution": "arn:aws:states:us-east-1:000000000000:execution:x:e2e",
        "index": marker, "filtered_index": format!("{marker}-filtered"),
        "documents": 3012, "previous_indices": ["audio-init"]});
    let failed = json!({
        "event": "refresh.failed", "media_type": "audio", "environment": "staging",
        "execution": "arn:aws:states:us-east-1:000000000000:execution:x:e2e",
        "new_index": marker, "failed_state": "Copy data",
        "error": {"Error": "TransientDatabaseError", "Cause": format!("{marker}: connection reset")},
        "cleanup": {"dropped_temp_table": true, "deleted_indices": [marker]}});
    for (subject, message) in [
        ("audio promoted (staging)", &promoted),
        ("audio refresh FAILED (staging)", &failed),
    ] {
        aws_cli_json(&[
            "sns",
            "publish",
            "--topic-arn",
            &topic,
            "--subject",
            subject,
            "--message",
            &message.to_string(),
        ])?;
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    let ours = loop {
        let ours: Vec<Value> = received
            .lock()
            .await
            .iter()
            .filter(|body| body.to_string().contains(&marker))
            .cloned()
            .collect();
        if ours.len() >= 2 || Instant::now() > deadline {
            break ours;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let logs = || {
        e2e::all_function_logs(&stack.stack_name)
            .map(|logs| format!("{logs:#?}"))
            .unwrap_or_default()
    };
    assert_eq!(
        ours.len(),
        2,
        "the listener got {ours:#?}; logs: {}",
        logs()
    );
    let texts: Vec<&str> = ours.iter().filter_map(|b| b["text"].as_str()).collect();
    for body in &ours {
        assert_eq!(
            body.as_object().map(|o| o.len()),
            Some(1),
            "Slack JSON is {{\"text\": …}}: {body}"
        );
    }
    assert!(
        texts.contains(&format!(
            ":white_check_mark: audio refresh promoted (staging) — {marker} → live, 3 012 docs (replaces audio-init)"
        )
        .as_str()),
        "{texts:#?}"
    );
    let failure = texts
        .iter()
        .find(|t| t.starts_with(":x:"))
        .context("no failure text")?;
    assert!(
        failure.starts_with(
            ":x: *Copy data* failed: TransientDatabaseError — audio refresh (staging)"
        ),
        "{failure}"
    );
    assert!(
        failure.contains("cleanup: dropped the temp table"),
        "{failure}"
    );

    // The URL (its path is the credential) is in no function's log.
    let all = logs();
    assert!(!all.contains(&token), "the webhook URL is in a log");
    Ok(())
}

fn topic_arn(stack: &Stack) -> Result<String> {
    let outputs = aws_cli_json(&[
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        &stack.stack_name,
    ])?;
    Ok(outputs["Stacks"][0]["Outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["OutputKey"] == "NotificationTopicArn")
        .and_then(|o| o["OutputValue"].as_str())
        .context("no NotificationTopicArn output")?
        .to_string())
}
