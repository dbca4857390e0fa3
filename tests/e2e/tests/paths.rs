//! Paths of the data refresh that the graph tests only draw, executed: the alarm toggle
//! (actions off for the reindex, back on after a success), `skip_copy` reusing a temp table,
//! a run in the production environment, and a queued run whose conflict waits run out.
//! (Alarms back on after a failure: `fault_matrix.rs`, workers that never answer.)

use anyhow::{Context, Result};
use e2e::{
    alarm_actions_enabled, eligible_rows, exclusive, execution_history_with_data, load_sample_data,
    MediaType, Stack,
};
use serde_json::{json, Value};
use std::time::Duration;

const RUN_TIMEOUT: Duration = Duration::from_secs(900);

#[tokio::test]
async fn the_configured_alarms_are_silent_while_the_workers_index_and_back_on_after() -> Result<()>
{
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    stack.multiply_catalog(MediaType::Audio, 10).await?;
    assert!(
        alarm_actions_enabled()?,
        "the alarm starts with its actions on"
    );
    let arn = stack
        .start(
            &stack.refresh_arn,
            "e2e-alarms",
            json!({"media_type": "audio", "environment": "staging",
                   "override_record_drop": true, "override_search_guard": true}),
        )
        .await?;
    stack
        .worker_in_progress(&arn, "staging", 0.0..100.0, Duration::from_secs(300))
        .await?;
    let during = alarm_actions_enabled()?;
    let done = stack.wait(&arn, RUN_TIMEOUT).await?;
    assert_eq!(
        done.status, "SUCCEEDED",
        "{:?} {:?}",
        done.error, done.cause
    );
    assert!(
        !during,
        "the alarm's actions were on while the workers indexed"
    );
    assert!(alarm_actions_enabled()?, "the alarm's actions stayed off");
    let entered = stack.state_names(&arn).await?;
    for state in ["Disable alarm actions", "Enable alarm actions"] {
        assert!(entered.iter().any(|s| s == state), "{state}: {entered:?}");
    }
    stack.back_to_sample(MediaType::Audio).await
}

#[tokio::test]
async fn skip_copy_reindexes_the_temp_table_it_finds() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    // A temp table as a stopped refresh leaves it after its copy: the live rows with their
    // primary key. The run re-filters its tags and goes on from the new index.
    let db = stack.api_db().await?;
    db.batch_execute(
        "DROP TABLE IF EXISTS temp_import_image; \
         CREATE TABLE temp_import_image (LIKE image INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
         INSERT INTO temp_import_image SELECT * FROM image; \
         ALTER TABLE temp_import_image ADD PRIMARY KEY (id);",
    )
    .await?;
    let rows: i64 = db
        .query_one("SELECT count(*) FROM temp_import_image", &[])
        .await?
        .get(0);
    let done = stack
        .run(
            &stack.refresh_arn,
            "e2e-skip-copy",
            json!({"media_type": "image", "environment": "staging", "skip_copy": true}),
            RUN_TIMEOUT,
        )
        .await?;
    assert_eq!(
        done.status, "SUCCEEDED",
        "{:?} {:?}",
        done.error, done.cause
    );
    let entered = stack.state_names(&done.arn).await?;
    assert!(
        entered
            .iter()
            .any(|s| s == "Filter tags on existing temp table")
            && !entered.iter().any(|s| s == "Copy data"),
        "{entered:?}"
    );
    let promoted: i64 = db
        .query_one("SELECT count(*) FROM image", &[])
        .await?
        .get(0);
    assert_eq!(
        promoted, rows,
        "the promoted table is the temp table it found"
    );
    assert_eq!(
        stack.count("image", json!({"match_all": {}})).await?,
        eligible_rows(&db, MediaType::Image).await?
    );
    assert!(!stack.temp_table_exists(MediaType::Image).await?);
    Ok(())
}

#[tokio::test]
async fn a_production_run_uses_its_own_workers_and_no_row_limit() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let done = stack
        .run(
            &stack.refresh_arn,
            "e2e-production",
            json!({"media_type": "audio", "environment": "production"}),
            RUN_TIMEOUT,
        )
        .await?;
    assert_eq!(
        done.status, "SUCCEEDED",
        "{:?} {:?}",
        done.error, done.cause
    );
    assert_eq!(done.output["environment"], "production", "{}", done.output);
    // Every catalog row that is neither deleted nor removed from its source, with no limit.
    let catalog = stack.catalog_db().await?;
    let api = stack.api_db().await?;
    let deleted: Vec<uuid::Uuid> = api
        .query("SELECT identifier FROM api_deletedaudio", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: i64 = catalog
        .query_one(
            "SELECT count(*) FROM audio WHERE NOT removed_from_source AND identifier <> ALL($1)",
            &[&deleted],
        )
        .await?
        .get(0);
    assert_eq!(
        stack.count("audio", json!({"match_all": {}})).await?,
        expected as u64
    );
    // Without a row limit the copy spread over the stack's sessions, one key lane each.
    let copy = last_copy_output(&done.arn)?;
    assert_eq!(
        copy["cursor"]["lanes"], 4,
        "COPY_SESSIONS=4 by default: {copy}"
    );
    assert_eq!(copy["cursor"]["lanes_done"], 4, "{copy}");
    let lanes_table_left: bool = api
        .query_one(
            "SELECT to_regclass('temp_import_audio_copy_lanes') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    assert!(!lanes_table_left, "the lanes table outlived the copy");
    // The production launch template's workers: one per range, tagged for production.
    let launches = stack.launches_once_terminated(&done.arn).await?;
    let ranges = launches
        .keys()
        .filter(|tag| tag.parse::<u32>().is_ok())
        .count();
    assert_eq!(ranges, 2, "WorkersProduction=2 locally: {launches:?}");
    Ok(())
}

#[tokio::test]
async fn a_queued_run_whose_waits_run_out_is_refused_and_the_running_one_goes_on() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let audio_before = stack.live_state(MediaType::Audio).await?;
    let audio_indices_before = stack.media_indices(MediaType::Audio).await?;
    let first = stack
        .start(
            &stack.refresh_arn,
            "e2e-holds-staging",
            json!({"media_type": "image", "environment": "staging"}),
        )
        .await?;
    stack
        .wait_for_state(&first, "Count documents before", Duration::from_secs(120))
        .await?;
    // ConflictMaxWaits down to 2 (of 1 s each locally) for the queued run only.
    let patched = e2e::PatchedDefinition::apply(&stack.refresh_arn, |definition| {
        definition["States"]["Prepare input"]["Parameters"]["settings"]["conflict_max_waits.$"] =
            json!("States.StringToJson('2')");
    })?;
    let queued = stack
        .run(
            &stack.refresh_arn,
            "e2e-waits-run-out",
            json!({"media_type": "audio", "environment": "staging", "wait_if_busy": true}),
            Duration::from_secs(120),
        )
        .await;
    drop(patched);
    let queued = queued?;
    let entered = stack.state_names(&queued.arn).await?;
    let waits = entered
        .iter()
        .filter(|s| *s == "Wait for the other run to finish")
        .count();
    e2e::record(
        "execution",
        "a queued run (wait_if_busy) whose conflict waits run out while another run holds the environment (ConflictMaxWaits lowered to 2)",
        &format!(
            "refused after {waits} waits ({}); the running one went on and succeeded",
            queued.error.as_deref().unwrap_or("-")
        ),
        stack
            .left_by_failure(
                MediaType::Audio,
                &queued.arn,
                &audio_before,
                &audio_indices_before,
            )
            .await?,
        "paths::a_queued_run_whose_waits_run_out_is_refused_and_the_running_one_goes_on",
    );
    assert_eq!(queued.status, "FAILED");
    assert_eq!(
        queued.error.as_deref(),
        Some("ConcurrencyConflict"),
        "{:?}",
        queued.cause
    );
    assert_eq!(waits, 2, "{entered:?}");
    assert!(
        !entered.iter().any(|s| s == "Count documents before"),
        "the refused run started work: {entered:?}"
    );
    let first_done = stack.wait(&first, RUN_TIMEOUT).await?;
    assert_eq!(
        first_done.status, "SUCCEEDED",
        "{:?} {:?}",
        first_done.error, first_done.cause
    );
    assert_eq!(stack.live_state(MediaType::Audio).await?, audio_before);
    Ok(())
}

/// `$.copy` as the run last left *Copy data*.
fn last_copy_output(arn: &str) -> Result<Value> {
    let output = execution_history_with_data(arn)?
        .iter()
        .rev()
        .filter(|event| event["stateExitedEventDetails"]["name"] == "Copy data")
        .find_map(|event| event["stateExitedEventDetails"]["output"].as_str())
        .map(str::to_string)
        .context("the run never left Copy data")?;
    let state: Value = serde_json::from_str(&output)?;
    Ok(state["copy"].clone())
}
