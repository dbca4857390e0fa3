//! A run as the operator sees it: what happened ([`RunEvent`], from `interpret`) and the
//! state it adds up to ([`Run`]). Pure data; the renderers read it.

use crate::history::ExecutionInfo;
use crate::stages::{Machine, Stage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Document counts as `count_documents` returns them (the state keeps only `total` and
/// `sources`, the number of sources, since the per-source list moved to the report).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u64,
    #[serde(default)]
    pub by_source: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<usize>,
}

impl Counts {
    /// How many sources were counted: `sources` when the state kept only that.
    pub fn source_count(&self) -> usize {
        self.sources.unwrap_or(self.by_source.len())
    }
}

/// One source's line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDelta {
    pub before: u64,
    pub after: u64,
    pub delta: i64,
}

/// The `report` step's output (`refresh_core::report::RefreshReport`; the execution output
/// of a successful refresh). Every field but the totals may be absent: older runs' reports
/// had only `new_index` and `by_source` (every source) besides them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default)]
    pub new_index: Option<String>,
    pub total_before: u64,
    pub total_after: u64,
    pub delta: i64,
    /// Sources seen before or after (absent in older reports: then `by_source` has all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<usize>,
    /// Every source when they fit the report's budget, else the largest changes.
    #[serde(default)]
    pub by_source: BTreeMap<String, SourceDelta>,
    /// How many sources `by_source` leaves out, and their sums.
    #[serde(default)]
    pub omitted_sources: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omitted: Option<SourceDelta>,
    /// The checks that ran before promotion, with their figures.
    #[serde(default, skip_serializing_if = "Guards::is_empty")]
    pub guards: Guards,
}

/// The report's `guards`. Each check is read on its own: a check whose shape this binary
/// does not know is left out rather than losing the whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Guards {
    #[serde(default, deserialize_with = "lenient")]
    pub record_drop: Option<refresh_core::guard::DropReport>,
    #[serde(default, deserialize_with = "lenient")]
    pub search: Option<refresh_core::es::SearchGuardReport>,
    #[serde(default, deserialize_with = "lenient")]
    pub preflight: Option<refresh_core::es::PreflightReport>,
}

impl Guards {
    pub fn is_empty(&self) -> bool {
        self.record_drop.is_none() && self.search.is_none() && self.preflight.is_none()
    }
}

/// `Some` when the value reads as `T`, else `None` (never an error).
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// The parts of `P` (`validate_input`'s output) the display uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub media_type: String,
    pub environment: String,
    #[serde(default)]
    pub new_index: Option<String>,
    #[serde(default)]
    pub new_filtered_index: Option<String>,
    #[serde(default)]
    pub skip_copy: bool,
    #[serde(default)]
    pub max_record_drop_pct: Option<f64>,
    #[serde(default)]
    pub override_record_drop: bool,
    #[serde(default)]
    pub override_search_guard: bool,
    #[serde(default)]
    pub row_limit: Option<u64>,
    #[serde(default)]
    pub worker_count: Option<u32>,
    /// `dual_write` or `reindex`; absent in runs before the choice existed (`reindex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtered_index: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageOutcome {
    Succeeded,
    Failed,
    Refused,
    Aborted,
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Overridden,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedRange {
    pub range: u32,
    pub start_id: i64,
    pub end_id: i64,
}

/// What happened, in the order the history says. `--json` prints these, one a line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    Started {
        time: DateTime<Utc>,
        input: Option<Value>,
    },
    Params {
        time: DateTime<Utc>,
        params: Params,
    },
    /// Another run holds the environment; this one waits (`wait_if_busy`).
    Waiting {
        time: DateTime<Utc>,
        reason: String,
    },
    StageStarted {
        time: DateTime<Utc>,
        stage: Stage,
        label: &'static str,
    },
    StageFinished {
        time: DateTime<Utc>,
        stage: Stage,
        label: &'static str,
        outcome: StageOutcome,
        seconds: f64,
    },
    /// A task error: retried by the state machine, or caught and handled.
    StepError {
        time: DateTime<Utc>,
        stage: Option<Stage>,
        state: String,
        range: Option<u32>,
        error: String,
        cause: String,
    },
    CopyProgress {
        time: DateTime<Utc>,
        rows_copied: u64,
        rows_scanned: Option<u64>,
        done: bool,
    },
    TagsFiltered {
        time: DateTime<Utc>,
        rows_changed: u64,
    },
    Plan {
        time: DateTime<Utc>,
        rows: Option<u64>,
        ranges: Vec<PlannedRange>,
    },
    /// The range runs in its own execution of the worker-range machine.
    RangeExecution {
        time: DateTime<Utc>,
        range: u32,
        execution_arn: String,
    },
    RangeAttempt {
        time: DateTime<Utc>,
        range: u32,
        attempt: u32,
    },
    RangeInstance {
        time: DateTime<Utc>,
        range: u32,
        attempt: u32,
        instance_id: String,
    },
    RangeProgress {
        time: DateTime<Utc>,
        range: u32,
        attempt: u32,
        instance_id: Option<String>,
        rows_processed: u64,
        rows_total: u64,
        indexed: u64,
        failed: u64,
        docs_per_second: f64,
        eta_seconds: Option<u64>,
    },
    RangeAttemptFailed {
        time: DateTime<Utc>,
        range: u32,
        attempt: u32,
        error: String,
        cause: String,
    },
    RangeDone {
        time: DateTime<Utc>,
        range: u32,
        attempt: u32,
        instance_id: Option<String>,
        indexed: u64,
    },
    /// The range gave up. `attempt` is `None` when only the refresh's side is known (the
    /// range's execution could not run, or was not read).
    RangeFailed {
        time: DateTime<Utc>,
        range: u32,
        attempt: Option<u32>,
        error: String,
        cause: String,
    },
    FilteredProgress {
        time: DateTime<Utc>,
        created: u64,
        total: u64,
        completed: bool,
    },
    /// The dual-write gate's answer (`Verify filtered index`).
    FilteredVerified {
        time: DateTime<Utc>,
        verification: refresh_core::es::FilteredVerification,
    },
    Counts {
        time: DateTime<Utc>,
        which: &'static str,
        counts: Counts,
    },
    DropGuard {
        time: DateTime<Utc>,
        verdict: Verdict,
        before: Option<u64>,
        after: Option<u64>,
        drop_pct: Option<f64>,
        max_drop_pct: Option<f64>,
        message: Option<String>,
    },
    /// The search guard's answer: representative queries, new index against live.
    SearchGuard {
        time: DateTime<Utc>,
        verdict: Verdict,
        /// False on a first refresh: no live index to compare with.
        ran: bool,
        passed: usize,
        failed: usize,
        min_ratio: Option<f64>,
        /// `name: new/live hits` of each query below the ratio.
        failing: Vec<String>,
        message: Option<String>,
    },
    /// The promotion pre-flight: everything the alias move needs, before the point of no
    /// return.
    Preflight {
        time: DateTime<Utc>,
        passed: bool,
        message: Option<String>,
    },
    /// The report, made just before promotion (so a run that fails after it has one too).
    Report {
        time: DateTime<Utc>,
        report: Report,
    },
    /// What the failure cleanup inside the execution did (or its error).
    Cleanup {
        time: DateTime<Utc>,
        summary: String,
    },
    Finished {
        time: DateTime<Utc>,
        status: String,
        error: Option<String>,
        cause: Option<String>,
        report: Option<Report>,
        /// After `AliasesNotPromoted`: what `refresh finish` sends the promote_aliases
        /// function (read from the cause).
        #[serde(skip_serializing_if = "Option::is_none")]
        finish_payload: Option<Value>,
    },
}

impl RunEvent {
    pub fn time(&self) -> DateTime<Utc> {
        match self {
            RunEvent::Started { time, .. }
            | RunEvent::Params { time, .. }
            | RunEvent::Waiting { time, .. }
            | RunEvent::StageStarted { time, .. }
            | RunEvent::StageFinished { time, .. }
            | RunEvent::StepError { time, .. }
            | RunEvent::CopyProgress { time, .. }
            | RunEvent::TagsFiltered { time, .. }
            | RunEvent::Plan { time, .. }
            | RunEvent::RangeExecution { time, .. }
            | RunEvent::RangeAttempt { time, .. }
            | RunEvent::RangeInstance { time, .. }
            | RunEvent::RangeProgress { time, .. }
            | RunEvent::RangeAttemptFailed { time, .. }
            | RunEvent::RangeDone { time, .. }
            | RunEvent::RangeFailed { time, .. }
            | RunEvent::FilteredProgress { time, .. }
            | RunEvent::FilteredVerified { time, .. }
            | RunEvent::Counts { time, .. }
            | RunEvent::DropGuard { time, .. }
            | RunEvent::SearchGuard { time, .. }
            | RunEvent::Preflight { time, .. }
            | RunEvent::Report { time, .. }
            | RunEvent::Cleanup { time, .. }
            | RunEvent::Finished { time, .. } => *time,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    Pending,
    Running,
    Skipped,
    Done(StageOutcome),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageView {
    pub stage: Stage,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub outcome: Option<StageOutcome>,
    /// Task errors seen in this stage (retried or caught).
    pub errors: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RangePhase {
    Pending,
    Launching,
    Starting,
    Indexing,
    Retrying,
    Done,
    Failed,
}

impl RangePhase {
    pub fn label(self) -> &'static str {
        match self {
            RangePhase::Pending => "pending",
            RangePhase::Launching => "launching",
            RangePhase::Starting => "starting",
            RangePhase::Indexing => "indexing",
            RangePhase::Retrying => "retrying",
            RangePhase::Done => "done",
            RangePhase::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RangeView {
    pub range: u32,
    pub start_id: Option<i64>,
    pub end_id: Option<i64>,
    pub attempt: u32,
    pub instance_id: Option<String>,
    pub phase: RangePhase,
    pub rows_total: Option<u64>,
    pub rows_processed: u64,
    pub indexed: u64,
    pub failed: u64,
    pub docs_per_second: f64,
    pub eta_seconds: Option<u64>,
    /// `error: cause` of the last failed attempt.
    pub last_error: Option<String>,
    /// The range's worker-range execution (absent in runs older than that machine).
    pub execution: Option<String>,
}

impl RangeView {
    fn new(range: u32) -> RangeView {
        RangeView {
            range,
            start_id: None,
            end_id: None,
            attempt: 0,
            instance_id: None,
            phase: RangePhase::Pending,
            rows_total: None,
            rows_processed: 0,
            indexed: 0,
            failed: 0,
            docs_per_second: 0.0,
            eta_seconds: None,
            last_error: None,
            execution: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilteredView {
    pub created: u64,
    pub total: u64,
    pub completed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DropGuardView {
    pub verdict: Verdict,
    pub drop_pct: Option<f64>,
    pub max_drop_pct: Option<f64>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchGuardView {
    pub verdict: Verdict,
    pub ran: bool,
    pub passed: usize,
    pub failed: usize,
    pub min_ratio: Option<f64>,
    pub failing: Vec<String>,
    pub message: Option<String>,
}

impl SearchGuardView {
    /// What the search guard's report (its step output, or the report's `guards.search`)
    /// says: passed, or overridden with the queries below the ratio.
    pub fn from_report(report: &refresh_core::es::SearchGuardReport) -> SearchGuardView {
        let failing: Vec<String> = report
            .queries
            .iter()
            .filter(|q| !q.passed)
            .map(|q| format!("{}: {}/{} hits", q.name, q.new_hits, q.live_hits))
            .collect();
        SearchGuardView {
            verdict: if report.overridden {
                Verdict::Overridden
            } else {
                Verdict::Passed
            },
            ran: report.ran,
            passed: report.queries.len().saturating_sub(failing.len()),
            failed: failing.len(),
            min_ratio: Some(report.min_ratio),
            failing,
            message: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreflightView {
    pub passed: bool,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub stage: Option<Stage>,
    pub error: String,
    pub cause: String,
}

/// Where a run stands. [`Run::apply`] folds [`RunEvent`]s into it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub arn: String,
    pub name: String,
    pub machine: Machine,
    /// `RUNNING` until a `Finished` event (or the description) says otherwise.
    pub status: String,
    pub started: Option<DateTime<Utc>>,
    pub stopped: Option<DateTime<Utc>>,
    pub input: Option<Value>,
    pub params: Option<Params>,
    pub waiting: Option<String>,
    pub stages: Vec<StageView>,
    pub rows_copied: Option<u64>,
    pub tags_filtered: Option<u64>,
    pub rows_planned: Option<u64>,
    pub ranges: BTreeMap<u32, RangeView>,
    pub filtered: Option<FilteredView>,
    pub before: Option<Counts>,
    pub after: Option<Counts>,
    pub drop_guard: Option<DropGuardView>,
    pub search_guard: Option<SearchGuardView>,
    pub preflight: Option<PreflightView>,
    pub cleanup: Option<String>,
    pub failure: Option<Failure>,
    pub report: Option<Report>,
    /// After `AliasesNotPromoted`: the payload that finishes the promotion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_payload: Option<Value>,
    /// The last task error seen (retried or not), for the live view.
    pub last_error: Option<Failure>,
}

/// How a finished (or running) run ends, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    Running,
    Succeeded,
    /// Refused before it changed anything: invalid input, concurrency, or the drop guard.
    Refused,
    Failed,
}

/// Error names after which a run counts as refused, not failed: bad input, another run,
/// a guard that stopped promotion. Nothing was promoted.
pub const REFUSAL_ERRORS: [&str; 4] = [
    "InvalidInput",
    "ConcurrencyConflict",
    "RecordDropTooLarge",
    "SearchGuardFailed",
];

/// The failure of a run that promoted its table but not its aliases (`refresh finish`).
pub const ALIASES_NOT_PROMOTED: &str = "AliasesNotPromoted";

impl Run {
    pub fn new(info: &ExecutionInfo) -> Run {
        let machine = Machine::of_state_machine_arn(&info.state_machine_arn);
        Run {
            arn: info.arn.clone(),
            name: info.name.clone(),
            machine,
            status: "RUNNING".into(),
            started: info.start,
            stopped: None,
            input: info.input_json(),
            params: None,
            waiting: None,
            stages: machine
                .stages()
                .iter()
                .map(|&stage| StageView {
                    stage,
                    started: None,
                    finished: None,
                    outcome: None,
                    errors: 0,
                })
                .collect(),
            rows_copied: None,
            tags_filtered: None,
            rows_planned: None,
            ranges: BTreeMap::new(),
            filtered: None,
            before: None,
            after: None,
            drop_guard: None,
            search_guard: None,
            preflight: None,
            cleanup: None,
            failure: None,
            report: None,
            finish_payload: None,
            last_error: None,
        }
    }

    fn stage_mut(&mut self, stage: Stage) -> Option<&mut StageView> {
        self.stages.iter_mut().find(|s| s.stage == stage)
    }

    fn range_mut(&mut self, range: u32) -> &mut RangeView {
        self.ranges
            .entry(range)
            .or_insert_with(|| RangeView::new(range))
    }

    pub fn is_finished(&self) -> bool {
        self.status != "RUNNING"
    }

    /// The media type, from `P` once validated, else from the raw input.
    pub fn media(&self) -> Option<String> {
        self.params
            .as_ref()
            .map(|p| p.media_type.clone())
            .or_else(|| {
                self.input
                    .as_ref()
                    .and_then(|i| i.get("media_type"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
    }

    pub fn environment(&self) -> Option<String> {
        self.params
            .as_ref()
            .map(|p| p.environment.clone())
            .or_else(|| {
                self.input
                    .as_ref()
                    .and_then(|i| i.get("environment"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
    }

    pub fn result(&self) -> RunResult {
        match self.status.as_str() {
            "RUNNING" => RunResult::Running,
            "SUCCEEDED" => RunResult::Succeeded,
            _ => {
                let refused_stage = self
                    .stages
                    .iter()
                    .any(|s| s.outcome == Some(StageOutcome::Refused));
                let refused_error = self
                    .failure
                    .as_ref()
                    .is_some_and(|f| REFUSAL_ERRORS.contains(&f.error.as_str()));
                if refused_stage || refused_error {
                    RunResult::Refused
                } else {
                    RunResult::Failed
                }
            }
        }
    }

    /// The display state of a stage at `now`.
    pub fn stage_state(&self, view: &StageView) -> StageState {
        match (view.started, view.outcome) {
            (Some(_), Some(outcome)) => StageState::Done(outcome),
            (Some(_), None) => StageState::Running,
            (None, _) => {
                let later_started = self
                    .stages
                    .iter()
                    .any(|s| s.stage > view.stage && s.started.is_some());
                if self.is_finished() || later_started {
                    StageState::Skipped
                } else {
                    StageState::Pending
                }
            }
        }
    }

    /// Seconds a stage took (or has taken by `now`).
    pub fn stage_seconds(&self, view: &StageView, now: DateTime<Utc>) -> Option<f64> {
        let start = view.started?;
        let end = view.finished.unwrap_or(now);
        Some(seconds_between(start, end))
    }

    /// Seconds the whole run took (or has taken by `now`).
    pub fn seconds(&self, now: DateTime<Utc>) -> Option<f64> {
        let start = self.started?;
        Some(seconds_between(start, self.stopped.unwrap_or(now)))
    }

    pub fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::Started { time, input } => {
                self.started.get_or_insert(*time);
                if self.input.is_none() {
                    self.input = input.clone();
                }
            }
            RunEvent::Params { params, .. } => self.params = Some(params.clone()),
            RunEvent::Waiting { reason, .. } => self.waiting = Some(reason.clone()),
            RunEvent::StageStarted { time, stage, .. } => {
                if *stage != Stage::Admission {
                    self.waiting = None;
                }
                if let Some(view) = self.stage_mut(*stage) {
                    view.started.get_or_insert(*time);
                    view.finished = None;
                    view.outcome = None;
                }
            }
            RunEvent::StageFinished {
                time,
                stage,
                outcome,
                ..
            } => {
                if let Some(view) = self.stage_mut(*stage) {
                    view.finished = Some(*time);
                    view.outcome = Some(*outcome);
                }
            }
            RunEvent::StepError {
                stage,
                error,
                cause,
                ..
            } => {
                if let Some(view) = stage.and_then(|s| self.stage_mut(s)) {
                    view.errors += 1;
                }
                self.last_error = Some(Failure {
                    stage: *stage,
                    error: error.clone(),
                    cause: cause.clone(),
                });
            }
            RunEvent::CopyProgress { rows_copied, .. } => self.rows_copied = Some(*rows_copied),
            RunEvent::TagsFiltered { rows_changed, .. } => self.tags_filtered = Some(*rows_changed),
            RunEvent::Plan { rows, ranges, .. } => {
                self.rows_planned = *rows;
                for planned in ranges {
                    let view = self.range_mut(planned.range);
                    view.start_id = Some(planned.start_id);
                    view.end_id = Some(planned.end_id);
                }
            }
            RunEvent::RangeExecution {
                range,
                execution_arn,
                ..
            } => {
                self.range_mut(*range).execution = Some(execution_arn.clone());
            }
            RunEvent::RangeAttempt { range, attempt, .. } => {
                let view = self.range_mut(*range);
                view.attempt = *attempt;
                view.phase = RangePhase::Launching;
                view.instance_id = None;
                view.rows_processed = 0;
                view.indexed = 0;
                view.failed = 0;
                view.docs_per_second = 0.0;
                view.eta_seconds = None;
            }
            RunEvent::RangeInstance {
                range,
                attempt,
                instance_id,
                ..
            } => {
                let view = self.range_mut(*range);
                view.attempt = *attempt;
                view.instance_id = Some(instance_id.clone());
                view.phase = RangePhase::Starting;
            }
            RunEvent::RangeProgress {
                range,
                attempt,
                instance_id,
                rows_processed,
                rows_total,
                indexed,
                failed,
                docs_per_second,
                eta_seconds,
                ..
            } => {
                let view = self.range_mut(*range);
                view.attempt = *attempt;
                if instance_id.is_some() {
                    view.instance_id = instance_id.clone();
                }
                view.phase = RangePhase::Indexing;
                view.rows_total = Some(*rows_total);
                view.rows_processed = *rows_processed;
                view.indexed = *indexed;
                view.failed = *failed;
                view.docs_per_second = *docs_per_second;
                view.eta_seconds = *eta_seconds;
            }
            RunEvent::RangeAttemptFailed {
                range,
                attempt,
                error,
                cause,
                ..
            } => {
                let view = self.range_mut(*range);
                view.attempt = *attempt;
                view.phase = RangePhase::Retrying;
                view.last_error = Some(join_error(error, cause));
            }
            RunEvent::RangeDone {
                range,
                attempt,
                instance_id,
                indexed,
                ..
            } => {
                let view = self.range_mut(*range);
                view.attempt = *attempt;
                view.phase = RangePhase::Done;
                if instance_id.is_some() {
                    view.instance_id = instance_id.clone();
                }
                view.indexed = *indexed;
                if let Some(total) = view.rows_total {
                    view.rows_processed = total;
                }
                view.eta_seconds = Some(0);
            }
            RunEvent::RangeFailed {
                range,
                attempt,
                error,
                cause,
                ..
            } => {
                let view = self.range_mut(*range);
                if let Some(attempt) = attempt {
                    view.attempt = *attempt;
                }
                view.phase = RangePhase::Failed;
                view.eta_seconds = None;
                view.last_error = Some(join_error(error, cause));
            }
            RunEvent::FilteredProgress {
                created,
                total,
                completed,
                ..
            } => {
                self.filtered = Some(FilteredView {
                    created: *created,
                    total: *total,
                    completed: *completed,
                })
            }
            RunEvent::FilteredVerified { verification, .. } => {
                use refresh_core::es::FilteredVerification as V;
                // A rebuild's _reindex reports its own progress next.
                if let V::Verified { filtered_count, .. } | V::Repaired { filtered_count, .. } =
                    verification
                {
                    self.filtered = Some(FilteredView {
                        created: *filtered_count,
                        total: *filtered_count,
                        completed: true,
                    })
                }
            }
            RunEvent::Counts { which, counts, .. } => {
                if *which == "before" {
                    self.before = Some(counts.clone());
                } else {
                    self.after = Some(counts.clone());
                }
            }
            RunEvent::DropGuard {
                verdict,
                drop_pct,
                max_drop_pct,
                message,
                ..
            } => {
                self.drop_guard = Some(DropGuardView {
                    verdict: *verdict,
                    drop_pct: *drop_pct,
                    max_drop_pct: *max_drop_pct,
                    message: message.clone(),
                })
            }
            RunEvent::SearchGuard {
                verdict,
                ran,
                passed,
                failed,
                min_ratio,
                failing,
                message,
                ..
            } => {
                self.search_guard = Some(SearchGuardView {
                    verdict: *verdict,
                    ran: *ran,
                    passed: *passed,
                    failed: *failed,
                    min_ratio: *min_ratio,
                    failing: failing.clone(),
                    message: message.clone(),
                })
            }
            RunEvent::Preflight {
                passed, message, ..
            } => {
                self.preflight = Some(PreflightView {
                    passed: *passed,
                    message: message.clone(),
                })
            }
            RunEvent::Report { report, .. } => self.report = Some(report.clone()),
            RunEvent::Cleanup { summary, .. } => self.cleanup = Some(summary.clone()),
            RunEvent::Finished {
                time,
                status,
                error,
                cause,
                report,
                finish_payload,
            } => {
                self.status = status.clone();
                if finish_payload.is_some() {
                    self.finish_payload = finish_payload.clone();
                }
                self.stopped = Some(*time);
                self.waiting = None;
                if error.is_some() || cause.is_some() {
                    let stage = self
                        .stages
                        .iter()
                        .filter(|s| {
                            s.stage != Stage::FailureCleanup
                                && matches!(
                                    s.outcome,
                                    Some(
                                        StageOutcome::Failed
                                            | StageOutcome::Refused
                                            | StageOutcome::Aborted
                                            | StageOutcome::TimedOut
                                    )
                                )
                        })
                        .map(|s| s.stage)
                        .next_back();
                    self.failure = Some(Failure {
                        stage,
                        error: error.clone().unwrap_or_default(),
                        cause: cause.clone().unwrap_or_default(),
                    });
                }
                if report.is_some() {
                    self.report = report.clone();
                }
            }
        }
    }
}

pub fn seconds_between(start: DateTime<Utc>, end: DateTime<Utc>) -> f64 {
    ((end - start).num_milliseconds().max(0)) as f64 / 1000.0
}

fn join_error(error: &str, cause: &str) -> String {
    match (error.is_empty(), cause.is_empty()) {
        (false, false) => format!("{error}: {cause}"),
        (false, true) => error.to_string(),
        (true, _) => cause.to_string(),
    }
}
