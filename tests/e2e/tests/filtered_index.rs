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
