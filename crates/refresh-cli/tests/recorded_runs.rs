//! Rendering of recorded executions (LocalStack, e2e suite; trimmed by
//! `tests/fixtures/trim.py` to the data the CLI reads, every event kept): snapshots of the
//! status summary, the plain lines, the JSON lines and the bar texts, plus checks of what
//! each run must show whatever the snapshot says.

use chrono::{DateTime, Utc};
use refresh_cli::error::exit_code_for;
use refresh_cli::follow::Tracker;
use refresh_cli::history::{recorded_run, ExecutionInfo, HistoryEvent};
use refresh_cli::interpret::replay;
use refresh_cli::model::{RangePhase, Run, RunEvent, RunResult, StageOutcome, Verdict};
use refresh_cli::origin::origin;
use refresh_cli::render::{
    json_line, plain_line, range_bar_message, range_prefix, report_block, summary,
};
use refresh_cli::stages::Stage;
use refresh_cli::tables::{list_table, notes, trend_table, ListRow, TrendRow};

fn load(name: &str) -> (ExecutionInfo, Vec<HistoryEvent>) {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    recorded_run(&value).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn end_time(info: &ExecutionInfo, events: &[HistoryEvent]) -> DateTime<Utc> {
    info.stop
        .or_else(|| events.last().map(|e| e.timestamp))
        .unwrap_or_default()
}

fn bars(run: &Run) -> String {
    run.ranges
        .values()
        .map(|r| format!("{} | {}", range_prefix(r), range_bar_message(r)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Snapshots every rendering of a recorded run; returns the run for the checks.
fn snapshot(name: &str) -> (Run, Vec<RunEvent>) {
    let (info, events) = load(name);
    let (run, run_events) = replay(&info, &events);
    let now = end_time(&info, &events);
    let started_by = origin(&info.name, run.input.as_ref()).label();
    insta::assert_snapshot!(
        format!("{name}__summary"),
        summary(&run, Some(started_by), now)
    );
    let lines: Vec<String> = run_events.iter().filter_map(plain_line).collect();
    insta::assert_snapshot!(format!("{name}__lines"), lines.join("\n"));
    let json: Vec<String> = run_events
        .iter()
        .map(|e| json_line(&info.name, e))
        .collect();
    insta::assert_snapshot!(format!("{name}__json"), json.join("\n"));
    if !run.ranges.is_empty() {
        insta::assert_snapshot!(format!("{name}__bars"), bars(&run));
    }
    (run, run_events)
}

fn stage_outcome(run: &Run, stage: Stage) -> Option<StageOutcome> {
    run.stages.iter().find(|s| s.stage == stage)?.outcome
}

#[test]
fn success() {
    let (run, events) = snapshot("success");
    assert_eq!(run.result(), RunResult::Succeeded);
    assert_eq!(exit_code_for(run.result()), 0);
    for stage in run.machine.stages() {
        let expected = (*stage != Stage::FailureCleanup).then_some(StageOutcome::Succeeded);
        assert_eq!(stage_outcome(&run, *stage), expected, "{stage:?}");
    }
    assert_eq!(run.ranges.len(), 2);
    assert!(run.ranges.values().all(|r| r.phase == RangePhase::Done
        && r.attempt == 1
        && r.instance_id.is_some()
        && r.rows_total == Some(r.rows_processed)));
    let report = run
        .report
        .as_ref()
        .expect("the execution output is the report");
    let by_source_before: u64 = report.by_source.values().map(|d| d.before).sum();
    assert_eq!(
        by_source_before, report.total_before,
        "every source is reported"
    );
    assert_eq!(
        run.drop_guard.as_ref().map(|g| g.verdict),
        Some(Verdict::Passed)
    );
    let text = report_block(&run).expect("a report");
    assert!(text.contains("drop guard: passed"), "{text}");
    let first = events.first().expect("events");
    assert!(matches!(first, RunEvent::Started { .. }));
    assert!(
        matches!(events.last(), Some(RunEvent::Finished { status, .. }) if status == "SUCCEEDED")
    );
}

#[test]
fn failure_keeps_its_cause_and_stage() {
    let (run, _) = snapshot("failed_es_lost");
    assert_eq!(run.result(), RunResult::Failed);
    assert_eq!(exit_code_for(run.result()), 4);
    let failure = run.failure.as_ref().expect("a failure");
    assert_eq!(failure.error, "TransientSearchError");
    assert!(
        failure.cause.contains("Connection refused"),
        "{}",
        failure.cause
    );
    assert!(
        !failure.cause.contains("errorType"),
        "the Lambda payload is unwrapped"
    );
    assert_eq!(failure.stage, Some(Stage::FilteredIndex));
    assert_eq!(
        stage_outcome(&run, Stage::FilteredIndex),
        Some(StageOutcome::Failed)
    );
    assert_eq!(
        stage_outcome(&run, Stage::FailureCleanup),
        Some(StageOutcome::Succeeded)
    );
    assert!(run.cleanup.is_some(), "the in-execution cleanup is shown");
}

#[test]
fn retried_range_shows_the_second_attempt() {
    let (run, events) = snapshot("retried_range");
    assert_eq!(run.result(), RunResult::Succeeded);
    let retried: Vec<_> = run.ranges.values().filter(|r| r.attempt > 1).collect();
    assert_eq!(
        retried.len(),
        1,
        "exactly one range was retried: {:?}",
        run.ranges
    );
    let range = retried[0];
    assert_eq!(range.phase, RangePhase::Done);
    assert!(
        range.last_error.is_some(),
        "the first attempt's error is kept"
    );
    let attempt_failed = events.iter().any(|e| {
        matches!(e,
        RunEvent::RangeAttemptFailed { range: r, attempt: 1, .. } if *r == range.range)
    });
    assert!(attempt_failed);
    let launches: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::RangeInstance {
                range: r,
                instance_id,
                ..
            } if *r == range.range => Some(instance_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(launches.len(), 2, "a fresh worker for the retry");
    assert_ne!(launches[0], launches[1]);
    assert_eq!(range.instance_id.as_ref(), launches.last());
}

#[test]
fn abort_is_a_failure_without_a_cleanup_stage() {
    let (run, _) = snapshot("aborted");
    assert_eq!(run.status, "ABORTED");
    assert_eq!(run.result(), RunResult::Failed);
    assert_eq!(
        stage_outcome(&run, Stage::Reindex),
        Some(StageOutcome::Aborted)
    );
    assert_eq!(stage_outcome(&run, Stage::FailureCleanup), None);
    assert!(run
        .ranges
        .values()
        .all(|r| !matches!(r.phase, RangePhase::Done)));
}

#[test]
fn refusals_exit_3() {
    let (run, _) = snapshot("refused_drop_guard");
    assert_eq!(run.result(), RunResult::Refused);
    assert_eq!(exit_code_for(run.result()), 3);
    assert_eq!(
        stage_outcome(&run, Stage::DropGuard),
        Some(StageOutcome::Refused)
    );
    let guard = run.drop_guard.as_ref().expect("the guard's answer");
    assert_eq!(guard.verdict, Verdict::Refused);
    assert!(guard
        .message
        .as_deref()
        .unwrap_or_default()
        .contains("96.84%"));

    let (run, _) = snapshot("refused_bad_input");
    assert_eq!(run.result(), RunResult::Refused);
    assert_eq!(
        stage_outcome(&run, Stage::Admission),
        Some(StageOutcome::Refused)
    );
    assert!(run
        .failure
        .as_ref()
        .is_some_and(|f| f.cause.starts_with("media_type:")));

    let (run, _) = snapshot("refused_concurrency");
    assert_eq!(run.result(), RunResult::Refused);
    assert_eq!(
        run.failure.as_ref().map(|f| f.error.as_str()),
        Some("ConcurrencyConflict")
    );
}

#[test]
fn overridden_drop_and_queued_run_and_filtered_machine() {
    let (run, _) = snapshot("overridden_drop");
    assert_eq!(run.result(), RunResult::Succeeded);
    assert_eq!(
        run.drop_guard.as_ref().map(|g| g.verdict),
        Some(Verdict::Overridden)
    );

    let (run, events) = snapshot("queued");
    assert_eq!(run.result(), RunResult::Succeeded);
    assert!(events.iter().any(|e| matches!(e, RunEvent::Waiting { .. })));
    assert!(run.waiting.is_none(), "no longer waiting once it ran");

    let (run, _) = snapshot("filtered_only");
    assert_eq!(run.result(), RunResult::Succeeded);
    assert!(run.filtered.as_ref().is_some_and(|f| f.completed));
    assert!(run.ranges.is_empty());
}

/// Following feeds the history in pieces; the run must end up the same as a replay, and
/// mid-run it must show the reindex running with live range progress.
#[test]
fn following_in_pieces_equals_replaying_and_shows_live_progress() {
    let (info, events) = load("success");
    let (replayed, _) = replay(&info, &events);
    let mut tracker = Tracker::new(
        ExecutionInfo {
            status: "RUNNING".into(),
            stop: None,
            ..info.clone()
        },
        "image".into(),
    );
    let first_progress = events
        .iter()
        .position(|e| {
            e.kind == "TaskStateExited" && e.detail("name") == Some("Get reindex progress")
        })
        .expect("a progress poll");
    tracker.feed(&events[..=first_progress]);
    let mid = tracker.run.clone();
    assert!(!mid.is_finished());
    assert_eq!(mid.result(), RunResult::Running);
    let reindex = mid
        .stages
        .iter()
        .find(|s| s.stage == Stage::Reindex)
        .expect("reindex stage");
    assert_eq!(
        mid.stage_state(reindex),
        refresh_cli::model::StageState::Running
    );
    let indexing: Vec<_> = mid
        .ranges
        .values()
        .filter(|r| r.phase == RangePhase::Indexing)
        .collect();
    assert_eq!(indexing.len(), 1);
    assert!(indexing[0].rows_total.is_some() && indexing[0].eta_seconds.is_some());
    let now = events[first_progress].timestamp;
    insta::assert_snapshot!(
        "success_mid_reindex__summary",
        summary(&mid, Some("api"), now)
    );
    insta::assert_snapshot!("success_mid_reindex__bars", bars(&mid));

    let mut fed = first_progress + 1;
    for chunk in events[fed..].chunks(17) {
        // A poll that overlaps the last one re-sends events: they are ignored by id.
        tracker.feed(&events[fed.saturating_sub(3)..fed]);
        tracker.feed(chunk);
        fed += chunk.len();
    }
    let followed = tracker.run.clone();
    assert_eq!(followed, replayed);
}

/// `history` and `list` over the recorded runs, newest first as the commands show them.
#[test]
fn history_and_list_tables() {
    let names = [
        "queued",
        "success",
        "failed_es_lost",
        "aborted",
        "overridden_drop",
        "refused_drop_guard",
        "retried_range",
        "refused_bad_input",
    ];
    let mut runs: Vec<(ExecutionInfo, Run)> = names
        .iter()
        .map(|name| {
            let (info, events) = load(name);
            let (run, _) = replay(&info, &events);
            (info, run)
        })
        .collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.0.start));
    let rows: Vec<TrendRow> = runs
        .iter()
        .map(|(_, run)| TrendRow::from_run(run))
        .collect();
    let table = trend_table("image", &rows);
    insta::assert_snapshot!("history_table", table);
    let refused = rows
        .iter()
        .find(|r| r.name.starts_with("e2e-drop-refused"))
        .expect("the refused run");
    assert_eq!(notes(refused, &rows), ["refused: RecordDropTooLarge"]);
    let overridden = rows
        .iter()
        .find(|r| r.name.starts_with("e2e-drop-overridden"))
        .expect("the overridden run");
    assert!(
        notes(overridden, &rows)
            .iter()
            .any(|n| n.starts_with("drop 96.8% > 10% limit")),
        "{:?}",
        notes(overridden, &rows)
    );

    let list: Vec<ListRow> = runs
        .iter()
        .map(|(info, _)| ListRow::from_info(info))
        .collect();
    let now = runs
        .iter()
        .filter_map(|(info, _)| info.stop)
        .max()
        .unwrap_or_default();
    insta::assert_snapshot!("list_table", list_table(&list, now));
}
