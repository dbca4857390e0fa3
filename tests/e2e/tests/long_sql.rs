//! Long SQL off the Lambda clock, in the real engine: an index build on the live image table
//! made slower than the stack's Lambda timeout is rebuilt by the worker's `reapply` job and the
//! run succeeds; a worker killed in the middle of that build takes its statement with it (no
//! backend keeps building for a dead client) and a fresh worker builds the index again.
//!
//! The slow index is an expression index over a function that sleeps per row only while a
//! flag is set, so creating it on the live table (setup) is quick and only the run's rebuild
//! is slow; and only inside `CREATE INDEX` (the job's `ANALYZE` evaluates the expression too,
//! and need not be slow).

use anyhow::{bail, Context, Result};
use e2e::{aws_cli_json, exclusive, find_worker_process, kill_hard, load_sample_data, Stack};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const RUN_TIMEOUT: Duration = Duration::from_secs(1200);
const SLOW_INDEX: &str = "e2e_slow_title_idx";

/// The longest timeout among the stack's Lambda functions.
fn lambda_timeout(stack: &Stack) -> Result<Duration> {
    let functions = aws_cli_json(&["lambda", "list-functions"])?;
    let prefix = format!("{}-", stack.stack_name);
    let longest = functions["Functions"]
        .as_array()
        .context("list-functions: no Functions")?
        .iter()
        .filter(|f| {
            f["FunctionName"]
                .as_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .filter_map(|f| f["Timeout"].as_u64())
        .max()
        .context("no function of the stack")?;
    Ok(Duration::from_secs(longest))
}

/// Adds the slow expression index to the live image table, sized so that building it over
/// the table's rows takes about `build` once the flag is on.
async fn add_slow_index(stack: &Stack, build: Duration) -> Result<()> {
    let db = stack.api_db().await?;
    let rows: i64 = db
        .query_one("SELECT count(*) FROM image", &[])
        .await?
        .get(0);
    let per_row = build.as_secs_f64() / rows.max(1) as f64;
    db.batch_execute(&format!(
        "DROP FUNCTION IF EXISTS e2e_slow_lower(text) CASCADE;
         DROP TABLE IF EXISTS e2e_slow_flag;
         CREATE TABLE e2e_slow_flag (seconds_per_row double precision NOT NULL);
         -- Declared IMMUTABLE so it can be indexed; it reads the flag table on purpose.
         CREATE FUNCTION e2e_slow_lower(value text) RETURNS text
             LANGUAGE plpgsql IMMUTABLE AS $fn$
             DECLARE pause double precision;
             BEGIN
                 SELECT seconds_per_row INTO pause FROM public.e2e_slow_flag LIMIT 1;
                 IF pause IS NOT NULL AND current_query() ILIKE 'CREATE%INDEX%' THEN
                     PERFORM pg_sleep(pause);
                 END IF;
                 RETURN lower(value);
             END $fn$;
         CREATE INDEX {SLOW_INDEX} ON image (e2e_slow_lower(title));
         INSERT INTO e2e_slow_flag VALUES ({per_row});"
    ))
    .await?;
    Ok(())
}

/// Drops the function with every index on it (the promoted table's and any leftover).
async fn remove_slow_index(stack: &Stack) -> Result<()> {
    stack
        .api_db()
        .await?
        .batch_execute(
            "DROP FUNCTION IF EXISTS e2e_slow_lower(text) CASCADE;
             DROP TABLE IF EXISTS e2e_slow_flag;",
        )
        .await?;
    Ok(())
}

/// Backends of the API database building the slow index.
async fn slow_index_backends(stack: &Stack) -> Result<Vec<i32>> {
    Ok(stack
        .api_db()
        .await?
        .query(
            "SELECT pid FROM pg_stat_activity
              WHERE datname = 'api' AND pid <> pg_backend_pid() AND state = 'active'
                AND query LIKE '%e2e_slow_lower%'",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The output of the data refresh state `state` (its last exit).
fn state_output(arn: &str, state: &str) -> Result<Value> {
    let history = e2e::execution_history_with_data(arn)?;
    let output = history
        .iter()
        .rev()
        .filter_map(|e| e.get("stateExitedEventDetails"))
        .find(|d| d["name"] == state)
        .and_then(|d| d["output"].as_str())
        .with_context(|| format!("{state} never exited"))?;
    Ok(serde_json::from_str(output)?)
}

fn start_input() -> Value {
    json!({"media_type": "image", "environment": "staging",
           "override_record_drop": true, "override_search_guard": true})
}

#[tokio::test]
async fn an_index_build_longer_than_the_lambda_timeout_runs_on_a_worker() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let timeout = lambda_timeout(&stack)?;
    // Several times the timeout: no retry or resume of a Lambda could get through it.
    add_slow_index(&stack, timeout.mul_f64(2.5)).await?;
    let result = async {
        let arn = stack
            .start(&stack.refresh_arn, "e2e-long-index-build", start_input())
            .await?;
        let done = stack.wait(&arn, RUN_TIMEOUT).await?;
        assert_eq!(
            done.status, "SUCCEEDED",
            "{:?} {:?}",
            done.error, done.cause
        );
        let state = state_output(&arn, "Reapply constraints on a worker")?;
        let job = &state["constraints"]["result"];
        assert_eq!(job["job"], "reapply", "{job}");
        let elapsed = job["elapsed_seconds"].as_f64().context("elapsed_seconds")?;
        assert!(
            elapsed > timeout.as_secs_f64(),
            "the reapply job took {elapsed:.0} s, not longer than the Lambda timeout {timeout:?}: the test proves nothing"
        );
        let built = job["result"]["indexes"]
            .as_array()
            .context("indexes")?
            .iter()
            .any(|i| i["live_name"] == SLOW_INDEX && i["action"] == "created");
        assert!(built, "the slow index is not in the job's report: {job}");
        // The promoted table has it, under its live name.
        let db = stack.api_db().await?;
        let defs: Vec<String> = db
            .query(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'image' AND indexname = $1",
                &[&SLOW_INDEX],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        e2e::record(
            "lambda",
            "an index build 2.5 times the Lambda timeout",
            "built by the reapply job on a worker, off the Lambda clock; run succeeded",
            if defs.len() == 1 {
                "nothing".to_string()
            } else {
                format!("{} copies of the index on the promoted table", defs.len())
            },
            "long_sql::an_index_build_longer_than_the_lambda_timeout_runs_on_a_worker",
        );
        assert_eq!(defs.len(), 1, "{defs:?}");
        assert!(defs[0].contains("e2e_slow_lower"), "{defs:?}");
        Ok::<_, anyhow::Error>(())
    }
    .await;
    remove_slow_index(&stack).await?;
    result
}

#[tokio::test]
#[ignore = "slow variant: scripts/test --slow"]
async fn a_worker_killed_during_an_index_build_takes_the_build_with_it_and_a_fresh_worker_builds_again(
) -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    // Long enough to find the build and kill its worker well before it ends.
    add_slow_index(&stack, Duration::from_secs(60)).await?;
    let result = async {
        let arn = stack
            .start(&stack.refresh_arn, "e2e-long-index-killed", start_input())
            .await?;
        stack
            .wait_for_state(&arn, "Reapply constraints on a worker", RUN_TIMEOUT)
            .await?;
        // The reapply job's worker, once its build of the slow index runs.
        let deadline = Instant::now() + Duration::from_secs(300);
        let (worker, building) = loop {
            if Instant::now() > deadline {
                bail!("the slow index build never started on a worker");
            }
            let reapply = stack
                .instances(&arn)
                .await?
                .into_iter()
                .find(|i| i.range.as_deref() == Some("reapply") && i.state == "running");
            let building = slow_index_backends(&stack).await?;
            if let (Some(instance), false) = (reapply, building.is_empty()) {
                let ip = instance.ip.context("reapply worker without an IP")?;
                if let Some(process) = find_worker_process(&ip)? {
                    break (process, building);
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        kill_hard(worker.pid)?;
        // The build's backends notice their client is gone (client_connection_check_interval,
        // 5 s) instead of building on for nobody: they end long before the build would.
        let killed_at = Instant::now();
        loop {
            let still = slow_index_backends(&stack).await?;
            if !building.iter().any(|pid| still.contains(pid)) {
                break;
            }
            assert!(
                killed_at.elapsed() < Duration::from_secs(20),
                "backends {building:?} still run 20 s after their worker was killed"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let done = stack.wait(&arn, RUN_TIMEOUT).await?;
        assert_eq!(
            done.status, "SUCCEEDED",
            "{:?} {:?}",
            done.error, done.cause
        );
        let state = state_output(&arn, "Reapply constraints on a worker")?;
        let attempt = state["constraints"]["attempt"].as_u64().unwrap_or(0);
        assert!(
            attempt >= 2,
            "the job should have run again on a fresh worker: {state}"
        );
        let launched: Vec<_> = stack
            .instances(&arn)
            .await?
            .into_iter()
            .filter(|i| i.range.as_deref() == Some("reapply"))
            .collect();
        assert!(launched.len() >= 2, "{launched:?}");
        let left = stack.live_instances(&arn).await?;
        e2e::record(
            "worker",
            "the reapply job's worker killed (SIGKILL) mid index build",
            "its build backends ended within 20 s; the job reran on a fresh worker; run succeeded",
            if left.is_empty() {
                "nothing".to_string()
            } else {
                format!("{} instances left running", left.len())
            },
            "long_sql::a_worker_killed_during_an_index_build_takes_the_build_with_it_and_a_fresh_worker_builds_again",
        );
        assert!(left.is_empty(), "every worker is terminated");
        Ok::<_, anyhow::Error>(())
    }
    .await;
    remove_slow_index(&stack).await?;
    result
}
