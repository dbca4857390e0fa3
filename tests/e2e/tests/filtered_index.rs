//! The filtered-index-only machine: rebuilds `<media>-filtered` from the live index and
//! promotes it, leaving the live index, its alias and the table alone.

use anyhow::Result;
use e2e::{exclusive, load_sample_data, sensitive_query, MediaType, Stack};
use serde_json::json;
use std::time::Duration;

const RUN_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::test]
async fn the_filtered_index_is_rebuilt_from_the_live_index_and_promoted() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    let media = MediaType::Audio;
    if stack.alias_targets(media.alias()).await?.is_empty() {
        // A fresh stack has no live index yet: make one with a full refresh.
        load_sample_data()?;
        let done = stack
            .run(
                &stack.refresh_arn,
                "e2e-filtered-setup",
                json!({"media_type": "audio", "environment": "staging"}),
                RUN_TIMEOUT,
            )
            .await?;
        assert_eq!(
            done.status, "SUCCEEDED",
            "{:?} {:?}",
            done.error, done.cause
        );
    }
    let before = stack.live_state(media).await?;
    assert_eq!(before.alias.len(), 1);
    let live = before.alias.iter().next().cloned().unwrap_or_default();
    let live_total = stack.count(&live, json!({"match_all": {}})).await?;
    let live_sensitive = stack.count(&live, sensitive_query()).await?;
    assert!(live_sensitive > 0, "the sample has sensitive documents");

    let done = stack
        .run(
            &stack.filtered_arn,
            "e2e-filtered-only",
            json!({"media_type": "audio", "environment": "staging"}),
            RUN_TIMEOUT,
        )
        .await?;
    assert_eq!(
        done.status, "SUCCEEDED",
        "{:?} {:?}",
        done.error, done.cause
    );

    let after = stack.live_state(media).await?;
    assert_eq!(after.alias, before.alias, "the live alias moved");
    assert_eq!(
        (after.table_rows, &after.table_shape),
        (before.table_rows, &before.table_shape),
        "the table changed"
    );
    assert_eq!(after.filtered_alias.len(), 1);
    let rebuilt = after
        .filtered_alias
        .iter()
        .next()
        .cloned()
        .unwrap_or_default();
    assert!(
        !before.filtered_alias.contains(&rebuilt),
        "{}-filtered still on {rebuilt}",
        media.alias()
    );
    for old in &before.filtered_alias {
        assert!(
            !stack.index_exists(old).await?,
            "old filtered index {old} kept"
        );
    }
    assert_eq!(stack.count(&rebuilt, sensitive_query()).await?, 0);
    assert_eq!(
        stack.count(&rebuilt, json!({"match_all": {}})).await?,
        live_total - live_sensitive,
        "the rebuilt index is the live one without the sensitive documents"
    );
    assert!(
        stack.instances(&done.arn).await?.is_empty(),
        "no worker is needed"
    );
    Ok(())
}

/// The filtered-index machine has no workers to write with: `dual_write` is refused there by
/// name before anything is touched (the data refresh machine's own bad values are in
/// `bad_input.rs`).
#[tokio::test]
async fn dual_write_is_refused_by_the_filtered_index_machine() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    let media = MediaType::Audio;
    let before = stack.live_state(media).await?;
    let indices_before = stack.media_indices(media).await?;
    let input =
        json!({"media_type": "audio", "environment": "staging", "filtered_index": "dual_write"});
    let done = stack
        .run(
            &stack.filtered_arn,
            "e2e-filtered-dual-write",
            input.clone(),
            RUN_TIMEOUT,
        )
        .await?;
    let cause = done.cause.clone().unwrap_or_default();
    let unchanged = stack.live_state(media).await? == before
        && stack.media_indices(media).await? == indices_before;
    e2e::record(
        "execution input",
        "filtered-index machine: {\"filtered_index\":\"dual_write\"}",
        &format!(
            "{} {} {}naming filtered_index",
            done.status,
            done.error.as_deref().unwrap_or("-"),
            if cause.contains("filtered_index") {
                ""
            } else {
                "without "
            }
        ),
        testkit::reliability::lost_on_failure(&[(
            "audio live table, aliases or indices changed",
            !unchanged,
        )]),
        "filtered_index::dual_write_is_refused_by_the_filtered_index_machine",
    );
    assert_eq!(
        (done.status.as_str(), done.error.as_deref()),
        ("FAILED", Some("InvalidInput")),
        "{cause}"
    );
    assert!(cause.contains("filtered_index"), "{cause}");
    assert!(unchanged, "the refused run changed the live state");
    Ok(())
}
