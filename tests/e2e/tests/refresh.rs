//! The whole refresh in the real Step Functions engine: LocalStack, the deployed Lambdas,
//! worker processes launched as EC2 instances, real PostgreSQL and Elasticsearch.

use anyhow::Result;
use e2e::{
    eligible_rows, exclusive, expected_documents, expected_sensitive_identifiers, load_sample_data,
    sensitive_query, table_shape, Stack,
};
use refresh_core::media::MediaType;
use refresh_core::tags::TagFilterConfig;
use serde_json::{json, Value};
use std::time::Duration;

const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// The live state a refresh replaces: the indices behind both aliases and their total.
struct Before {
    indices: Vec<String>,
    filtered: Vec<String>,
    total: u64,
}

async fn before(stack: &Stack, media: MediaType) -> Result<Before> {
    let indices: Vec<String> = stack
        .alias_targets(media.alias())
        .await?
        .into_iter()
        .collect();
    let total = if indices.is_empty() {
        0
    } else {
        stack.count(media.alias(), json!({"match_all": {}})).await?
    };
    Ok(Before {
        indices,
        filtered: stack
            .alias_targets(media.filtered_alias())
            .await?
            .into_iter()
            .collect(),
        total,
    })
}

async fn check_refreshed(
    stack: &Stack,
    media: MediaType,
    finished: &e2e::Finished,
    before: &Before,
) -> Result<String> {
    assert_eq!(
        finished.status, "SUCCEEDED",
        "{media} refresh: {:?} {:?}",
        finished.error, finished.cause
    );
    assert!(
        stack.live_instances(&finished.arn).await?.is_empty(),
        "{media}: an instance is still running"
    );

    let live: Vec<String> = stack
        .alias_targets(media.alias())
        .await?
        .into_iter()
        .collect();
    let filtered: Vec<String> = stack
        .alias_targets(media.filtered_alias())
        .await?
        .into_iter()
        .collect();
    assert_eq!(live.len(), 1, "{media} alias points at {live:?}");
    assert_eq!(
        filtered,
        vec![format!("{}-filtered", live[0])],
        "{media}-filtered alias"
    );
    assert!(
        !before.indices.contains(&live[0]),
        "{media} alias still on an old index"
    );
    for old in before.indices.iter().chain(&before.filtered) {
        assert!(
            !stack.index_exists(old).await?,
            "old index {old} was not deleted"
        );
    }

    let db = stack.api_db().await?;
    let eligible = eligible_rows(&db, media).await?;
    assert!(eligible > 0);
    // What the catalog says the refresh must index, independently of the copy's own table.
    let (expected, expected_by_source) =
        expected_documents(&stack.catalog_db().await?, &db, media).await?;
    assert_eq!(
        eligible, expected,
        "{media}: the promoted table lost or gained rows"
    );

    // The execution's output is the report: totals and every source, before → after.
    let report = &finished.output;
    assert_eq!(report["media_type"], media.as_str(), "{report}");
    assert_eq!(report["new_index"], live[0].as_str(), "{report}");
    assert_eq!(report["total_before"], before.total, "{report}");
    assert_eq!(report["total_after"], expected, "{report}");
    assert_eq!(
        report["delta"],
        expected as i64 - before.total as i64,
        "{report}"
    );
    let reported_after: std::collections::BTreeMap<String, u64> = report["by_source"]
        .as_object()
        .map(|sources| {
            sources
                .iter()
                .filter(|(_, counts)| counts["after"] != 0)
                .map(|(source, counts)| (source.clone(), counts["after"].as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        reported_after, expected_by_source,
        "{media}: per-source counts"
    );
    assert_eq!(
        stack.count(media.alias(), json!({"match_all": {}})).await?,
        eligible,
        "{media} documents"
    );
    // The filtered index holds exactly the documents without a sensitive term, derived from
    // the catalog rows and the terms file (not from the code's query or field list).
    let sensitive = expected_sensitive_identifiers(&stack.catalog_db().await?, &db, media).await?;
    assert!(!sensitive.is_empty(), "{media}: sample has sensitive rows");
    let indexed = stack.identifiers(media.alias()).await?;
    assert!(
        sensitive.is_subset(&indexed),
        "{media}: sensitive rows missing from the main index"
    );
    let filtered = stack.identifiers(media.filtered_alias()).await?;
    let expected_filtered: std::collections::BTreeSet<String> =
        indexed.difference(&sensitive).cloned().collect();
    assert_eq!(
        filtered.len(),
        expected_filtered.len(),
        "{media}-filtered: {} documents, {} expected ({} sensitive)",
        filtered.len(),
        expected_filtered.len(),
        sensitive.len()
    );
    assert!(
        filtered == expected_filtered,
        "{media}-filtered: kept sensitive {:?}, dropped clean {:?}",
        filtered
            .intersection(&sensitive)
            .take(5)
            .collect::<Vec<_>>(),
        expected_filtered
            .difference(&filtered)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        stack
            .count(media.filtered_alias(), sensitive_query())
            .await?,
        0,
        "{media}-filtered has a sensitive document"
    );

    // Every tag left in the table passes the configured filter.
    let filter = TagFilterConfig::default();
    let rows = db
        .query(
            &format!("SELECT tags FROM {} WHERE tags IS NOT NULL", media.table()),
            &[],
        )
        .await?;
    for row in rows {
        let tags: Value = row.get(0);
        assert_eq!(
            filter.filter(Some(&tags)),
            Some(tags.clone()),
            "{media}: unfiltered tags {tags}"
        );
    }
    Ok(live[0].clone())
}

#[tokio::test]
async fn full_refresh_of_image_and_audio_then_a_second_refresh_replaces_the_indices() -> Result<()>
{
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let db = stack.api_db().await?;
    let shapes_before = (
        table_shape(&db, "image").await?,
        table_shape(&db, "audio").await?,
    );
    let image_before = before(&stack, MediaType::Image).await?;
    let audio_before = before(&stack, MediaType::Audio).await?;

    let image = stack
        .start(
            &stack.refresh_arn,
            "e2e-image",
            json!({"media_type": "image", "environment": "staging", "allow_concurrent": true}),
        )
        .await?;
    let audio = stack
        .start(
            &stack.refresh_arn,
            "e2e-audio",
            json!({"media_type": "audio", "environment": "staging", "allow_concurrent": true}),
        )
        .await?;
    let image_done = stack.wait(&image, RUN_TIMEOUT).await?;
    let audio_done = stack.wait(&audio, RUN_TIMEOUT).await?;
    let image_index = check_refreshed(&stack, MediaType::Image, &image_done, &image_before).await?;
    check_refreshed(&stack, MediaType::Audio, &audio_done, &audio_before).await?;
    // The default builds the filtered index in the reindex's one pass, verified by the gate.
    for done in [&image_done, &audio_done] {
        let states = stack.state_names(&done.arn).await?;
        assert!(
            states.iter().any(|s| s == "Verify filtered index")
                && states
                    .iter()
                    .any(|s| s == "Keep verified filtered index count"),
            "dual write must be verified: {states:?}"
        );
        assert!(
            !states.iter().any(|s| s == "Start filtered reindex"),
            "dual write needs no filtered _reindex: {states:?}"
        );
    }
    let dual_write_filtered = stack.identifiers(MediaType::Image.filtered_alias()).await?;
    assert_eq!(
        table_shape(&db, "image").await?,
        shapes_before.0,
        "image table lost or changed indexes/constraints"
    );
    assert_eq!(
        table_shape(&db, "audio").await?,
        shapes_before.1,
        "audio table lost or changed indexes/constraints"
    );

    // A second refresh promotes a new index and deletes the one the first made; it builds
    // the filtered index the other way, by _reindex, from the same data: the same documents.
    let image_before_again = before(&stack, MediaType::Image).await?;
    assert_eq!(image_before_again.indices, vec![image_index.clone()]);
    let again_done = stack
        .run(
            &stack.refresh_arn,
            "e2e-image-again",
            json!({"media_type": "image", "environment": "staging", "filtered_index": "reindex"}),
            RUN_TIMEOUT,
        )
        .await?;
    let second_index =
        check_refreshed(&stack, MediaType::Image, &again_done, &image_before_again).await?;
    assert_ne!(second_index, image_index);
    let states = stack.state_names(&again_done.arn).await?;
    assert!(
        states.iter().any(|s| s == "Start filtered reindex")
            && !states.iter().any(|s| s == "Verify filtered index"),
        "filtered_index reindex takes the _reindex path: {states:?}"
    );
    let reindex_filtered = stack.identifiers(MediaType::Image.filtered_alias()).await?;
    assert!(
        reindex_filtered == dual_write_filtered,
        "the two modes' filtered indices differ: only by dual write {:?}, only by reindex {:?}",
        dual_write_filtered
            .difference(&reindex_filtered)
            .take(5)
            .collect::<Vec<_>>(),
        reindex_filtered
            .difference(&dual_write_filtered)
            .take(5)
            .collect::<Vec<_>>()
    );
    Ok(())
}

#[tokio::test]
async fn a_second_refresh_of_the_same_environment_is_refused_unless_it_may_wait() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let first = stack
        .start(
            &stack.refresh_arn,
            "e2e-first",
            json!({"media_type": "image", "environment": "staging"}),
        )
        .await?;
    stack
        .wait_for_state(&first, "Count documents before", Duration::from_secs(120))
        .await?;

    let refused = stack
        .run(
            &stack.refresh_arn,
            "e2e-second",
            json!({"media_type": "audio", "environment": "staging"}),
            Duration::from_secs(120),
        )
        .await?;
    assert_eq!(refused.status, "FAILED");
    assert_eq!(
        refused.error.as_deref(),
        Some("ConcurrencyConflict"),
        "cause: {:?}",
        refused.cause
    );
    let cause = refused.cause.unwrap_or_default();
    assert!(
        cause.contains(&first),
        "the refusal names the running execution: {cause}"
    );

    // What the weekly schedules send: the later run queues behind the first.
    let queued = stack
        .start(
            &stack.refresh_arn,
            "e2e-queued",
            json!({"media_type": "audio", "environment": "staging", "wait_if_busy": true}),
        )
        .await?;
    stack
        .wait_for_state(
            &queued,
            "Wait for the other run to finish",
            Duration::from_secs(120),
        )
        .await?;

    let first_done = stack.wait(&first, RUN_TIMEOUT).await?;
    assert_eq!(
        first_done.status, "SUCCEEDED",
        "{:?} {:?}",
        first_done.error, first_done.cause
    );
    let queued_done = stack.wait(&queued, RUN_TIMEOUT).await?;
    assert_eq!(
        queued_done.status, "SUCCEEDED",
        "the queued run: {:?} {:?}",
        queued_done.error, queued_done.cause
    );
    let entered = stack.state_names(&queued).await?;
    let position = |name: &str| entered.iter().position(|s| s == name);
    assert!(
        position("Wait for the other run to finish") < position("Count documents before"),
        "the queued run started work before the first finished: {entered:?}"
    );
    Ok(())
}
