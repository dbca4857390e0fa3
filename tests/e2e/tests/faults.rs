//! Faults during a refresh, in the real engine: a worker killed part-way through its range,
//! Elasticsearch lost during the filtered reindex, an execution stopped by an operator, a new
//! data set far smaller than the live one.
//! A refresh that survives a fault ends with the exact document count; one that cannot
//! leaves the live table and aliases as they were, and no instance, temp table or new index.

use anyhow::Result;
use e2e::{
    eligible_rows, exclusive, find_worker_process, function_logs, kill_elasticsearch, kill_hard,
    load_sample_data, restart_local_services, sensitive_query, MediaType, Stack,
};
use serde_json::json;
use std::time::Duration;

const RUN_TIMEOUT: Duration = Duration::from_secs(900);
/// Copies of the sample catalog rows added, so that the reindex phases last long enough
/// (seconds) to be hit: about 93 000 image rows.
const LONG_RUN_COPIES: u32 = 30;

#[tokio::test]
async fn a_worker_killed_mid_task_reruns_only_its_range_and_the_count_is_exact() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    stack
        .multiply_catalog(MediaType::Image, LONG_RUN_COPIES)
        .await?;
    let arn = stack
        .start(
            &stack.refresh_arn,
            "e2e-worker-killed",
            json!({"media_type": "image", "environment": "staging"}),
        )
        .await?;

    let (victim, worker, task) = stack
        .worker_in_progress(&arn, "staging", 5.0..70.0, Duration::from_secs(300))
        .await?;
    kill_hard(worker.pid)?;
    let done = stack.wait(&arn, RUN_TIMEOUT).await?;
    assert_eq!(
        done.status, "SUCCEEDED",
        "after killing the worker of range {:?} at {:.0}%: {:?} {:?}",
        victim.range, task.progress, done.error, done.cause
    );

    // One instance per range and SQL job, and one more for the range whose worker died.
    let mut launches = stack.launches_once_terminated(&arn).await?;
    let victim_range = victim.range.clone().unwrap_or_default();
    assert_eq!(launches.remove(&victim_range), Some(2), "{launches:?}");
    assert!(!launches.is_empty(), "only one range was planned");
    assert!(
        launches.values().all(|&n| n == 1),
        "another range was rerun: {launches:?}"
    );

    let db = stack.api_db().await?;
    let eligible = eligible_rows(&db, MediaType::Image).await?;
    let indexed = stack.count("image", json!({"match_all": {}})).await?;
    // Dual write (the default): the filtered index, written by the same workers, is exact
    // too, and it passed the gate as written (a rebuild would hide a lost write).
    let sensitive = stack.count("image", sensitive_query()).await?;
    let filtered = stack
        .count("image-filtered", json!({"match_all": {}}))
        .await?;
    let states = stack.state_names(&arn).await?;
    let verified_as_written = states
        .iter()
        .any(|s| s == "Keep verified filtered index count")
        && !states
            .iter()
            .any(|s| s == "Delete unverified filtered index");
    e2e::record(
        "worker",
        "worker process killed (SIGKILL) mid-range while writing both indices (dual write)",
        "its range reran on a fresh worker, the others once; the filtered index passed the gate as written; run succeeded",
        match (
            e2e::lost_documents(eligible, indexed),
            e2e::lost_documents(indexed.saturating_sub(sensitive), filtered),
        ) {
            (main, filtered) if main == "nothing" && filtered == "nothing" => main,
            (main, filtered) => format!("main index: {main}; filtered index: {filtered}"),
        },
        "faults::a_worker_killed_mid_task_reruns_only_its_range_and_the_count_is_exact",
    );
    assert!(eligible > 50_000, "the long run indexed {eligible} rows");
    assert_eq!(indexed, eligible, "documents after the rerun");
    assert!(sensitive > 0, "the long run has sensitive documents");
    assert_eq!(
        filtered,
        indexed.saturating_sub(sensitive),
        "filtered documents after the rerun"
    );
    assert_eq!(stack.count("image-filtered", sensitive_query()).await?, 0);
    assert!(verified_as_written, "{states:?}");

    // Back to the bundled sample: 97 % fewer rows than the index just promoted. The drop
    // guard refuses that and nothing changes; with the override it goes live, which also
    // leaves the stack as the other tests expect it.
    load_sample_data()?;
    let live_before = stack.live_state(MediaType::Image).await?;
    let indices_before = stack.media_indices(MediaType::Image).await?;
    let refused = stack
        .run(
            &stack.refresh_arn,
            "e2e-drop-refused",
            json!({"media_type": "image", "environment": "staging"}),
            RUN_TIMEOUT,
        )
        .await?;
    e2e::record(
        "promotion",
        "a catalog 97 % smaller than the live index",
        &format!(
            "refused by the drop guard ({})",
            refused.error.as_deref().unwrap_or("-")
        ),
        stack
            .left_by_failure(
                MediaType::Image,
                &refused.arn,
                &live_before,
                &indices_before,
            )
            .await?,
        "faults::a_worker_killed_mid_task_reruns_only_its_range_and_the_count_is_exact",
    );
    assert_eq!(
        (refused.status.as_str(), refused.error.as_deref()),
        ("FAILED", Some("RecordDropTooLarge")),
        "{:?}",
        refused.cause
    );
    assert_eq!(stack.live_state(MediaType::Image).await?, live_before);
    assert_eq!(stack.media_indices(MediaType::Image).await?, indices_before);
    assert!(!stack.temp_table_exists(MediaType::Image).await?);

    // Past the drop guard, the search guard: a sample a thirtieth of the live catalog finds
    // far fewer documents for every representative query.
    let guarded = stack
        .run(
            &stack.refresh_arn,
            "e2e-search-guarded",
            json!({"media_type": "image", "environment": "staging", "override_record_drop": true}),
            RUN_TIMEOUT,
        )
        .await?;
    e2e::record(
        "promotion",
        "representative queries find far fewer documents (drop guard overridden)",
        &format!(
            "refused by the search guard ({})",
            guarded.error.as_deref().unwrap_or("-")
        ),
        stack
            .left_by_failure(
                MediaType::Image,
                &guarded.arn,
                &live_before,
                &indices_before,
            )
            .await?,
        "faults::a_worker_killed_mid_task_reruns_only_its_range_and_the_count_is_exact",
    );
    assert_eq!(
        (guarded.status.as_str(), guarded.error.as_deref()),
        ("FAILED", Some("SearchGuardFailed")),
        "{:?}",
        guarded.cause
    );
    let cause = guarded.cause.clone().unwrap_or_default();
    // The cause may hold the message inside the Lambda's JSON error (quotes escaped).
    assert!(
        cause.contains("free text forest") && cause.contains("below 90 % of the live index"),
        "{cause}"
    );
    assert_eq!(stack.live_state(MediaType::Image).await?, live_before);
    assert_eq!(stack.media_indices(MediaType::Image).await?, indices_before);
    assert!(!stack.temp_table_exists(MediaType::Image).await?);

    let forced = stack
        .run(
            &stack.refresh_arn,
            "e2e-drop-overridden",
            json!({"media_type": "image", "environment": "staging",
                   "override_record_drop": true, "override_search_guard": true}),
            RUN_TIMEOUT,
        )
        .await?;
    assert_eq!(
        forced.status, "SUCCEEDED",
        "{:?} {:?}",
        forced.error, forced.cause
    );
    assert_eq!(
        stack.count("image", json!({"match_all": {}})).await?,
        eligible_rows(&db, MediaType::Image).await?
    );
    Ok(())
}

#[tokio::test]
async fn elasticsearch_lost_during_the_filtered_reindex_fails_the_run_and_changes_nothing(
) -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    stack
        .multiply_catalog(MediaType::Image, LONG_RUN_COPIES)
        .await?;
    let live_before = stack.live_state(MediaType::Image).await?;
    let indices_before = stack.media_indices(MediaType::Image).await?;

    let arn = stack
        .start(
            &stack.refresh_arn,
            "e2e-es-lost",
            // The filtered _reindex runs only in that mode (dual write has none).
            json!({"media_type": "image", "environment": "staging", "filtered_index": "reindex"}),
        )
        .await?;
    stack
        .wait_for_state(&arn, "Wait for filtered reindex", RUN_TIMEOUT)
        .await?;
    kill_elasticsearch()?;
    // The run must give up while Elasticsearch is still gone: through its Catch.
    let gave_up = stack
        .wait_for_state(
            &arn,
            "Re-enable alarm actions after failure?",
            Duration::from_secs(400),
        )
        .await;
    restart_local_services()?;
    gave_up?;

    let done = stack.wait(&arn, RUN_TIMEOUT).await?;
    assert_eq!(done.status, "FAILED");
    let entered = stack.state_names(&arn).await?;
    assert!(
        !entered.iter().any(|s| s == "Finish filtered index"),
        "the filtered reindex finished before Elasticsearch was lost: {entered:?}"
    );
    assert!(entered.iter().any(|s| s == "Clean up failed run"));

    // Cleanup (the Catch's, or the status change rule's) removes the run's new indices and
    // temp table once Elasticsearch is back; the live table and aliases never changed.
    stack
        .wait_until_cleaned_up(MediaType::Image, &indices_before)
        .await?;
    e2e::record(
        "elasticsearch",
        "Elasticsearch killed during the filtered reindex",
        &format!("failed cleanly ({})", done.error.as_deref().unwrap_or("-")),
        stack
            .left_by_failure(MediaType::Image, &arn, &live_before, &indices_before)
            .await?,
        "faults::elasticsearch_lost_during_the_filtered_reindex_fails_the_run_and_changes_nothing",
    );
    assert_eq!(stack.live_state(MediaType::Image).await?, live_before);
    assert!(stack.live_instances(&arn).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_execution_stopped_by_an_operator_is_cleaned_up_by_the_status_change_rule() -> Result<()>
{
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    stack.multiply_catalog(MediaType::Image, 10).await?;
    let live_before = stack.live_state(MediaType::Image).await?;
    let indices_before = stack.media_indices(MediaType::Image).await?;

    let arn = stack
        .start(
            &stack.refresh_arn,
            "e2e-operator-stop",
            json!({"media_type": "image", "environment": "staging"}),
        )
        .await?;
    // Stopped while workers index: instances, temp table and new index all exist.
    stack
        .worker_in_progress(&arn, "staging", 0.0..100.0, Duration::from_secs(300))
        .await?;
    assert!(stack.temp_table_exists(MediaType::Image).await?);
    stack
        .sfn
        .stop_execution()
        .execution_arn(&arn)
        .send()
        .await?;
    assert_eq!(
        stack.wait(&arn, Duration::from_secs(60)).await?.status,
        "ABORTED"
    );
    let instances = stack.instances(&arn).await?;
    assert!(!instances.is_empty());

    // Catch does not run for an aborted execution: only the rule's cleanup can do this.
    let cleaned = stack
        .eventually(
            "the aborted run cleaned up",
            Duration::from_secs(240),
            || async {
                Ok(stack.live_instances(&arn).await?.is_empty()
                    && !stack.temp_table_exists(MediaType::Image).await?
                    && stack.media_indices(MediaType::Image).await? == indices_before)
            },
        )
        .await;
    if let Err(e) = cleaned {
        anyhow::bail!(
            "{e}\nlive instances: {:?}\ntemp table: {:?}\nindices: {:?} (before: {indices_before:?})\ncleanup function log:\n{}",
            stack.live_instances(&arn).await,
            stack.temp_table_exists(MediaType::Image).await,
            stack.media_indices(MediaType::Image).await,
            function_logs("CleanupFunction")
        );
    }
    e2e::record(
        "operator",
        "execution stopped by an operator while workers index",
        "ABORTED; the status change rule's cleanup removed workers, temp table and new indices",
        stack
            .left_by_failure(MediaType::Image, &arn, &live_before, &indices_before)
            .await?,
        "faults::an_execution_stopped_by_an_operator_is_cleaned_up_by_the_status_change_rule",
    );
    for instance in instances {
        let ip = instance.ip.unwrap_or_default();
        assert!(
            find_worker_process(&ip)?.is_none(),
            "the worker on {ip} is still running"
        );
    }
    assert_eq!(stack.live_state(MediaType::Image).await?, live_before);
    Ok(())
}
