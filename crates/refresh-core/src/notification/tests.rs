//! Each notification as the state machines publish it (the `Message` objects of
//! `statemachine/src/*.json`, filled in) and the chat line it becomes (insta snapshots in
//! `snapshots/`: review a change with `cargo insta review`).

use super::*;
use serde_json::json;

const EXECUTION: &str =
    "arn:aws:states:us-east-1:000000000000:execution:refresh-data-refresh:cli-image-staging-1";

fn run() -> Value {
    json!({"media_type": "image", "environment": "staging", "execution": EXECUTION})
}

fn message(event: &str, fields: Value) -> String {
    let mut message = run();
    message["event"] = json!(event);
    for (key, value) in fields.as_object().expect("an object") {
        message[key] = value.clone();
    }
    message.to_string()
}

fn lambda_cause(message: &str) -> String {
    json!({"errorMessage": message, "errorType": "TransientDatabaseError"}).to_string()
}

#[test]
fn refresh_started() {
    let text = chat_text(
        Some("image refresh started (staging)"),
        &message(
            "refresh.started",
            json!({"new_index": "image-20261202", "new_filtered_index": "image-20261202-filtered",
                   "documents_live": 3012,
                   "params": {"media_type": "image", "skip_copy": false, "override_record_drop": true}}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn copy_done() {
    let text = chat_text(
        None,
        &message(
            "refresh.copy_done",
            json!({"rows_copied": 3012, "rows_scanned": 3100,
                   "started_at": "2026-12-02T00:00:04.123Z", "at": "2026-12-02T00:04:09.5Z"}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn reindex_done() {
    let text = chat_text(
        None,
        &message(
            "refresh.reindex_done",
            json!({"index": "image-20261202",
                   "per_range": {"ranges": [0, 1], "attempts": [1, 2], "indexed": [1506, 1506]}}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn filtered_index_done() {
    let text = chat_text(
        None,
        &message(
            "refresh.filtered_index_done",
            json!({"index": "image-20261202-filtered", "documents": 2990}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn promoted() {
    let text = chat_text(
        None,
        &message(
            "refresh.promoted",
            json!({"index": "image-20261202", "filtered_index": "image-20261202-filtered",
                   "documents": 3012, "previous_indices": ["image-20261125", "image-20261125-filtered"]}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn succeeded() {
    let text = chat_text(
        None,
        &message(
            "refresh.succeeded",
            json!({"index": "image-20261202", "total_before": 3000, "total_after": 3012,
                   "delta": 12, "sources": 14, "omitted_sources": 0,
                   "by_source": {
                       "flickr": {"before": 1000, "after": 1010, "delta": 10},
                       "met": {"before": 20, "after": 22, "delta": 2},
                       "wikimedia": {"before": 50, "after": 47, "delta": -3},
                       "stocksnap": {"before": 5, "after": 5, "delta": 0},
                       "smithsonian": {"before": 7, "after": 8, "delta": 1}},
                   "old_indices": {"deleted": ["image-20261125"], "missing": []}}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn succeeded_but_old_indices_left() {
    let text = chat_text(
        None,
        &message(
            "refresh.succeeded",
            json!({"total_before": 3000, "total_after": 2990, "delta": -10, "sources": 2,
                   "by_source": {}, "old_indices": {"Error": "TransientSearchError", "Cause": "503"}}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn refresh_failed() {
    let text = chat_text(
        Some("image refresh FAILED (staging)"),
        &message(
            "refresh.failed",
            json!({"new_index": "image-20261202", "failed_state": "Copy data",
                   "error": {"Error": "TransientDatabaseError",
                             "Cause": lambda_cause("catalog: connection reset by peer (host catalog-db, db openledger)")},
                   "cleanup": {"stopped_range_executions": [], "terminated_instances": ["i-0abc", "i-0def"],
                               "dropped_temp_table": true, "dropped_fdw_server": true,
                               "deleted_indices": ["image-20261202"], "cancelled_tasks": [],
                               "kept_indices": [], "skipped": null}}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn refresh_failed_and_cleanup_failed() {
    let text = chat_text(
        None,
        &message(
            "refresh.failed",
            json!({"failed_state": "Reindex ranges",
                   "error": {"Error": "WorkerTaskFailed", "Cause": "range 1: 12 documents could not be indexed"},
                   "cleanup": {"Error": "ConfigurationError", "Cause": lambda_cause("could not read secret refresh/staging")}}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn refresh_refused() {
    let text = chat_text(
        Some("Data refresh refused"),
        &json!({"event": "refresh.refused", "execution": EXECUTION,
                "error": {"Error": "ConcurrencyConflict",
                          "Cause": lambda_cause("image refresh cli-image-staging-0 is running in staging")},
                "input": {"media_type": "image", "environment": "staging"}})
        .to_string(),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn refresh_refused_bad_input() {
    let text = chat_text(
        None,
        &json!({"event": "refresh.refused",
                "error": {"Error": "InvalidInput", "Cause": lambda_cause("media_type: \"video\" is not image or audio")},
                "input": {"media_type": "video"}})
        .to_string(),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn filtered_rebuild_started() {
    let text = chat_text(
        None,
        &message(
            "filtered_index.started",
            json!({"new_filtered_index": "image-20261202-filtered", "source_index": "image"}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn filtered_rebuilt() {
    let text = chat_text(
        None,
        &message(
            "filtered_index.rebuilt",
            json!({"index": "image-20261202-filtered", "documents": 2990,
                   "previous_indices": ["image-20261125-filtered"]}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn filtered_rebuild_failed() {
    let text = chat_text(
        None,
        &message(
            "filtered_index.failed",
            json!({"new_filtered_index": "image-20261202-filtered",
                   "failed_state": "Promote filtered index alias",
                   "error": {"Error": "InvalidState", "Cause": lambda_cause("alias image-filtered points at 2 indices")},
                   "cleanup": {"deleted": ["image-20261202-filtered"], "missing": []}}),
        ),
    );
    insta::assert_snapshot!(text);
}

#[test]
fn anything_else_shows_its_subject_and_text() {
    assert_eq!(
        chat_text(Some("Deploy finished"), "stack refresh updated\n\nall good"),
        ":bell: Deploy finished\n> stack refresh updated all good"
    );
    assert_eq!(chat_text(None, "plain"), ":bell: plain");
    // A known event missing a field it needs is shown as it came, not dropped.
    let broken = json!({"event": "refresh.promoted", "media_type": "image"}).to_string();
    assert!(chat_text(Some("image promoted (staging)"), &broken)
        .starts_with(":bell: image promoted (staging)\n> {"));
}

#[test]
fn text_is_escaped_for_slack_and_kept_short() {
    let text = chat_text(
        None,
        &message(
            "refresh.failed",
            json!({"failed_state": "Copy data",
                   "error": {"Error": "InternalError",
                             "Cause": format!("<!channel> &amp; {}", "x".repeat(5000))},
                   "cleanup": {}}),
        ),
    );
    assert!(text.contains("&lt;!channel&gt; &amp;amp;"), "{text}");
    assert!(!text.contains('<'), "{text}");
    // The only `>` left is the quote mark this module puts before the cause.
    assert!(
        text.lines()
            .all(|line| !line.get(1..).unwrap_or_default().contains('>')),
        "{text}"
    );
    assert!(text.contains("\n> &lt;!channel"), "{text}");
    assert!(text.chars().count() < 600, "{}", text.chars().count());
    assert!(text.contains("…"));
    assert!(
        text.ends_with("cleanup: nothing was left to remove"),
        "{text}"
    );
}

#[test]
fn counts_are_grouped_by_thousands() {
    assert_eq!(count(0), "0");
    assert_eq!(count(999), "999");
    assert_eq!(count(3012), "3 012");
    assert_eq!(count(1_234_567), "1 234 567");
    assert_eq!(signed(-1500), "-1 500");
    assert_eq!(signed(0), "±0");
}

#[test]
fn the_webhook_secret_is_a_url_or_json_and_never_shown() {
    let token = "T000/B000/XXXXSECRETXXXX";
    let url = format!("https://hooks.slack.com/services/{token}");
    for value in [
        url.clone(),
        format!("  {url}\n"),
        json!({"url": url}).to_string(),
    ] {
        let webhook = ChatWebhook::from_secret_value(&value).unwrap();
        assert_eq!(webhook.url(), Some(url.as_str()));
        assert_eq!(webhook.host(), Some("hooks.slack.com"));
        let shown = format!("{webhook:?}");
        assert!(!shown.contains(token), "{shown}");
    }
    for off in ["", "  ", r#"{"url": ""}"#] {
        assert!(matches!(
            ChatWebhook::from_secret_value(off),
            Ok(ChatWebhook::Off)
        ));
    }
    assert!(ChatWebhook::from_secret_value("http://127.0.0.1:4567/hook").is_ok());
    assert!(ChatWebhook::from_secret_value("http://[::1]:4567/hook").is_ok());
    for refused in [
        format!("http://hooks.slack.com/services/{token}"),
        format!("https://user:{token}@hooks.slack.com/x"),
        format!("ftp://hooks.slack.com/{token}"),
        format!("hooks.slack.com/services/{token}"),
        format!(r#"{{"url": "{url}", "channel": "x"}}"#),
        format!(r#"{{"webhook": "{url}"}}"#),
    ] {
        let err = ChatWebhook::from_secret_value(&refused).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration, "{refused}");
        assert!(!err.message.contains(token), "{}", err.message);
    }
}

#[test]
fn the_payload_is_slack_json() {
    assert_eq!(chat_payload("hi"), json!({"text": "hi"}));
}
