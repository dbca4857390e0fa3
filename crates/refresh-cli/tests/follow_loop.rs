//! The follow loop over recorded runs revealed a few events per poll: it must end where a
//! replay ends, with the description's status, and stop at a deadline.

use chrono::{DateTime, Utc};
use refresh_cli::follow::{follow, Sink, Tracker};
use refresh_cli::history::{recorded_run, ExecutionInfo, HistoryEvent};
use refresh_cli::interpret::replay;
use refresh_cli::model::{RunEvent, RunResult};
use refresh_cli::source::Recorded;
use std::time::Duration;

fn load(name: &str) -> (ExecutionInfo, Vec<HistoryEvent>) {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    recorded_run(&value).unwrap_or_else(|e| panic!("{path}: {e}"))
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
    step: usize,
    deadline: Option<tokio::time::Instant>,
) -> (Tracker, Capture, bool) {
    let source = Recorded::new(info, events, step);
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
    ] {
        let (info, events) = load(name);
        let (replayed, replayed_events) = replay(&info, &events);
        let (tracker, capture, timed_out) = follow_recorded(info, events, 7, None).await;
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
    let (info, events) = load("aborted");
    let (tracker, capture, _) = follow_recorded(info, events, 5, None).await;
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
    let (info, mut events) = load("success");
    let closing = events
        .iter()
        .position(|e| e.kind == "ExecutionSucceeded")
        .expect("a closing event");
    events.truncate(closing);
    let (tracker, _, timed_out) = follow_recorded(info, events, 50, None).await;
    assert!(!timed_out);
    assert_eq!(tracker.run.status, "SUCCEEDED");
    assert!(
        tracker.run.report.is_some(),
        "the report from the execution output"
    );
}

#[tokio::test]
async fn a_deadline_stops_following() {
    let (info, events) = load("retried_range");
    let deadline = Some(tokio::time::Instant::now());
    let (tracker, capture, timed_out) = follow_recorded(info, events, 10, deadline).await;
    assert!(timed_out);
    assert!(!tracker.done);
    assert_eq!(capture.finished, 0);
}
