//! The follow loop over recorded runs revealed a few events per poll (with the range
//! executions' events up to the same moment): it must end where a replay ends, with the
//! description's status, and stop at a deadline.

use chrono::{DateTime, Utc};
use refresh_cli::follow::{follow, Sink, Tracker};
use refresh_cli::history::{recorded_ranges, recorded_run, ExecutionInfo, HistoryEvent};
use refresh_cli::interpret::replay_with_ranges;
use refresh_cli::model::{RunEvent, RunResult};
use refresh_cli::source::Recorded;
use std::time::Duration;

type Ranges = Vec<(ExecutionInfo, Vec<HistoryEvent>)>;

fn load(name: &str) -> (ExecutionInfo, Vec<HistoryEvent>, Ranges) {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (info, events) = recorded_run(&value).unwrap_or_else(|e| panic!("{path}: {e}"));
    let ranges = recorded_ranges(&value).unwrap_or_else(|e| panic!("{path}: {e}"));
    (info, events, ranges)
}

fn by_arn(ranges: &Ranges) -> Vec<(String, Vec<HistoryEvent>)> {
    ranges
        .iter()
        .map(|(info, events)| (info.arn.clone(), events.clone()))
        .collect()
}

#[derive(Default)]
struct Capture {
    events: Vec<RunEvent>,
    finished: usize,
}

impl Sink for Capture {
    fn events(&mut self, _: usize, _: &Tracker, events: &[RunEvent]) {
        self.events.extend_from_slice(events);
    }
    fn finished(&mut self, _: usize, _: &Tracker, _: DateTime<Utc>) {
        self.finished += 1;
    }
    fn note(&mut self, _: &str) {}
}

async fn follow_recorded(
    info: ExecutionInfo,
    events: Vec<HistoryEvent>,
    ranges: Ranges,
    step: usize,
    deadline: Option<tokio::time::Instant>,
) -> (Tracker, Capture, bool) {
    let source = Recorded::new(info, events, step).with_ranges(ranges);
    let mut trackers = vec![Tracker::new(source.info_now(), "image".into())];
    let mut capture = Capture::default();
    let timed_out = follow(
        &source,
        &mut trackers,
        &mut capture,
        Duration::from_millis(1),
        deadline,
    )
    .await
    .expect("a recorded source does not fail");
    let tracker = trackers.pop().expect("one tracker");
    (tracker, capture, timed_out)
}

#[tokio::test]
async fn following_ends_where_a_replay_ends() {
    for name in [
        "success",
        "retried_range",
        "failed_es_lost",
        "refused_drop_guard",
        "aborted",
        "ranges_success",
        "ranges_retried",
        "ranges_failed",
        "ranges_aborted",
        "aliases_not_promoted",
    ] {
        let (info, events, ranges) = load(name);
        let (replayed, replayed_events) = replay_with_ranges(&info, &events, &by_arn(&ranges));
        let (tracker, capture, timed_out) = follow_recorded(info, events, ranges, 7, None).await;
        assert!(!timed_out, "{name}");
        assert!(tracker.done, "{name}");
        assert_eq!(capture.finished, 1, "{name}: one closing summary");
        assert_eq!(tracker.run, replayed, "{name}");
        assert_eq!(capture.events, replayed_events, "{name}");
    }
}

/// LocalStack closes an aborted run's history with `ExecutionFailed`: the description wins.
#[tokio::test]
async fn an_abort_reads_as_aborted_while_following() {
    let (info, events, _) = load("aborted");
    let (tracker, capture, _) = follow_recorded(info, events, Vec::new(), 5, None).await;
    assert_eq!(tracker.run.status, "ABORTED");
    assert_eq!(tracker.run.result(), RunResult::Failed);
    let last = capture.events.last().expect("events");
    assert!(
        matches!(last, RunEvent::Finished { status, .. } if status == "ABORTED"),
        "{last:?}"
    );
}

/// A history read without its closing events still ends, on the description.
#[tokio::test]
async fn a_run_ends_on_its_description_when_the_history_has_no_end() {
    let (info, mut events, _) = load("success");
    let closing = events
        .iter()
        .position(|e| e.kind == "ExecutionSucceeded")
        .expect("a closing event");
    events.truncate(closing);
    let (tracker, _, timed_out) = follow_recorded(info, events, Vec::new(), 50, None).await;
    assert!(!timed_out);
    assert_eq!(tracker.run.status, "SUCCEEDED");
    assert!(
        tracker.run.report.is_some(),
        "the report from the execution output"
    );
}

#[tokio::test]
async fn a_deadline_stops_following() {
    let (info, events, ranges) = load("ranges_retried");
    let deadline = Some(tokio::time::Instant::now());
    let (tracker, capture, timed_out) = follow_recorded(info, events, ranges, 10, deadline).await;
    assert!(timed_out);
    assert!(!tracker.done);
    assert_eq!(capture.finished, 0);
}

/// A range's progress is read from its own execution while the run is in the reindex, poll
/// by poll: the range bars move before the run's Map says anything.
#[tokio::test]
async fn range_progress_arrives_while_the_map_runs() {
    let (info, events, ranges) = load("ranges_success");
    let (_, capture, _) = follow_recorded(info, events, ranges, 7, None).await;
    let first_progress = capture
        .events
        .iter()
        .position(|e| matches!(e, RunEvent::RangeProgress { .. }))
        .expect("progress");
    let first_done = capture
        .events
        .iter()
        .position(|e| matches!(e, RunEvent::RangeDone { .. }))
        .expect("a range done");
    assert!(first_progress < first_done);
}
