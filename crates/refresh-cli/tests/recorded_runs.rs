//! Rendering of recorded executions (LocalStack, e2e suite; trimmed by
//! `tests/fixtures/trim.py` to the data the CLI reads, every event kept): snapshots of the
//! status summary, the plain lines, the JSON lines and the bar texts, plus checks of what
//! each run must show whatever the snapshot says. The `ranges_*`, `aliases_*` and
//! `search_guard_*` runs are of the current definitions (each range in its own worker-range
//! execution, recorded with the run); the others are older runs, whose state names must
//! still render.

use chrono::{DateTime, Utc};
use refresh_cli::error::exit_code_for;
use refresh_cli::follow::Tracker;
use refresh_cli::history::{recorded_ranges, recorded_run, ExecutionInfo, HistoryEvent};
use refresh_cli::interpret::{replay, replay_with_ranges};
use refresh_cli::model::{RangePhase, Run, RunEvent, RunResult, StageOutcome, Verdict};
use refresh_cli::origin::origin;
use refresh_cli::render::{
    json_line, plain_line, range_bar_message, range_prefix, report_block, summary,
};
use refresh_cli::stages::Stage;
use refresh_cli::tables::{list_table, notes, trend_table, ListRow, TrendRow};

type Ranges = Vec<(String, Vec<HistoryEvent>)>;

fn load(name: &str) -> (ExecutionInfo, Vec<HistoryEvent>) {
    let (info, events, _) = load_with_ranges(name);
    (info, events)
}

/// A recorded run with the histories of its range executions (by ARN).
fn load_with_ranges(name: &str) -> (ExecutionInfo, Vec<HistoryEvent>, Ranges) {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (info, events) = recorded_run(&value).unwrap_or_else(|e| panic!("{path}: {e}"));
    let ranges = recorded_ranges(&value)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .map(|(range, events)| (range.arn, events))
        .collect();
    (info, events, ranges)
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
    let (info, events, ranges) = load_with_ranges(name);
    let (run, run_events) = replay_with_ranges(&info, &events, &ranges);
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
        // An older run: no pre-flight and no foreign-key job yet.
        let expected = (!matches!(
            stage,
            Stage::FailureCleanup | Stage::Preflight | Stage::ForeignKeys
        ))
        .then_some(StageOutcome::Succeeded);
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

/// The range executions named in a run's events, by range.
fn range_executions(events: &[RunEvent]) -> Vec<(u32, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            RunEvent::RangeExecution {
                range,
                execution_arn,
                ..
            } => Some((*range, execution_arn.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn ranges_are_read_from_their_own_executions() {
    let (run, events) = snapshot("ranges_success");
    assert_eq!(run.result(), RunResult::Succeeded);
    for stage in run.machine.stages() {
        // Recorded before the foreign-key job.
        let expected = (!matches!(stage, Stage::FailureCleanup | Stage::ForeignKeys))
            .then_some(StageOutcome::Succeeded);
        assert_eq!(stage_outcome(&run, *stage), expected, "{stage:?}");
    }
    let named = range_executions(&events);
    assert_eq!(
        named.len(),
        2,
        "each range's execution is named once: {named:?}"
    );
    for (range, arn) in &named {
        assert!(
            arn.contains(":execution:data-refresh-worker-range:audio-")
                && arn.ends_with(&format!("-range-{range}")),
            "{arn}"
        );
    }
    assert_eq!(run.ranges.len(), 2);
    for view in run.ranges.values() {
        assert_eq!(view.phase, RangePhase::Done, "{view:?}");
        assert_eq!(view.attempt, 1);
        assert!(view.instance_id.is_some());
        assert_eq!(view.rows_total, Some(view.rows_processed));
        assert!(view.execution.is_some());
    }
    // Launches and progress are only in the ranges' histories.
    let progress = events
        .iter()
        .filter(|e| matches!(e, RunEvent::RangeProgress { .. }))
        .count();
    assert!(progress >= 2, "{progress} progress events");
    let done = events
        .iter()
        .filter(|e| matches!(e, RunEvent::RangeDone { .. }))
        .count();
    assert_eq!(done, 2, "a range's end is told once, not by both histories");

    let report = run.report.as_ref().expect("the report");
    assert_eq!(report.media_type.as_deref(), Some("audio"));
    assert!(report.guards.record_drop.is_some());
    assert!(report.guards.search.is_some());
    assert!(report.guards.preflight.is_some());
    let text = report_block(&run).expect("a report");
    for expected in [
        "drop guard: passed, 0.00% drop (limit 10%)",
        "search guard: passed, 6/6 queries",
        "pre-flight: passed (2/2 new indices green",
    ] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }

    // The run's own history alone (as `history` reads it) still ends each range.
    let (info, parent, _) = load_with_ranges("ranges_success");
    let (alone, alone_events) = replay(&info, &parent);
    assert!(alone
        .ranges
        .values()
        .all(|r| r.phase == RangePhase::Done && r.instance_id.is_some()));
    assert!(!alone_events
        .iter()
        .any(|e| matches!(e, RunEvent::RangeProgress { .. })));
    assert_eq!(alone.result(), RunResult::Succeeded);
}

#[test]
fn a_range_retried_on_a_fresh_worker_in_its_own_execution() {
    let (run, events) = snapshot("ranges_retried");
    assert_eq!(run.result(), RunResult::Succeeded);
    let range = run.ranges.get(&1).expect("range 1");
    assert_eq!((range.phase, range.attempt), (RangePhase::Done, 2));
    assert!(range
        .last_error
        .as_deref()
        .is_some_and(|e| e.starts_with("WorkerTaskFailed: ")));
    let failed_at = events
        .iter()
        .position(|e| {
            matches!(
                e,
                RunEvent::RangeAttemptFailed {
                    range: 1,
                    attempt: 1,
                    ..
                }
            )
        })
        .expect("the first attempt's failure");
    // The failed poll leaves the previous progress in the state: it is not shown again.
    assert!(!events[failed_at..].iter().any(|e| matches!(
        e,
        RunEvent::RangeProgress {
            range: 1,
            attempt: 1,
            ..
        }
    )));
    let workers: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::RangeInstance {
                range: 1,
                instance_id,
                ..
            } => Some(instance_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(workers.len(), 2);
    assert_ne!(workers[0], workers[1], "a fresh worker for the retry");
    assert_eq!(
        run.search_guard.as_ref().map(|g| g.verdict),
        Some(Verdict::Passed)
    );
    assert!(run.params.as_ref().is_some_and(|p| p.override_search_guard));
}

/// Mid-reindex, as `--follow` shows it: one bar per range from the ranges' executions.
#[test]
fn mid_reindex_each_range_has_its_bar() {
    let (info, parent, ranges) = load_with_ranges("ranges_retried");
    // The moment range 1's second worker is launched.
    let now = ranges
        .iter()
        .flat_map(|(_, events)| events)
        .find(|e| {
            e.kind == "TaskStateExited"
                && e.detail("name") == Some("Launch worker")
                && e.data().is_some_and(|d| d["attempt"] == 2)
        })
        .map(|e| e.timestamp)
        .expect("a second launch");
    let upto = |events: &[HistoryEvent]| -> Vec<HistoryEvent> {
        events
            .iter()
            .filter(|e| e.timestamp <= now)
            .cloned()
            .collect()
    };
    let mut tracker = Tracker::new(
        ExecutionInfo {
            status: "RUNNING".into(),
            stop: None,
            ..info
        },
        "image".into(),
    );
    let partial: Ranges = ranges
        .iter()
        .map(|(arn, events)| (arn.clone(), upto(events)))
        .collect();
    tracker.feed_with_ranges(&upto(&parent), &partial);
    let mid = tracker.run.clone();
    assert_eq!(mid.result(), RunResult::Running);
    assert_eq!(mid.ranges[&0].phase, RangePhase::Indexing);
    assert!(mid.ranges[&0].eta_seconds.is_some());
    assert_eq!(
        (mid.ranges[&1].phase, mid.ranges[&1].attempt),
        (RangePhase::Starting, 2)
    );
    insta::assert_snapshot!("ranges_mid_reindex__bars", bars(&mid));
    insta::assert_snapshot!(
        "ranges_mid_reindex__summary",
        summary(&mid, Some("api"), now)
    );
}

#[test]
fn failed_ranges_fail_the_run_with_their_error() {
    let (run, events) = snapshot("ranges_failed");
    assert_eq!(run.result(), RunResult::Failed);
    assert_eq!(exit_code_for(run.result()), 4);
    let failure = run.failure.as_ref().expect("a failure");
    assert_eq!(failure.error, "WorkerNotReady");
    assert_eq!(failure.stage, Some(Stage::Reindex));
    for view in run.ranges.values() {
        assert_eq!(
            (view.phase, view.attempt),
            (RangePhase::Failed, 3),
            "{view:?}"
        );
    }
    for range in run.ranges.keys() {
        let told = events
            .iter()
            .filter(|e| matches!(e, RunEvent::RangeFailed { range: r, .. } if r == range))
            .count();
        assert_eq!(told, 1, "range {range}'s failure is told once");
    }
    // The Map's task failed with the range execution's description: its own error shows.
    assert!(events.iter().any(|e| matches!(e,
        RunEvent::StepError { state, error, cause, .. }
            if state == "Index range on a worker" && error == "States.TaskFailed"
                && cause.starts_with("WorkerNotReady: "))));
    assert_eq!(
        stage_outcome(&run, Stage::FailureCleanup),
        Some(StageOutcome::Succeeded)
    );
}

#[test]
fn aliases_not_promoted_says_how_to_finish() {
    let (run, _) = snapshot("aliases_not_promoted");
    assert_eq!(run.result(), RunResult::Failed);
    assert_eq!(exit_code_for(run.result()), 4);
    let failure = run.failure.as_ref().expect("a failure");
    assert_eq!(failure.error, "AliasesNotPromoted");
    assert_eq!(failure.stage, Some(Stage::PromoteAliases));
    assert_eq!(
        stage_outcome(&run, Stage::PromoteTable),
        Some(StageOutcome::Succeeded)
    );
    assert_eq!(
        run.finish_payload,
        Some(
            serde_json::json!({"media_type": "audio", "environment": "staging",
            "index": "audio-unfinished14012", "filtered_index": "audio-unfinished14012-filtered"})
        )
    );
    // The report ran before the table was promoted: the run has one though it failed.
    assert!(run.report.as_ref().is_some_and(|r| r.total_after == 955));
    let text = summary(&run, None, run.stopped.unwrap_or_default());
    assert!(
        text.contains(&format!("finish with: refresh finish {}", run.name)),
        "{text}"
    );
}

#[test]
fn alias_retries_are_shown_while_the_run_rolls_forward() {
    let (run, events) = snapshot("aliases_retried");
    assert_eq!(run.result(), RunResult::Succeeded);
    assert!(events.iter().any(|e| matches!(e,
        RunEvent::Waiting { reason, .. } if reason.starts_with("alias move attempt 1 of 6 failed"))));
    assert!(run.waiting.is_none(), "no longer waiting once promoted");
}

#[test]
fn a_search_guard_refusal_exits_3() {
    let (run, _) = snapshot("search_guard_refused");
    assert_eq!(run.result(), RunResult::Refused);
    assert_eq!(exit_code_for(run.result()), 3);
    assert_eq!(
        stage_outcome(&run, Stage::DropGuard),
        Some(StageOutcome::Refused)
    );
    let guard = run.search_guard.as_ref().expect("the guard's answer");
    assert_eq!(guard.verdict, Verdict::Refused);
    assert!(guard
        .message
        .as_deref()
        .is_some_and(|m| m.contains("free text forest")));
    assert_eq!(
        run.drop_guard.as_ref().map(|g| g.verdict),
        Some(Verdict::Overridden)
    );
}

#[test]
fn an_aborted_run_ignores_its_ranges_after_the_stop() {
    let (run, events) = snapshot("ranges_aborted");
    assert_eq!(run.status, "ABORTED");
    assert_eq!(run.result(), RunResult::Failed);
    assert_eq!(
        stage_outcome(&run, Stage::Reindex),
        Some(StageOutcome::Aborted)
    );
    let end = run.stopped.expect("an end");
    assert!(matches!(events.last(), Some(RunEvent::Finished { .. })));
    assert!(events.iter().all(|e| e.time() <= end));
}

/// `history audio` over the runs of the current definitions.
#[test]
fn history_of_current_runs() {
    let mut rows: Vec<TrendRow> = ["ranges_success", "aliases_retried", "aliases_not_promoted"]
        .iter()
        .map(|name| {
            let (info, events) = load(name);
            TrendRow::from_run(&replay(&info, &events).0)
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.start));
    insta::assert_snapshot!("history_table_current", trend_table("audio", &rows));
}

#[test]
fn the_sql_jobs_are_stages_of_their_own() {
    let (run, _) = snapshot("sql_jobs_success");
    assert_eq!(run.result(), RunResult::Succeeded);
    for stage in run.machine.stages() {
        let expected = (*stage != Stage::FailureCleanup).then_some(StageOutcome::Succeeded);
        assert_eq!(stage_outcome(&run, *stage), expected, "{stage:?}");
    }
    // The SQL jobs' worker-range executions are not ranges.
    assert_eq!(run.ranges.len(), 2);
    assert!(run.ranges.values().all(|r| r.phase == RangePhase::Done));
}

/// Dual write (e2e-gate-sensitive, `tests/e2e/tests/dual_write.rs`): the workers wrote the
/// filtered index, a sensitive document was put into it by hand during the test's hold
/// before the gate, and *Verify filtered index* deleted it. No filtered `_reindex` ran.
#[test]
fn a_dual_write_run_shows_the_gates_answer() {
    use refresh_core::es::FilteredVerification;
    let (run, events) = snapshot("dual_write_repaired");
    assert_eq!(run.result(), RunResult::Succeeded);
    let verified: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::FilteredVerified { verification, .. } => Some(verification),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            verified.as_slice(),
            [FilteredVerification::Repaired { deleted: 1, .. }]
        ),
        "{verified:?}"
    );
    assert!(!events
        .iter()
        .any(|e| matches!(e, RunEvent::FilteredProgress { .. })));
    let line = events
        .iter()
        .find_map(|e| plain_line(e).filter(|l| l.contains("filtered index repaired")))
        .expect("the gate's line");
    assert!(
        line.contains("1 stray sensitive document(s) deleted"),
        "{line}"
    );
    let filtered = run.filtered.as_ref().expect("the filtered index's count");
    assert!(filtered.completed && filtered.created > 0);
    assert_eq!(
        stage_outcome(&run, Stage::FilteredIndex),
        Some(StageOutcome::Succeeded)
    );
}
