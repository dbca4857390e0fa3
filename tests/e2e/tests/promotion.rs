//! The point of no return, end to end: a block put on the new index after *Promote table*
//! committed and before the aliases move. The run must keep its new indices and roll forward:
//! it completes when the block is lifted within the retry window, and otherwise ends
//! `AliasesNotPromoted` with the indices intact and a finish command that works.
//!
//! The block lands in exactly that window by holding a lock on the live table: *Promote
//! table* waits for it (well inside its lock timeout), the test blocks the index, then lets go.

use anyhow::{bail, Context, Result};
use e2e::*;
use refresh_core::media::MediaType;
use serde_json::{json, Value};
use std::time::Duration;

const RUN_TIMEOUT: Duration = Duration::from_secs(900);
const STATE_TIMEOUT: Duration = Duration::from_secs(600);
const MEDIA: MediaType = MediaType::Audio;

async fn set_read_only(stack: &Stack, index: &str, on: bool) -> Result<()> {
    let (status, body) = stack
        .es(
            reqwest::Method::PUT,
            &format!("{index}/_settings"),
            Some(json!({"index.blocks.read_only": on})),
        )
        .await?;
    if status != 200 {
        bail!("setting index.blocks.read_only={on} on {index} answered {status}: {body}");
    }
    Ok(())
}

/// Starts a refresh and stops it between *Promote table* and *Promote aliases* with a
/// read-only block on its new index. Returns the execution and its new index names.
async fn run_into_a_block(stack: &Stack, name: &str) -> Result<(String, String, String)> {
    if stack.alias_targets(MEDIA.alias()).await?.is_empty() {
        load_sample_data()?;
    }
    let suffix = format!("{name}{}", std::process::id());
    let (new_index, new_filtered) = (
        format!("audio-{suffix}"),
        format!("audio-{suffix}-filtered"),
    );
    let arn = stack
        .start(
            &stack.refresh_arn,
            &format!("e2e-{name}"),
            json!({"media_type": "audio", "environment": "staging", "index_suffix": suffix}),
        )
        .await?;
    stack
        .wait_for_state(&arn, "Check record drop", STATE_TIMEOUT)
        .await?;
    let holder = stack.api_db().await?;
    holder
        .batch_execute(&format!("BEGIN; SELECT count(*) FROM {}", MEDIA.table()))
        .await?;
    stack
        .wait_for_state(&arn, "Promote table", STATE_TIMEOUT)
        .await?;
    set_read_only(stack, &new_index, true).await?;
    holder.batch_execute("COMMIT").await?;
    stack
        .wait_for_state(&arn, "Wait before retrying the aliases", STATE_TIMEOUT)
        .await?;
    Ok((arn, new_index, new_filtered))
}

/// The table is promoted (its record exists) and the aliases are not: the window in which
/// cleanup used to delete the only indices matching the live table.
async fn assert_half_promoted(stack: &Stack, new_index: &str, new_filtered: &str) -> Result<()> {
    let db = stack.api_db().await?;
    let promoted: bool = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM data_refresh.promotions WHERE new_index = $1)",
            &[&new_index],
        )
        .await?
        .get(0);
    assert!(promoted, "no promotion record for {new_index}");
    assert!(!stack.temp_table_exists(MEDIA).await?);
    assert!(!stack
        .alias_targets(MEDIA.alias())
        .await?
        .contains(new_index));
    assert!(stack.index_exists(new_index).await? && stack.index_exists(new_filtered).await?);
    Ok(())
}

#[tokio::test]
async fn a_block_lifted_within_the_window_is_rolled_forward() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    let (arn, new_index, new_filtered) = run_into_a_block(&stack, "rollforward").await?;
    assert_half_promoted(&stack, &new_index, &new_filtered).await?;
    let old = stack.alias_targets(MEDIA.alias()).await?;

    set_read_only(&stack, &new_index, false).await?;
    let finished = stack.wait(&arn, RUN_TIMEOUT).await?;
    assert_eq!(
        finished.status, "SUCCEEDED",
        "{:?} {:?}",
        finished.error, finished.cause
    );
    assert_eq!(
        stack.alias_targets(MEDIA.alias()).await?,
        [new_index.clone()].into()
    );
    assert_eq!(
        stack.alias_targets(MEDIA.filtered_alias()).await?,
        [new_filtered.clone()].into()
    );
    let mut old_left = Vec::new();
    for index in &old {
        if stack.index_exists(index).await? {
            old_left.push(index.clone());
        }
    }
    e2e::record(
        "promotion",
        "a write block on the new index between table and alias promotion, lifted within the window",
        "the aliases were retried and rolled forward; run succeeded",
        old_indices_left(&old_left),
        "promotion::a_block_lifted_within_the_window_is_rolled_forward",
    );
    assert!(old_left.is_empty(), "old indices left: {old_left:?}");
    let states = stack.state_names(&arn).await?;
    assert!(
        states.iter().filter(|s| *s == "Promote aliases").count() >= 2,
        "{states:?}"
    );
    assert!(
        !states.iter().any(|s| s == "Clean up failed run"),
        "{states:?}"
    );

    // The report says which guards ran, with their figures.
    let guards = &finished.output["guards"];
    assert_eq!(
        guards["record_drop"]["overridden"],
        json!(false),
        "{guards}"
    );
    assert_eq!(guards["search"]["ran"], json!(true), "{guards}");
    assert!(
        guards["search"]["queries"].as_array().is_some_and(
            |queries| queries.len() >= 5 && queries.iter().all(|q| q["passed"] == json!(true))
        ),
        "{guards}"
    );
    assert_eq!(
        guards["preflight"]["indices"][&new_index],
        json!("green"),
        "{guards}"
    );
    Ok(())
}

#[tokio::test]
async fn a_block_that_outlasts_the_window_keeps_the_new_indices_and_the_finish_works() -> Result<()>
{
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    let (arn, new_index, new_filtered) = run_into_a_block(&stack, "unfinished").await?;
    let finished = stack.wait(&arn, RUN_TIMEOUT).await?;
    assert_eq!(finished.status, "FAILED");
    assert_eq!(finished.error.as_deref(), Some("AliasesNotPromoted"));
    let cause = finished.cause.clone().unwrap_or_default();
    assert!(
        cause.contains("table is promoted but its aliases are not") && cause.contains(&new_index),
        "{cause}"
    );
    let states = stack.state_names(&arn).await?;
    assert!(
        states.iter().any(|s| s == "Clean up failed run"),
        "{states:?}"
    );

    // Both cleanups (the Catch path, and the status change rule a moment later) must keep the
    // indices the promoted table's rows are in.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_half_promoted(&stack, &new_index, &new_filtered).await?;
    let cleanup_logs = function_logs("Cleanup");
    assert!(
        cleanup_logs.contains("point of no return"),
        "the cleanup did not say why it kept the indices: {cleanup_logs}"
    );

    // The finish the cause names: the payload in it, to the stack's PromoteAliasesFunctionName.
    let payload = finish_payload(&cause)?;
    assert_eq!(payload["index"], json!(new_index), "{payload} from {cause}");
    set_read_only(&stack, &new_index, false).await?;
    let outputs = aws_cli_json(&[
        "cloudformation",
        "describe-stacks",
        "--stack-name",
        &stack.stack_name,
    ])?;
    let function = outputs["Stacks"][0]["Outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["OutputKey"] == "PromoteAliasesFunctionName")
        .and_then(|o| o["OutputValue"].as_str())
        .context("no PromoteAliasesFunctionName output")?
        .to_string();
    let reply_file = std::env::temp_dir().join(format!("finish-{}.json", std::process::id()));
    let invoked = aws_cli_json(&[
        "lambda",
        "invoke",
        "--function-name",
        &function,
        "--payload",
        &payload.to_string(),
        reply_file.to_str().context("temp path")?,
    ])?;
    let reply: Value = serde_json::from_slice(&std::fs::read(&reply_file)?)?;
    let _ = std::fs::remove_file(&reply_file);
    assert!(invoked.get("FunctionError").is_none(), "{invoked} {reply}");
    let both_moved = stack.alias_targets(MEDIA.alias()).await? == [new_index.clone()].into()
        && stack.alias_targets(MEDIA.filtered_alias()).await? == [new_filtered.clone()].into();
    e2e::record(
        "promotion",
        "a write block on the new index that outlasts the alias window",
        "AliasesNotPromoted with the promoted table's indices kept through both cleanups; the documented finish moved both aliases",
        if both_moved {
            "nothing".to_string()
        } else {
            "aliases not moved by the finish".to_string()
        },
        "promotion::a_block_that_outlasts_the_window_keeps_the_new_indices_and_the_finish_works",
    );
    assert_eq!(
        stack.alias_targets(MEDIA.alias()).await?,
        [new_index.clone()].into()
    );
    assert_eq!(
        stack.alias_targets(MEDIA.filtered_alias()).await?,
        [new_filtered.clone()].into()
    );
    // What the run would have deleted next: the indices the aliases left.
    for old in reply["previous_indices"].as_array().into_iter().flatten() {
        let old = old.as_str().context("index name")?;
        stack.es(reqwest::Method::DELETE, old, None).await?;
    }
    Ok(())
}

fn old_indices_left(old_left: &[String]) -> String {
    if old_left.is_empty() {
        "nothing".to_string()
    } else {
        format!("old indices left: {}", old_left.join(", "))
    }
}

/// The JSON object the cause ends with, for the finish.
fn finish_payload(cause: &str) -> Result<Value> {
    const MARK: &str = "with the payload ";
    let start = cause
        .rfind(MARK)
        .with_context(|| format!("no payload in {cause}"))?
        + MARK.len();
    serde_json::from_str(cause[start..].trim()).with_context(|| format!("payload in {cause}"))
}
