//! More of the fault matrix, in the real engine (the first faults are in `faults.rs`):
//! PostgreSQL connections killed during the copy and during *Promote table*, a worker's
//! instance terminated through the EC2 API mid-range (as a spot interruption would),
//! Elasticsearch lost during the main reindex, workers that never answer their health check,
//! a short step's Lambda that times out, the execution timing out, and the limit exits:
//! instances that never reach running, a range that outlasts its polls, a new index that
//! never turns green.
//!
//! A fault the run survives must end with the exact document count; one it cannot must leave
//! the live table byte for byte as it was (rows and a checksum of `(id, identifier)`), both
//! aliases on the same indices, and no instance, temp table or new index.

use anyhow::{bail, Context, Result};
use e2e::{
    alarm_actions_enabled, eligible_rows, exclusive, find_worker_process, kill_elasticsearch,
    lambda_processes, load_sample_data, restart_local_services, signal, MediaType, Stack,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const RUN_TIMEOUT: Duration = Duration::from_secs(900);
/// About 93 000 image rows: the copy and the reindex last long enough to be hit.
const LONG_RUN_COPIES: u32 = 30;

/// Terminates every backend of the API database whose query matches `pattern` (SQL `LIKE`),
/// polling until at least one was found or `timeout` passed. Returns how many.
async fn terminate_backends(stack: &Stack, pattern: &str, timeout: Duration) -> Result<u64> {
    let db = stack.api_db().await?;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let killed: i64 = db
            .query_one(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
                   FROM pg_stat_activity
                  WHERE datname = 'api' AND pid <> pg_backend_pid() AND query LIKE $1
                    AND state <> 'idle'",
                &[&pattern],
            )
            .await?
            .get(0);
        if killed > 0 {
            return Ok(killed as u64);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no backend running {pattern:?} within {timeout:?}")
}

/// How often a state's task failed (and was retried or caught).
async fn failed_attempts(stack: &Stack, arn: &str, state: &str) -> Result<usize> {
    let mut current = String::new();
    let mut failures = 0;
    let mut pages = stack
        .sfn
        .get_execution_history()
        .execution_arn(arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for event in page?.events() {
            if let Some(entered) = event.state_entered_event_details() {
                current = entered.name().to_string();
            }
            let kind = event.r#type().as_str();
            if current == state && (kind == "TaskFailed" || kind == "LambdaFunctionFailed") {
                failures += 1;
            }
        }
    }
    Ok(failures)
}

#[tokio::test]
async fn postgres_connections_killed_during_the_copy_are_retried_and_the_count_is_exact(
) -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    stack
        .multiply_catalog(MediaType::Image, LONG_RUN_COPIES)
        .await?;
    let arn = stack
        .start(
            &stack.refresh_arn,
            "e2e-pg-killed-copy",
            json!({"media_type": "image", "environment": "staging",
                   "override_record_drop": true, "override_search_guard": true}),
        )
        .await?;
    stack
        .wait_for_state(&arn, "Copy data", Duration::from_secs(300))
        .await?;
    let killed = terminate_backends(
        &stack,
        "%INSERT INTO \"temp_import_image\"%",
        Duration::from_secs(120),
    )
    .await?;
    let done = stack.wait(&arn, RUN_TIMEOUT).await?;
    assert_eq!(
        done.status, "SUCCEEDED",
        "after {killed} copy backends were killed: {:?} {:?}",
        done.error, done.cause
    );
    assert!(failed_attempts(&stack, &arn, "Copy data").await? >= 1);
    let db = stack.api_db().await?;
    let eligible = eligible_rows(&db, MediaType::Image).await?;
    let indexed = stack.count("image", json!({"match_all": {}})).await?;
    e2e::record(
        "postgresql",
        "copy's backends killed (pg_terminate_backend) mid-copy",
        "Copy data retried from its cursor; run succeeded",
        e2e::lost_documents(eligible, indexed),
        "fault_matrix::postgres_connections_killed_during_the_copy_are_retried_and_the_count_is_exact",
    );
    assert_eq!(indexed, eligible, "documents after the copy was retried");
    stack.back_to_sample(MediaType::Image).await
}

#[tokio::test]
#[ignore = "slow variant: scripts/test --slow"]
async fn a_postgres_connection_killed_during_promote_table_is_retried() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let arn = stack
        .start(
            &stack.refresh_arn,
            "e2e-pg-killed-promote",
            json!({"media_type": "audio", "environment": "staging",
                   "override_record_drop": true, "override_search_guard": true}),
        )
        .await?;
    stack
        .wait_for_state(&arn, "Check record drop", RUN_TIMEOUT)
        .await?;
    // Holding the live table keeps the promotion transaction waiting for its lock, where
    // its connection is killed: mid-transaction, with the swap not yet done.
    let holder = stack.api_db().await?;
    holder
        .batch_execute("BEGIN; SELECT count(*) FROM audio")
        .await?;
    stack
        .wait_for_state(&arn, "Promote table", RUN_TIMEOUT)
        .await?;
    let killed = terminate_backends(&stack, "LOCK TABLE%", Duration::from_secs(60)).await?;
    holder.batch_execute("COMMIT").await?;
    let done = stack.wait(&arn, RUN_TIMEOUT).await?;
    assert_eq!(
        done.status, "SUCCEEDED",
        "after {killed} promotion backends were killed: {:?} {:?}",
        done.error, done.cause
    );
    assert!(failed_attempts(&stack, &arn, "Promote table").await? >= 1);
    let db = stack.api_db().await?;
    let rows: i64 = db
        .query_one("SELECT count(*) FROM audio", &[])
        .await?
        .get(0);
    let catalog = stack.catalog_db().await?;
    let catalog_rows: i64 = catalog
        .query_one("SELECT count(*) FROM audio", &[])
        .await?
        .get(0);
    assert!(rows > 0 && rows <= catalog_rows, "{rows} of {catalog_rows}");
    assert!(!stack.temp_table_exists(MediaType::Audio).await?);
    let eligible = eligible_rows(&db, MediaType::Audio).await?;
    let indexed = stack.count("audio", json!({"match_all": {}})).await?;
    e2e::record(
        "postgresql",
        "Promote table's backend killed while it waits for its lock",
        "Promote table retried, promoted once; run succeeded",
        e2e::lost_documents(eligible, indexed),
        "fault_matrix::a_postgres_connection_killed_during_promote_table_is_retried",
    );
    assert_eq!(indexed, eligible);
    Ok(())
}

#[tokio::test]
#[ignore = "slow variant: scripts/test --slow"]
async fn an_instance_terminated_through_the_ec2_api_mid_range_reruns_its_range() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    stack
        .multiply_catalog(MediaType::Image, LONG_RUN_COPIES)
        .await?;
    let arn = stack
        .start(
            &stack.refresh_arn,
            "e2e-spot-interruption",
            json!({"media_type": "image", "environment": "staging",
                   "override_record_drop": true, "override_search_guard": true}),
        )
        .await?;
    let (victim, _worker, task) = stack
        .worker_in_progress(&arn, "staging", 5.0..70.0, Duration::from_secs(300))
        .await?;
    stack
        .ec2
        .terminate_instances()
        .instance_ids(&victim.id)
        .send()
        .await?;
    let done = stack.wait(&arn, RUN_TIMEOUT).await?;
    assert_eq!(
        done.status, "SUCCEEDED",
        "after terminating {} at {:.0}%: {:?} {:?}",
        victim.id, task.progress, done.error, done.cause
    );
    let mut launches = stack.launches_once_terminated(&arn).await?;
    assert_eq!(
        launches.remove(&victim.range.clone().unwrap_or_default()),
        Some(2),
        "the interrupted range runs again on a fresh worker"
    );
    assert!(launches.values().all(|&n| n == 1), "{launches:?}");
    let db = stack.api_db().await?;
    let eligible = eligible_rows(&db, MediaType::Image).await?;
    let indexed = stack.count("image", json!({"match_all": {}})).await?;
    e2e::record(
        "worker",
        "instance terminated through the EC2 API mid-range (spot interruption)",
        "its range reran on a fresh worker; run succeeded",
        e2e::lost_documents(eligible, indexed),
        "fault_matrix::an_instance_terminated_through_the_ec2_api_mid_range_reruns_its_range",
    );
    assert_eq!(indexed, eligible);
    stack.back_to_sample(MediaType::Image).await
}

#[tokio::test]
#[ignore = "slow variant: scripts/test --slow"]
async fn elasticsearch_lost_during_the_main_reindex_fails_the_run_and_changes_nothing() -> Result<()>
{
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
            "e2e-es-lost-reindex",
            json!({"media_type": "image", "environment": "staging"}),
        )
        .await?;
    stack
        .worker_in_progress(&arn, "staging", 1.0..90.0, Duration::from_secs(300))
        .await?;
    kill_elasticsearch()?;
    let gave_up = stack
        .wait_for_state(
            &arn,
            "Re-enable alarm actions after failure?",
            Duration::from_secs(600),
        )
        .await;
    restart_local_services()?;
    gave_up?;
    let done = stack.wait(&arn, RUN_TIMEOUT).await?;
    assert_eq!(done.status, "FAILED", "{:?}", done.error);
    assert!(!stack
        .state_names(&arn)
        .await?
        .iter()
        .any(|s| s == "Finish new index"));
    stack
        .eventually(
            "new indices and temp table removed",
            Duration::from_secs(300),
            || async {
                Ok(
                    stack.media_indices(MediaType::Image).await? == indices_before
                        && !stack.temp_table_exists(MediaType::Image).await?,
                )
            },
        )
        .await?;
    e2e::record(
        "elasticsearch",
        "Elasticsearch killed during the main reindex",
        &format!("failed cleanly ({})", done.error.as_deref().unwrap_or("-")),
        stack
            .left_by_failure(MediaType::Image, &arn, &live_before, &indices_before)
            .await?,
        "fault_matrix::elasticsearch_lost_during_the_main_reindex_fails_the_run_and_changes_nothing",
    );
    assert_eq!(stack.live_state(MediaType::Image).await?, live_before);
    assert!(stack.live_instances(&arn).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn workers_that_never_answer_fail_their_range_after_every_attempt_and_change_nothing(
) -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let live_before = stack.live_state(MediaType::Audio).await?;
    let indices_before = stack.media_indices(MediaType::Audio).await?;
    // WorkerHealthMaxChecks down to 3 for the ranges: each check of a frozen worker waits for
    // its timeout, and 40 of them, three attempts over, would take 12 minutes.
    let patched = e2e::PatchedDefinition::apply(&stack.worker_range_arn(), |definition| {
        definition["States"]["Prepare range"]["Parameters"]["settings"]
            ["worker_health_max_checks.$"] = json!("States.StringToJson('3')");
    })?;
    let arn = stack
        .start(
            &stack.refresh_arn,
            "e2e-worker-never-answers",
            json!({"media_type": "audio", "environment": "staging"}),
        )
        .await?;
    // Each reindex worker is frozen (SIGSTOP) as soon as its process shows: its port takes
    // connections but nothing answers, as with a hung boot. The SQL jobs' workers run.
    let mut frozen = BTreeSet::new();
    let mut alarm_while_frozen = None;
    let deadline = Instant::now() + RUN_TIMEOUT;
    let outcome = async {
        while stack.status(&arn).await? == "RUNNING" {
            if Instant::now() > deadline {
                bail!("the run did not end within {RUN_TIMEOUT:?}");
            }
            for instance in stack.instances(&arn).await? {
                let is_range = instance
                    .range
                    .as_deref()
                    .is_some_and(|r| r.parse::<u32>().is_ok());
                let (Some(ip), true) = (&instance.ip, is_range) else {
                    continue;
                };
                if instance.state == "terminated" || instance.state == "shutting-down" {
                    continue;
                }
                if let Some(worker) = find_worker_process(ip)? {
                    if frozen.insert(worker.pid) {
                        signal(worker.pid, "STOP")?;
                        alarm_while_frozen.get_or_insert(alarm_actions_enabled()?);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stack.wait(&arn, RUN_TIMEOUT).await
    }
    .await;
    drop(patched);
    for pid in &frozen {
        signal(*pid, "CONT")?;
    }
    let done = outcome?;
    assert_eq!(done.status, "FAILED");
    // The alarms were silent for the reindex and are back on after the failure.
    assert_eq!(alarm_while_frozen, Some(false));
    assert!(alarm_actions_enabled()?, "the alarm's actions stayed off");
    // The last attempt of a range ended at the health-check limit.
    assert_eq!(
        done.error.as_deref(),
        Some("WorkerNotReady"),
        "{:?}",
        done.cause
    );
    let launches = stack.launches_once_terminated(&arn).await?;
    let range_launches: Vec<usize> = launches
        .iter()
        .filter(|(tag, _)| tag.parse::<u32>().is_ok())
        .map(|(_, n)| *n)
        .collect();
    assert!(
        range_launches.contains(&3),
        "a range tried on 3 fresh workers (RangeMaxAttempts): {launches:?}"
    );
    assert!(frozen.len() >= 3, "{frozen:?}");
    stack
        .wait_until_cleaned_up(MediaType::Audio, &indices_before)
        .await?;
    e2e::record(
        "worker",
        "every reindex worker frozen (SIGSTOP) before it answers its health check (WorkerHealthMaxChecks lowered to 3)",
        &format!(
            "each attempt ended at the health-check limit; failed cleanly ({})",
            done.error.as_deref().unwrap_or("-")
        ),
        stack
            .left_by_failure(MediaType::Audio, &arn, &live_before, &indices_before)
            .await?,
        "fault_matrix::workers_that_never_answer_fail_their_range_after_every_attempt_and_change_nothing",
    );
    assert_eq!(stack.live_state(MediaType::Audio).await?, live_before);
    assert!(stack.live_instances(&arn).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_short_steps_lambda_that_times_out_is_retried_and_the_run_succeeds() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    stack
        .multiply_catalog(MediaType::Image, LONG_RUN_COPIES)
        .await?;
    let arn = stack
        .start(
            &stack.refresh_arn,
            "e2e-lambda-timeout",
            json!({"media_type": "image", "environment": "staging",
                   "override_record_drop": true, "override_search_guard": true}),
        )
        .await?;
    // Mid-reindex, every process of the progress poll's function is frozen: the next poll
    // hangs until the Lambda host's timeout kills it (Sandbox.Timedout).
    stack
        .worker_in_progress(&arn, "staging", 1.0..60.0, Duration::from_secs(300))
        .await?;
    let frozen = lambda_processes("get_reindex_task")?;
    assert!(!frozen.is_empty(), "no warm get_reindex_task process");
    for pid in &frozen {
        signal(*pid, "STOP")?;
    }
    let done = stack.wait(&arn, RUN_TIMEOUT).await;
    for pid in &frozen {
        signal(*pid, "CONT")?;
    }
    let done = done?;
    assert_eq!(
        done.status, "SUCCEEDED",
        "{:?} {:?}",
        done.error, done.cause
    );
    let mut timed_out = 0;
    for child in stack.child_executions(&arn).await? {
        let history = e2e::execution_history_with_data(&child)?;
        timed_out += history
            .iter()
            .filter(|event| {
                event["lambdaFunctionFailedEventDetails"]["error"] == "Sandbox.Timedout"
                    || event["taskFailedEventDetails"]["error"] == "Sandbox.Timedout"
            })
            .count();
    }
    assert!(
        timed_out >= 1,
        "no poll timed out: the fault was not injected"
    );
    // A retried poll, not a retried range: one worker per range.
    let launches = stack.launches_once_terminated(&arn).await?;
    assert!(launches.values().all(|&n| n == 1), "{launches:?}");
    let db = stack.api_db().await?;
    let eligible = eligible_rows(&db, MediaType::Image).await?;
    let indexed = stack.count("image", json!({"match_all": {}})).await?;
    e2e::record(
        "lambda",
        "the progress poll's Lambda frozen mid-reindex until its timeout (Sandbox.Timedout)",
        "the poll retried on a fresh invocation, no range rerun; run succeeded",
        e2e::lost_documents(eligible, indexed),
        "fault_matrix::a_short_steps_lambda_that_times_out_is_retried_and_the_run_succeeds",
    );
    assert_eq!(indexed, eligible);
    stack
        .back_to_sample(MediaType::Image)
        .await
        .context("back to the sample")
}

#[tokio::test]
async fn an_execution_that_times_out_mid_run_is_cleaned_up_and_changes_nothing() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    stack
        .multiply_catalog(MediaType::Image, LONG_RUN_COPIES)
        .await?;
    let live_before = stack.live_state(MediaType::Image).await?;
    let indices_before = stack.media_indices(MediaType::Image).await?;
    let arn = {
        // The template fixes TimeoutSeconds (48 h; no substitution there): lowered on the
        // deployed definition for this start only.
        let _lowered = e2e::PatchedDefinition::apply(&stack.refresh_arn, |definition| {
            definition["TimeoutSeconds"] = json!(25);
        })?;
        stack
            .start(
                &stack.refresh_arn,
                "e2e-execution-timeout",
                json!({"media_type": "image", "environment": "staging"}),
            )
            .await?
    };
    let done = stack.wait(&arn, RUN_TIMEOUT).await?;
    assert_eq!(
        done.status, "TIMED_OUT",
        "{:?} {:?}",
        done.error, done.cause
    );
    let entered = stack.state_names(&arn).await?;
    // Past the copy (a temp table and workers to clean up), before any promotion.
    assert!(
        entered.iter().any(|s| s == "Copy data") && !entered.iter().any(|s| s == "Promote table"),
        "the timeout must hit mid-run: {entered:?}"
    );
    // Nothing in the run caught it: the status change rule's cleanup stops the ranges and
    // terminates their workers, then drops the temp table and the new indices.
    stack
        .eventually(
            "ranges stopped, workers gone, temp table and new indices removed",
            Duration::from_secs(300),
            || async {
                let mut ranges_running = false;
                for child in stack.child_executions(&arn).await? {
                    ranges_running |= stack.status(&child).await? == "RUNNING";
                }
                Ok(!ranges_running
                    && stack.live_instances(&arn).await?.is_empty()
                    && stack.media_indices(MediaType::Image).await? == indices_before
                    && !stack.temp_table_exists(MediaType::Image).await?)
            },
        )
        .await?;
    e2e::record(
        "execution",
        "the execution timed out mid-run (TimeoutSeconds lowered to 25 s)",
        "TIMED_OUT; the status change rule's cleanup stopped the ranges and removed workers, temp table and new indices",
        stack
            .left_by_failure(MediaType::Image, &arn, &live_before, &indices_before)
            .await?,
        "fault_matrix::an_execution_that_times_out_mid_run_is_cleaned_up_and_changes_nothing",
    );
    assert_eq!(stack.live_state(MediaType::Image).await?, live_before);
    stack.back_to_sample(MediaType::Image).await
}

#[tokio::test]
async fn a_range_that_outlasts_its_polls_fails_after_every_attempt_and_changes_nothing(
) -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    stack
        .multiply_catalog(MediaType::Image, LONG_RUN_COPIES)
        .await?;
    let live_before = stack.live_state(MediaType::Image).await?;
    let indices_before = stack.media_indices(MediaType::Image).await?;
    // ReindexMaxPolls down to 2 for the ranges (their PollSeconds is 1 s locally): no range
    // of 93 000 rows is done by then. The SQL jobs (Prepare SQL job) keep their limit. The
    // ranges' executions start mid-run: the patch stays until the run ends.
    let patched = e2e::PatchedDefinition::apply(&stack.worker_range_arn(), |definition| {
        definition["States"]["Prepare range"]["Parameters"]["settings"]["reindex_max_polls.$"] =
            json!("States.StringToJson('2')");
    })?;
    let arn = stack
        .start(
            &stack.refresh_arn,
            "e2e-reindex-too-long",
            json!({"media_type": "image", "environment": "staging"}),
        )
        .await?;
    let done = stack.wait(&arn, RUN_TIMEOUT).await;
    drop(patched);
    let done = done?;
    assert_eq!(done.status, "FAILED", "{:?}", done.cause);
    stack
        .wait_until_cleaned_up(MediaType::Image, &indices_before)
        .await?;
    e2e::record(
        "worker",
        "every range outlasts its poll limit (ReindexMaxPolls lowered to 2)",
        &format!(
            "each attempt ended at the poll limit; failed cleanly ({})",
            done.error.as_deref().unwrap_or("-")
        ),
        stack
            .left_by_failure(MediaType::Image, &arn, &live_before, &indices_before)
            .await?,
        "fault_matrix::a_range_that_outlasts_its_polls_fails_after_every_attempt_and_changes_nothing",
    );
    assert_eq!(done.error.as_deref(), Some("WorkerTaskTimedOut"));
    let launches = stack.launches_once_terminated(&arn).await?;
    assert!(
        launches
            .iter()
            .any(|(tag, n)| tag.parse::<u32>().is_ok() && *n == 3),
        "a range tried on 3 fresh workers: {launches:?}"
    );
    assert_eq!(stack.live_state(MediaType::Image).await?, live_before);
    assert!(stack.live_instances(&arn).await?.is_empty());
    stack.back_to_sample(MediaType::Image).await
}

/// Holds every instance launched while it lives in `pending` (the local EC2 emulator reads
/// `data/ec2/boot-delay-seconds` at each launch); removed when dropped.
struct InstancesHeldPending(std::path::PathBuf);

impl InstancesHeldPending {
    fn start() -> Result<Self> {
        let path = e2e::local_dir().join("data/ec2/boot-delay-seconds");
        std::fs::write(&path, "3600").with_context(|| format!("writing {}", path.display()))?;
        Ok(InstancesHeldPending(path))
    }
}

impl Drop for InstancesHeldPending {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test]
async fn instances_that_never_reach_running_fail_their_range_after_every_attempt_and_change_nothing(
) -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let live_before = stack.live_state(MediaType::Audio).await?;
    let indices_before = stack.media_indices(MediaType::Audio).await?;
    let patched = e2e::PatchedDefinition::apply(&stack.worker_range_arn(), |definition| {
        definition["States"]["Prepare range"]["Parameters"]["settings"]["instance_max_checks.$"] =
            json!("States.StringToJson('3')");
    })?;
    let arn = stack
        .start(
            &stack.refresh_arn,
            "e2e-instance-never-runs",
            json!({"media_type": "audio", "environment": "staging"}),
        )
        .await?;
    // The copy's SQL job has had its worker by then; only the ranges' instances stay pending.
    let held = async {
        stack
            .wait_for_state(&arn, "Create new index", Duration::from_secs(300))
            .await?;
        InstancesHeldPending::start()
    }
    .await;
    let done = stack.wait(&arn, RUN_TIMEOUT).await;
    drop(held);
    drop(patched);
    let done = done?;
    assert_eq!(done.status, "FAILED", "{:?}", done.cause);
    stack
        .wait_until_cleaned_up(MediaType::Audio, &indices_before)
        .await?;
    e2e::record(
        "worker",
        "every reindex worker's instance held in pending, never running (InstanceMaxChecks lowered to 3)",
        &format!(
            "each attempt ended at the instance-check limit; failed cleanly ({})",
            done.error.as_deref().unwrap_or("-")
        ),
        stack
            .left_by_failure(MediaType::Audio, &arn, &live_before, &indices_before)
            .await?,
        "fault_matrix::instances_that_never_reach_running_fail_their_range_after_every_attempt_and_change_nothing",
    );
    assert_eq!(
        done.error.as_deref(),
        Some("WorkerNotReady"),
        "{:?}",
        done.cause
    );
    let launches = stack.launches_once_terminated(&arn).await?;
    assert!(
        launches
            .iter()
            .any(|(tag, n)| tag.parse::<u32>().is_ok() && *n == 3),
        "a range tried on 3 fresh instances: {launches:?}"
    );
    // They ended at the instance limit, before any health check.
    let mut range_states = Vec::new();
    for child in stack.child_executions(&arn).await? {
        let states = stack.state_names(&child).await?;
        if states.iter().any(|s| s == "Prepare range") {
            range_states.extend(states);
        }
    }
    assert!(
        range_states
            .iter()
            .any(|s| s == "Worker instance did not start"),
        "{range_states:?}"
    );
    assert!(
        !range_states.iter().any(|s| s == "Check worker health"),
        "{range_states:?}"
    );
    assert_eq!(stack.live_state(MediaType::Audio).await?, live_before);
    assert!(stack.live_instances(&arn).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_new_index_that_never_turns_green_fails_the_run_and_changes_nothing() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let live_before = stack.live_state(MediaType::Audio).await?;
    let indices_before = stack.media_indices(MediaType::Audio).await?;
    // One replica on a one-node cluster: no node may hold it, the index stays yellow, as on a
    // cluster that lost the nodes for its replicas. Two health checks instead of 120.
    let replicas = e2e::FunctionEnvironment::set("FinishIndexFunction", "SERVING_REPLICAS", "1")?;
    let patched = e2e::PatchedDefinition::apply(&stack.refresh_arn, |definition| {
        definition["States"]["Prepare input"]["Parameters"]["settings"]
            ["index_health_max_checks.$"] = json!("States.StringToJson('2')");
    })?;
    let done = stack
        .run(
            &stack.refresh_arn,
            "e2e-index-never-green",
            json!({"media_type": "audio", "environment": "staging"}),
            RUN_TIMEOUT,
        )
        .await;
    drop(patched);
    drop(replicas);
    let done = done?;
    assert_eq!(done.status, "FAILED", "{:?}", done.cause);
    stack
        .wait_until_cleaned_up(MediaType::Audio, &indices_before)
        .await?;
    e2e::record(
        "elasticsearch",
        "the new index never turns green: a replica no node can hold (SERVING_REPLICAS 1 on one node; IndexHealthMaxChecks lowered to 2)",
        &format!(
            "ended at the health-check limit before the filtered index; failed cleanly ({})",
            done.error.as_deref().unwrap_or("-")
        ),
        stack
            .left_by_failure(MediaType::Audio, &done.arn, &live_before, &indices_before)
            .await?,
        "fault_matrix::a_new_index_that_never_turns_green_fails_the_run_and_changes_nothing",
    );
    assert_eq!(
        done.error.as_deref(),
        Some("IndexNotHealthy"),
        "{:?}",
        done.cause
    );
    let entered = stack.state_names(&done.arn).await?;
    assert!(
        entered
            .iter()
            .any(|s| s == "New index never became healthy"),
        "{entered:?}"
    );
    // Neither the dual-write gate nor a filtered _reindex ran.
    assert!(
        !entered
            .iter()
            .any(|s| s == "Create filtered index" || s == "Verify filtered index"),
        "{entered:?}"
    );
    assert!(alarm_actions_enabled()?, "the alarm's actions stayed off");
    assert_eq!(stack.live_state(MediaType::Audio).await?, live_before);
    Ok(())
}
