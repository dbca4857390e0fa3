//! Following executions: each poll's new history events (the run's, and those of the
//! worker-range executions its ranges run in) go through the interpreter into the run and
//! out through a sink: plain lines, JSON lines, or live bars on a terminal (one per range).

use crate::error::CliError;
use crate::history::{ExecutionInfo, HistoryEvent};
use crate::model::{RangePhase, RangeView, Run, RunEvent};
use crate::origin::origin;
use crate::reader::RunReader;
use crate::render;
use crate::source::Source;
use chrono::{DateTime, Utc};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

/// Writes a line to stdout; a closed pipe (`refresh list | head`) ends the program quietly.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let result = writeln!(stdout, "{text}").and_then(|_| stdout.flush());
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// One execution being followed.
pub struct Tracker {
    pub info: ExecutionInfo,
    /// Shown before each line when several executions are followed (the media type).
    pub label: String,
    pub run: Run,
    reader: RunReader,
    last_id: i64,
    pub done: bool,
}

impl Tracker {
    pub fn new(info: ExecutionInfo, label: String) -> Tracker {
        Tracker {
            run: Run::new(&info),
            info,
            label,
            reader: RunReader::new(),
            last_id: 0,
            done: false,
        }
    }

    pub fn last_id(&self) -> i64 {
        self.last_id
    }

    pub fn origin_label(&self) -> &'static str {
        origin(&self.info.name, self.run.input.as_ref()).label()
    }

    /// Makes the run agree with a fresh description (authoritative for the status), and
    /// the closing events about to be shown with it.
    pub fn reconcile(&mut self, info: ExecutionInfo, events: &mut [RunEvent]) {
        crate::interpret::reconcile(&mut self.run, events, &info);
        self.info = info;
    }

    /// Feeds new events of the run's own history; returns what they mean.
    pub fn feed(&mut self, events: &[HistoryEvent]) -> Vec<RunEvent> {
        self.feed_with_ranges(events, &[])
    }

    /// Feeds new events of the run's history and of its range executions (`(ARN, events)`);
    /// returns what they mean, in time order.
    pub fn feed_with_ranges(
        &mut self,
        events: &[HistoryEvent],
        ranges: &[(String, Vec<HistoryEvent>)],
    ) -> Vec<RunEvent> {
        let seen = self.last_id;
        let new: Vec<HistoryEvent> = events.iter().filter(|e| e.id > seen).cloned().collect();
        self.last_id = new.iter().map(|e| e.id).fold(self.last_id, i64::max);
        let mut streams = vec![self.reader.parent(&new)];
        for (arn, range_events) in ranges {
            streams.push(self.reader.child(arn, range_events));
        }
        self.settle(streams)
    }

    fn settle(&mut self, streams: Vec<Vec<RunEvent>>) -> Vec<RunEvent> {
        let out = self.reader.settle(streams);
        for run_event in &out {
            self.run.apply(run_event);
        }
        out
    }

    /// Reads what is new in the run's history and in its range executions' (those it names,
    /// including any it names in this very read). Returns the run events and whether any
    /// history event was new.
    pub async fn read<S: Source>(&mut self, source: &S) -> Result<(Vec<RunEvent>, bool), CliError> {
        let events = source.events_after(&self.info.arn, self.last_id).await?;
        let mut any = !events.is_empty();
        self.last_id = events.iter().map(|e| e.id).fold(self.last_id, i64::max);
        let mut streams = vec![self.reader.parent(&events)];
        for (arn, after) in self.reader.children_to_read() {
            let range_events = match source.events_after(&arn, after).await {
                Ok(events) => events,
                // Named but not (yet) described: read it at the next poll.
                Err(CliError::Usage(_)) => continue,
                Err(other) => return Err(other),
            };
            any |= !range_events.is_empty();
            streams.push(self.reader.child(&arn, &range_events));
        }
        Ok((self.settle(streams), any))
    }

    /// The range executions the run has named so far.
    pub fn range_executions(&self) -> Vec<String> {
        self.reader.children()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Json,
    Bars,
}

impl Mode {
    pub fn choose(json: bool, terminal: bool) -> Mode {
        if json {
            Mode::Json
        } else if terminal {
            Mode::Bars
        } else {
            Mode::Plain
        }
    }
}

pub trait Sink {
    fn events(&mut self, index: usize, tracker: &Tracker, events: &[RunEvent]);
    /// The execution ended: its closing summary.
    fn finished(&mut self, index: usize, tracker: &Tracker, now: DateTime<Utc>);
    /// A message of the CLI itself (not from the history).
    fn note(&mut self, text: &str);
}

pub fn sink(mode: Mode, several: bool) -> Box<dyn Sink> {
    match mode {
        Mode::Plain => Box::new(PlainSink { several }),
        Mode::Json => Box::new(JsonSink),
        Mode::Bars => Box::new(BarsSink::new(several)),
    }
}

fn prefixed(several: bool, tracker: &Tracker, line: &str) -> String {
    if several {
        format!("[{}] {line}", tracker.label)
    } else {
        line.to_string()
    }
}

pub struct PlainSink {
    several: bool,
}

impl Sink for PlainSink {
    fn events(&mut self, _: usize, tracker: &Tracker, events: &[RunEvent]) {
        for line in events.iter().filter_map(render::plain_line) {
            out(&prefixed(self.several, tracker, &line));
        }
    }

    fn finished(&mut self, _: usize, tracker: &Tracker, now: DateTime<Utc>) {
        out("");
        let text = render::summary(&tracker.run, Some(tracker.origin_label()), now);
        for line in text.lines() {
            out(&prefixed(self.several, tracker, line));
        }
    }

    fn note(&mut self, text: &str) {
        out(text);
    }
}

pub struct JsonSink;

impl Sink for JsonSink {
    fn events(&mut self, _: usize, tracker: &Tracker, events: &[RunEvent]) {
        for event in events {
            out(&render::json_line(&tracker.info.name, event));
        }
    }

    fn finished(&mut self, _: usize, tracker: &Tracker, _: DateTime<Utc>) {
        out(&render::json_status(&tracker.run));
    }

    fn note(&mut self, text: &str) {
        out(&serde_json::json!({"event": "note", "message": text}).to_string());
    }
}

/// Live bars: one per reindex range and one for the filtered index; every other event is
/// printed as a line above them.
pub struct BarsSink {
    several: bool,
    multi: MultiProgress,
    ranges: HashMap<(usize, u32), ProgressBar>,
    filtered: HashMap<usize, ProgressBar>,
}

impl BarsSink {
    fn new(several: bool) -> BarsSink {
        BarsSink {
            several,
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
            ranges: HashMap::new(),
            filtered: HashMap::new(),
        }
    }

    fn style() -> ProgressStyle {
        ProgressStyle::with_template(
            "{prefix:>16} [{bar:32.cyan/blue}] {human_pos:>11}/{human_len:<11} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
    }

    fn println(&self, line: &str) {
        if self.multi.println(line).is_err() {
            out(line);
        }
    }

    fn range_bar(&mut self, index: usize, tracker: &Tracker, view: &RangeView) {
        let several = self.several;
        let multi = &self.multi;
        let bar = self.ranges.entry((index, view.range)).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(Self::style());
            bar.set_prefix(prefixed(several, tracker, &render::range_prefix(view)));
            bar
        });
        if bar.is_finished() {
            return;
        }
        // Until the worker counts its rows, the planned id span stands in (an empty bar,
        // not a full one of length 0).
        let span = match (view.start_id, view.end_id) {
            (Some(start), Some(end)) if end >= start => u64::try_from(end - start + 1).ok(),
            _ => None,
        };
        bar.set_length(view.rows_total.or(span).unwrap_or(1));
        bar.set_position(view.rows_processed);
        bar.set_message(render::range_bar_message(view));
        match view.phase {
            RangePhase::Done => bar.finish(),
            RangePhase::Failed => bar.abandon(),
            _ => {}
        }
    }
}

impl Sink for BarsSink {
    fn events(&mut self, index: usize, tracker: &Tracker, events: &[RunEvent]) {
        for event in events {
            match event {
                RunEvent::RangeExecution { range, .. }
                | RunEvent::RangeAttempt { range, .. }
                | RunEvent::RangeInstance { range, .. }
                | RunEvent::RangeProgress { range, .. }
                | RunEvent::RangeDone { range, .. } => {
                    if let Some(view) = tracker.run.ranges.get(range).cloned() {
                        self.range_bar(index, tracker, &view);
                    }
                }
                RunEvent::RangeAttemptFailed { range, .. }
                | RunEvent::RangeFailed { range, .. } => {
                    if let Some(line) = render::plain_line(event) {
                        self.println(&prefixed(self.several, tracker, &line));
                    }
                    if let Some(view) = tracker.run.ranges.get(range).cloned() {
                        self.range_bar(index, tracker, &view);
                    }
                }
                RunEvent::FilteredProgress {
                    created,
                    total,
                    completed,
                    ..
                } => {
                    let several = self.several;
                    let multi = &self.multi;
                    let bar = self.filtered.entry(index).or_insert_with(|| {
                        let bar = multi.add(ProgressBar::new(0));
                        bar.set_style(Self::style());
                        bar.set_prefix(prefixed(several, tracker, "filtered index"));
                        bar
                    });
                    bar.set_length(*total);
                    bar.set_position(*created);
                    if *completed {
                        bar.finish_with_message("complete");
                    }
                }
                other => {
                    if let Some(line) = render::plain_line(other) {
                        self.println(&prefixed(self.several, tracker, &line));
                    }
                }
            }
        }
    }

    fn finished(&mut self, index: usize, tracker: &Tracker, now: DateTime<Utc>) {
        // The summary lists every range: the run's bars make way for it.
        let keys: Vec<(usize, u32)> = self
            .ranges
            .keys()
            .filter(|(i, _)| *i == index)
            .copied()
            .collect();
        let mut bars: Vec<ProgressBar> =
            keys.iter().filter_map(|k| self.ranges.remove(k)).collect();
        bars.extend(self.filtered.remove(&index));
        for bar in bars {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.println("");
        let text = render::summary(&tracker.run, Some(tracker.origin_label()), now);
        for line in text.lines() {
            self.println(&prefixed(self.several, tracker, line));
        }
    }

    fn note(&mut self, text: &str) {
        self.println(text);
    }
}

/// Polls until every tracker's execution ended (`Ok(false)`) or the deadline passed
/// (`Ok(true)`).
pub async fn follow<S: Source>(
    source: &S,
    trackers: &mut [Tracker],
    sink: &mut dyn Sink,
    interval: Duration,
    deadline: Option<tokio::time::Instant>,
) -> Result<bool, CliError> {
    loop {
        for (index, tracker) in trackers.iter_mut().enumerate().filter(|(_, t)| !t.done) {
            let (mut run_events, any) = tracker.read(source).await?;
            if tracker.run.is_finished() {
                let info = source.describe(&tracker.info.arn).await?;
                tracker.reconcile(info, &mut run_events);
            } else if !any {
                // A quiet poll: make sure the execution has not ended without our seeing
                // its last events (read them once more, then trust the description).
                let info = source.describe(&tracker.info.arn).await?;
                if !info.is_running() {
                    let (late, _) = tracker.read(source).await?;
                    run_events.extend(late);
                    tracker.reconcile(info, &mut run_events);
                }
            }
            sink.events(index, tracker, &run_events);
            if tracker.run.is_finished() {
                tracker.done = true;
                sink.finished(index, tracker, Utc::now());
            }
        }
        if trackers.iter().all(|t| t.done) {
            return Ok(false);
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Ok(true);
        }
        tokio::time::sleep(interval).await;
    }
}
