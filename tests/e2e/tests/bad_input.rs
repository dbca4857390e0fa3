//! Malformed execution inputs through the deployed state machine: every one ends `FAILED`
//! with `InvalidInput` and a cause naming the offending field, and the table as a whole
//! changes nothing (live tables, aliases, `image-*` / `audio-*` indices).

use anyhow::Result;
use e2e::{exclusive, LiveState, MediaType, Stack};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Executions started at once: each is refused in validation within seconds.
const GROUP: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(90);
/// Names of this test's executions (`Stack::start` appends the process id and a clock).
const PREFIX: &str = "e2e-bad-input-";
/// How long to wait for runs started elsewhere to end, and how often to retry the table
/// when one overlapped it.
const QUIET_WAIT: Duration = Duration::from_secs(900);
const ATTEMPTS: u32 = 3;

fn base() -> Value {
    json!({"media_type": "image", "environment": "staging"})
}

fn with(field: &str, value: Value) -> Value {
    let mut input = base();
    input[field] = value;
    input
}

/// (input, what the cause must name).
fn cases() -> Vec<(Value, &'static str)> {
    let long = "a".repeat(250);
    vec![
        // Not an object at all.
        (json!(["image", "staging"]), "execution input"),
        (json!("image"), "execution input"),
        (json!(42), "execution input"),
        (json!(null), "execution input"),
        // Required fields missing, null, empty, of the wrong type or shape.
        (json!({"environment": "staging"}), "media_type"),
        (json!({"media_type": "image"}), "environment"),
        (with("media_type", Value::Null), "media_type"),
        (with("media_type", json!("")), "media_type"),
        (with("media_type", json!("video")), "media_type"),
        (with("media_type", json!(["image"])), "media_type"),
        (with("media_type", json!({"image": null})), "media_type"),
        (with("environment", json!({"staging": null})), "environment"),
        (with("environment", json!("")), "environment"),
        (with("environment", json!(1)), "environment"),
        // Unknown keys.
        (with("indexsuffix", json!("init")), "indexsuffix"),
        (with("table", json!("image; DROP TABLE image;--")), "table"),
        // Optional fields of the wrong type or out of range.
        (with("skip_copy", json!("yes")), "skip_copy"),
        (with("allow_concurrent", json!(1)), "allow_concurrent"),
        (with("wait_if_busy", json!([])), "wait_if_busy"),
        (
            with("override_record_drop", json!("true")),
            "override_record_drop",
        ),
        (
            with("override_search_guard", json!("yes")),
            "override_search_guard",
        ),
        (with("filtered_index", json!("both")), "filtered_index"),
        (
            with("filtered_index", json!("DUAL_WRITE")),
            "filtered_index",
        ),
        (with("filtered_index", json!(true)), "filtered_index"),
        (with("row_limit", json!(-1)), "row_limit"),
        (with("row_limit", json!(0)), "row_limit"),
        (with("row_limit", json!(1e30)), "row_limit"),
        (with("row_limit", json!("100")), "row_limit"),
        (
            with("max_record_drop_pct", json!(-5)),
            "max_record_drop_pct",
        ),
        (
            with("max_record_drop_pct", json!(1e300)),
            "max_record_drop_pct",
        ),
        (
            with("max_record_drop_pct", json!({})),
            "max_record_drop_pct",
        ),
        // Suffixes.
        (with("index_suffix", json!("")), "index_suffix"),
        (with("index_suffix", json!(5)), "index_suffix"),
        (with("index_suffix", json!("Init")), "index_suffix"),
        (with("index_suffix", json!("a/b")), "index_suffix"),
        (with("index_suffix", json!("*")), "index_suffix"),
        (with("index_suffix", json!("a,b")), "index_suffix"),
        (with("index_suffix", json!("a b")), "index_suffix"),
        (with("index_suffix", json!("-x")), "index_suffix"),
        (with("index_suffix", json!("_x")), "index_suffix"),
        (with("index_suffix", json!("+x")), "index_suffix"),
        (with("index_suffix", json!(long)), "index_suffix"),
        (
            with("index_suffix", json!("x'; DROP TABLE image;--")),
            "index_suffix",
        ),
        (with("index_suffix", json!("../x")), "index_suffix"),
        (with("index_suffix", json!("filtered")), "index_suffix"),
        // The context the state machine adds may not come from the input.
        (
            with("start_time", json!("2020-01-01T00:00:00Z")),
            "start_time",
        ),
        (with("execution_id", json!("arn:x")), "execution_id"),
    ]
}

async fn snapshot(stack: &Stack) -> Result<(LiveState, LiveState, BTreeSet<String>)> {
    let mut indices = stack.media_indices(MediaType::Image).await?;
    indices.extend(stack.media_indices(MediaType::Audio).await?);
    Ok((
        stack.live_state(MediaType::Image).await?,
        stack.live_state(MediaType::Audio).await?,
        indices,
    ))
}

/// Executions of either state machine not started by this test that were running at or
/// started after `since`: `exclusive()` serialises the tests of one process only, and a
/// run from elsewhere would change the live state under the comparison.
async fn foreign_executions(stack: &Stack, since: i64) -> Result<Vec<String>> {
    let mut foreign = Vec::new();
    for machine in [&stack.refresh_arn, &stack.filtered_arn] {
        let mut pages = stack
            .sfn
            .list_executions()
            .state_machine_arn(machine)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for execution in page?.executions() {
                let ours = execution.name().starts_with(PREFIX);
                let overlaps = execution.status().as_str() == "RUNNING"
                    || execution.stop_date().is_none_or(|d| d.secs() >= since);
                if !ours && overlaps {
                    foreign.push(execution.name().to_string());
                }
            }
        }
    }
    Ok(foreign)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Starts every case, a group at a time, and returns what did not end as expected and, for
/// each case, the input and what the run did.
async fn run_table(
    stack: &Stack,
    cases: &[(Value, &'static str)],
) -> Result<(Vec<String>, Vec<(String, String)>)> {
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    for (group_number, group) in cases.chunks(GROUP).enumerate() {
        let mut started = Vec::new();
        for (i, (input, field)) in group.iter().enumerate() {
            let name = format!("{PREFIX}{}", group_number * GROUP + i);
            let arn = stack
                .start(&stack.refresh_arn, &name, input.clone())
                .await?;
            started.push((arn, input, *field));
        }
        for (arn, input, field) in started {
            let done = stack.wait(&arn, TIMEOUT).await?;
            let cause = done.cause.clone().unwrap_or_default();
            outcomes.push((
                input.to_string(),
                if cause.contains(field) {
                    format!(
                        "{} {} naming {field}",
                        done.status,
                        done.error.as_deref().unwrap_or("-")
                    )
                } else {
                    format!(
                        "{} {} without naming {field}",
                        done.status,
                        done.error.as_deref().unwrap_or("-")
                    )
                },
            ));
            if done.status != "FAILED"
                || done.error.as_deref() != Some("InvalidInput")
                || !cause.contains(field)
            {
                failures.push(format!(
                    "{input}: {} {:?} (expected InvalidInput naming {field}): {cause}",
                    done.status, done.error
                ));
            }
        }
    }
    Ok((failures, outcomes))
}

#[tokio::test]
async fn malformed_inputs_are_refused_naming_the_field_and_change_nothing() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    let began = Instant::now();
    let cases = cases();
    assert!(cases.len() >= 25);

    // The comparison means something only while nothing else runs on the stack: wait for
    // quiet, and start over if another run overlapped the table.
    for attempt in 1..=ATTEMPTS {
        let quiet_by = Instant::now() + QUIET_WAIT;
        while !foreign_executions(&stack, now_secs()).await?.is_empty() {
            assert!(
                Instant::now() < quiet_by,
                "other executions kept running for {QUIET_WAIT:?}: {:?}",
                foreign_executions(&stack, now_secs()).await?
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let since = now_secs() - 1;
        let before = snapshot(&stack).await?;

        let (failures, outcomes) = run_table(&stack, &cases).await?;
        assert!(
            failures.is_empty(),
            "{} of {} inputs not refused as expected:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );

        let after = snapshot(&stack).await?;
        let overlapped = foreign_executions(&stack, since).await?;
        if !overlapped.is_empty() && attempt < ATTEMPTS {
            eprintln!("attempt {attempt}: other executions overlapped ({overlapped:?}); again");
            continue;
        }
        assert!(
            overlapped.is_empty(),
            "other executions overlapped every attempt: {overlapped:?}"
        );
        let lost = testkit::reliability::lost_on_failure(&[
            ("image live table or aliases changed", before.0 != after.0),
            ("audio live table or aliases changed", before.1 != after.1),
            ("image-*/audio-* indices changed", before.2 != after.2),
        ]);
        for (input, outcome) in &outcomes {
            e2e::record(
                "execution input",
                input,
                outcome,
                lost.clone(),
                "bad_input::malformed_inputs_are_refused_naming_the_field_and_change_nothing",
            );
        }
        assert_eq!(before.0, after.0, "image live table or aliases changed");
        assert_eq!(before.1, after.1, "audio live table or aliases changed");
        assert_eq!(before.2, after.2, "image-*/audio-* indices changed");
        break;
    }
    eprintln!(
        "{} bad inputs refused in {:?}",
        cases.len(),
        began.elapsed()
    );
    Ok(())
}
