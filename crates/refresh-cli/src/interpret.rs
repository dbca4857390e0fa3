//! History events → [`RunEvent`]s.
//!
//! Reads only what the execution history carries: state names, the state input/output the
//! existing Lambdas produced (worker task status, copy cursor, counts, the guards' answers,
//! the report) and errors. Nothing here calls AWS, a database or Elasticsearch. A data
//! refresh's ranges run in executions of their own (the worker-range machine): each is read
//! by an interpreter of [`Scope::Range`], and `reader` merges them into the run.

use crate::history::{ExecutionInfo, HistoryEvent};
use crate::model::{
    Counts, Params, PlannedRange, Report, Run, RunEvent, SearchGuardView, StageOutcome, Verdict,
    ALIASES_NOT_PROMOTED, REFUSAL_ERRORS,
};
use crate::stages::{is_refused_state, stage_of, states, Stage};
use chrono::{DateTime, Utc};
use refresh_core::worker_api::TaskStatus;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

/// Event types that report a task error (retried or caught).
const ERROR_EVENTS: [&str; 9] = [
    "TaskFailed",
    "TaskTimedOut",
    "TaskStartFailed",
    "TaskSubmitFailed",
    "LambdaFunctionFailed",
    "LambdaFunctionTimedOut",
    "LambdaFunctionStartFailed",
    "LambdaFunctionScheduleFailed",
    "ActivityFailed",
];

/// Whose history an [`Interpreter`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A data refresh or filtered-index execution: its stages, ranges and end.
    Execution,
    /// A worker-range execution: only what it says of its range (attempts, workers,
    /// progress, errors). The refresh's own history holds the stages and the end.
    Range,
}

/// Turns a history, event by event, into [`RunEvent`]s. Keeps what it needs to attribute
/// an event to its state (through `previousEventId`) and to tell stage changes.
#[derive(Debug)]
pub struct Interpreter {
    scope: Scope,
    state_of: HashMap<i64, String>,
    /// Event id → the id of the `…StateEntered` event of its state's visit.
    entry_of: HashMap<i64, i64>,
    /// Visits (by entry id) whose last task attempt failed: a Catch took the error, so the
    /// state's output still carries what an earlier visit wrote.
    caught: BTreeSet<i64>,
    range_of: HashMap<i64, u32>,
    current: Option<(Stage, DateTime<Utc>)>,
    /// Error names seen in the current stage, to tell a refusal from a failure.
    stage_errors: Vec<String>,
    refused: bool,
    cleanup_failed: bool,
    attempts: BTreeSet<(u32, u32)>,
    instances: HashMap<(u32, u32), String>,
    max_drop_pct: Option<f64>,
    finished: bool,
    waiting_for: Option<String>,
    /// Ranges whose worker-range execution has been named.
    range_executions: BTreeSet<u32>,
}

impl Default for Interpreter {
    fn default() -> Self {
        Self::new()
    }
}

impl Interpreter {
    pub fn new() -> Interpreter {
        Interpreter::with_scope(Scope::Execution)
    }

    pub fn with_scope(scope: Scope) -> Interpreter {
        Interpreter {
            scope,
            state_of: HashMap::new(),
            entry_of: HashMap::new(),
            caught: BTreeSet::new(),
            range_of: HashMap::new(),
            current: None,
            stage_errors: Vec::new(),
            refused: false,
            cleanup_failed: false,
            attempts: BTreeSet::new(),
            instances: HashMap::new(),
            max_drop_pct: None,
            finished: false,
            waiting_for: None,
            range_executions: BTreeSet::new(),
        }
    }

    /// Whether the history's closing event has been read.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The run events one history event means (often none).
    pub fn feed(&mut self, event: &HistoryEvent) -> Vec<RunEvent> {
        let mut out = Vec::new();
        // LocalStack records iterations winding down after the execution's end: not news.
        if self.finished {
            return out;
        }
        let time = event.timestamp;
        self.attribute(event);
        let kind = event.kind.as_str();
        if let Some(entry) = self.entry_of.get(&event.id).copied() {
            if ERROR_EVENTS.contains(&kind) {
                self.caught.insert(entry);
            } else if kind.ends_with("Succeeded") {
                // A retry that worked.
                self.caught.remove(&entry);
            }
        }
        let execution = self.scope == Scope::Execution;
        if kind == "ExecutionStarted" && execution {
            out.push(RunEvent::Started {
                time,
                input: event
                    .detail("input")
                    .and_then(|s| serde_json::from_str(s).ok()),
            });
        } else if kind.ends_with("StateEntered") {
            if let Some(name) = event.state_name() {
                self.entered(name, event, &mut out);
            }
        } else if kind.ends_with("StateExited") {
            if let Some(name) = event.state_name() {
                self.exited(name, event, &mut out);
            }
        } else if kind == "TaskSubmitted" {
            // A `startExecution.sync` task names the execution it started in its output.
            let started = event
                .detail("output")
                .and_then(|o| serde_json::from_str::<Value>(o).ok());
            if let Some(arn) = started.as_ref().and_then(child_execution_arn) {
                self.range_execution(event, &arn, &mut out);
            }
        } else if ERROR_EVENTS.contains(&kind) {
            let state = self.state_of.get(&event.id).cloned().unwrap_or_default();
            let error = event.detail("error").unwrap_or(kind).to_string();
            let stage = stage_of(&state);
            self.stage_errors.push(error.clone());
            // The concurrency check answers with this error each time it finds the
            // environment busy: the wait (or the refusal) says it once.
            if error == "ConcurrencyConflict" {
                return out;
            }
            if state == states::INDEX_RANGE_ON_A_WORKER {
                // A failed range execution's description (its ARN with it) is the cause.
                let described = event
                    .detail("cause")
                    .and_then(|c| serde_json::from_str::<Value>(c).ok());
                if let Some(arn) = described.as_ref().and_then(child_execution_arn) {
                    self.range_execution(event, &arn, &mut out);
                }
            }
            out.push(RunEvent::StepError {
                time,
                stage,
                range: self.range_of.get(&event.id).copied(),
                state,
                error,
                cause: readable_cause(event.detail("cause").unwrap_or_default()),
            });
        } else if let Some(status) = finish_status(kind) {
            if !execution {
                // A range's end: the refresh's own history says what it means for the run.
                self.finished = true;
                return out;
            }
            let error = event.detail("error").map(str::to_string);
            let outcome = match status {
                "SUCCEEDED" => StageOutcome::Succeeded,
                "ABORTED" => StageOutcome::Aborted,
                "TIMED_OUT" => StageOutcome::TimedOut,
                _ => match self.current {
                    Some((Stage::FailureCleanup, _)) if !self.cleanup_failed => {
                        StageOutcome::Succeeded
                    }
                    Some((Stage::FailureCleanup, _)) => StageOutcome::Failed,
                    _ if self.refused
                        || error
                            .as_deref()
                            .is_some_and(|e| REFUSAL_ERRORS.contains(&e)) =>
                    {
                        StageOutcome::Refused
                    }
                    _ => StageOutcome::Failed,
                },
            };
            self.finish_current(time, outcome, &mut out);
            self.finished = true;
            let report = if status == "SUCCEEDED" {
                event
                    .detail("output")
                    .and_then(|s| serde_json::from_str::<Report>(s).ok())
            } else {
                None
            };
            let finish_payload = finish_payload(error.as_deref(), event.detail("cause"));
            out.push(RunEvent::Finished {
                time,
                status: status.to_string(),
                error,
                cause: event.detail("cause").map(readable_cause),
                report,
                finish_payload,
            });
        }
        out
    }

    /// Names the execution a range runs in, once per range.
    fn range_execution(&mut self, event: &HistoryEvent, arn: &str, out: &mut Vec<RunEvent>) {
        let Some(range) = self.range_of.get(&event.id).copied() else {
            return;
        };
        if self.range_executions.insert(range) {
            out.push(RunEvent::RangeExecution {
                time: event.timestamp,
                range,
                execution_arn: arn.to_string(),
            });
        }
    }

    /// Remembers which state (and reindex range) an event belongs to: state entered events
    /// name it, every later event of that state points back to one before it.
    fn attribute(&mut self, event: &HistoryEvent) {
        if let Some(name) = event
            .state_name()
            .filter(|_| event.kind.ends_with("StateEntered"))
        {
            self.state_of.insert(event.id, name.to_string());
            self.entry_of.insert(event.id, event.id);
            if let Some(range) = event.data().as_ref().and_then(range_index) {
                self.range_of.insert(event.id, range);
            }
            return;
        }
        if let Some(state) = self.state_of.get(&event.previous_id).cloned() {
            self.state_of.insert(event.id, state);
        }
        if let Some(entry) = self.entry_of.get(&event.previous_id).copied() {
            self.entry_of.insert(event.id, entry);
        }
        if let Some(range) = self.range_of.get(&event.previous_id).copied() {
            self.range_of.insert(event.id, range);
        }
    }

    fn finish_current(
        &mut self,
        time: DateTime<Utc>,
        outcome: StageOutcome,
        out: &mut Vec<RunEvent>,
    ) {
        if let Some((stage, start)) = self.current.take() {
            out.push(RunEvent::StageFinished {
                time,
                stage,
                label: stage.label(),
                outcome,
                seconds: crate::model::seconds_between(start, time),
            });
        }
    }

    fn enter_stage(&mut self, stage: Stage, time: DateTime<Utc>, out: &mut Vec<RunEvent>) {
        if self.current.map(|(s, _)| s) == Some(stage) {
            return;
        }
        if self.current.is_some() {
            let outcome = if stage != Stage::FailureCleanup {
                StageOutcome::Succeeded
            } else if self
                .stage_errors
                .iter()
                .any(|e| REFUSAL_ERRORS.contains(&e.as_str()))
            {
                StageOutcome::Refused
            } else {
                StageOutcome::Failed
            };
            self.finish_current(time, outcome, out);
        }
        self.stage_errors.clear();
        self.current = Some((stage, time));
        out.push(RunEvent::StageStarted {
            time,
            stage,
            label: stage.label(),
        });
    }

    fn entered(&mut self, name: &str, event: &HistoryEvent, out: &mut Vec<RunEvent>) {
        let time = event.timestamp;
        if self.scope == Scope::Execution {
            if let Some(stage) = stage_of(name) {
                self.enter_stage(stage, time, out);
            }
            if is_refused_state(name) {
                self.refused = true;
            }
        }
        let input = event.data().unwrap_or(Value::Null);
        match name {
            states::WAIT_FOR_OTHER_RUN => {
                let reason = error_pair(&input["error"])
                    .map(|(_, cause)| cause)
                    .unwrap_or_else(|| "another run holds the environment".into());
                // Each round of the wait loop says the same: only a new reason is news.
                if self.waiting_for.as_deref() != Some(reason.as_str()) {
                    self.waiting_for = Some(reason.clone());
                    out.push(RunEvent::Waiting { time, reason });
                }
            }
            states::LAUNCH_WORKER => {
                if let (Some(range), Some(attempt)) = (range_index(&input), attempt(&input)) {
                    if self.attempts.insert((range, attempt)) {
                        out.push(RunEvent::RangeAttempt {
                            time,
                            range,
                            attempt,
                        });
                    }
                }
            }
            states::RETRY_RANGE | states::RANGE_FAILED => {
                if let (Some(range), Some(attempt)) = (range_index(&input), attempt(&input)) {
                    let (error, cause) = error_pair(&input["attempt_error"]).unwrap_or_default();
                    out.push(if name == states::RETRY_RANGE {
                        RunEvent::RangeAttemptFailed {
                            time,
                            range,
                            attempt,
                            error,
                            cause,
                        }
                    } else {
                        RunEvent::RangeFailed {
                            time,
                            range,
                            attempt: Some(attempt),
                            error,
                            cause,
                        }
                    });
                } else if let (Some(range), Some((error, cause))) = (
                    range_index(&input),
                    error_pair(&input["child"]["execution"]),
                ) {
                    // The refresh's Map: the range's execution failed with this.
                    out.push(RunEvent::RangeFailed {
                        time,
                        range,
                        attempt: None,
                        error,
                        cause,
                    });
                }
            }
            states::RANGE_COULD_NOT_RUN => {
                if let Some(range) = range_index(&input) {
                    let (error, cause) = error_pair(&input["range_error"]).unwrap_or_default();
                    out.push(RunEvent::RangeFailed {
                        time,
                        range,
                        attempt: None,
                        error,
                        cause,
                    });
                }
            }
            states::WAIT_BEFORE_RETRYING_ALIASES => {
                // The first attempt is not counted: `alias_retry_max_attempts` retries follow it.
                let attempts = input["alias_attempts"]["count"].as_u64().unwrap_or(0) + 1;
                let mut reason = format!("alias move attempt {attempts}");
                if let Some(max) = input["settings"]["alias_retry_max_attempts"].as_u64() {
                    let _ = write!(reason, " of {}", max + 1);
                }
                // The error itself was just told (the task's failure event).
                reason.push_str(" failed (the table is promoted)");
                if let Some(seconds) = input["settings"]["alias_retry_seconds"].as_u64() {
                    let _ = write!(reason, "; retrying in {seconds}s");
                }
                if self.waiting_for.as_deref() != Some(reason.as_str()) {
                    self.waiting_for = Some(reason.clone());
                    out.push(RunEvent::Waiting { time, reason });
                }
            }
            _ => {}
        }
    }

    fn exited(&mut self, name: &str, event: &HistoryEvent, out: &mut Vec<RunEvent>) {
        let time = event.timestamp;
        let Some(output) = event.data() else {
            return;
        };
        // A caught failure leaves the previous poll's progress in the state: not news.
        let caught = self
            .entry_of
            .get(&event.id)
            .is_some_and(|entry| self.caught.contains(entry));
        match name {
            states::VALIDATE_INPUT => {
                if let Some(params) = output
                    .get("params")
                    .and_then(|p| serde_json::from_value::<Params>(p.clone()).ok())
                {
                    self.max_drop_pct = params.max_record_drop_pct;
                    out.push(RunEvent::Params { time, params });
                }
            }
            states::COUNT_BEFORE | states::COUNT_AFTER => {
                let key = if name == states::COUNT_BEFORE {
                    "before"
                } else {
                    "after"
                };
                if let Some(counts) = output
                    .get(key)
                    .and_then(|c| serde_json::from_value::<Counts>(c.clone()).ok())
                {
                    out.push(RunEvent::Counts {
                        time,
                        which: key,
                        counts,
                    });
                }
            }
            states::COPY_DATA => {
                let copy = &output["copy"];
                if let Some(rows_copied) = copy["rows_copied"].as_u64() {
                    out.push(RunEvent::CopyProgress {
                        time,
                        rows_copied,
                        rows_scanned: copy["rows_scanned"].as_u64(),
                        done: copy["done"].as_bool().unwrap_or(false),
                    });
                }
            }
            states::FILTER_TAGS => {
                if let Some(rows_changed) = output["tag_filter"]["rows_changed"].as_u64() {
                    out.push(RunEvent::TagsFiltered { time, rows_changed });
                }
            }
            states::PLAN_RANGES => {
                let plan = &output["plan"];
                let ranges = plan["ranges"]
                    .as_array()
                    .map(|list| {
                        list.iter()
                            .filter_map(|r| {
                                Some(PlannedRange {
                                    range: u32::try_from(r["range_index"].as_u64()?).ok()?,
                                    start_id: r["start_id"].as_i64()?,
                                    end_id: r["end_id"].as_i64()?,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(RunEvent::Plan {
                    time,
                    rows: plan["rows"].as_u64(),
                    ranges,
                });
            }
            states::LAUNCH_WORKER => {
                if let (Some(range), Some(attempt), Some(instance)) = (
                    range_index(&output),
                    attempt(&output),
                    output["worker"]["instance_id"].as_str(),
                ) {
                    self.instances
                        .insert((range, attempt), instance.to_string());
                    out.push(RunEvent::RangeInstance {
                        time,
                        range,
                        attempt,
                        instance_id: instance.to_string(),
                    });
                }
            }
            states::GET_REINDEX_PROGRESS => {
                if caught {
                    return;
                }
                let (Some(range), Some(attempt)) = (range_index(&output), attempt(&output)) else {
                    return;
                };
                let Ok(task) = serde_json::from_value::<TaskStatus>(output["progress"].clone())
                else {
                    return;
                };
                out.push(RunEvent::RangeProgress {
                    time,
                    range,
                    attempt,
                    instance_id: output["worker"]["instance_id"]
                        .as_str()
                        .map(str::to_string)
                        .or_else(|| self.instances.get(&(range, attempt)).cloned()),
                    rows_processed: task.rows_processed,
                    rows_total: task.rows_total,
                    indexed: task.indexed,
                    failed: task.failed,
                    docs_per_second: task.rows_per_second,
                    eta_seconds: eta(task.rows_processed, task.rows_total, task.rows_per_second),
                });
            }
            states::RANGE_INDEXED | states::INDEX_RANGE_ON_A_WORKER => {
                if let Some(arn) = output["execution_arn"].as_str() {
                    self.range_execution(event, arn, out);
                }
                if let (Some(range), Some(attempt)) = (range_index(&output), attempt(&output)) {
                    out.push(RunEvent::RangeDone {
                        time,
                        range,
                        attempt,
                        instance_id: output["instance_id"].as_str().map(str::to_string),
                        indexed: output["task"]["indexed"].as_u64().unwrap_or(0),
                    });
                }
            }
            states::GET_FILTERED_PROGRESS => {
                if caught {
                    return;
                }
                let progress = &output["filtered_progress"];
                if let (Some(created), Some(total)) =
                    (progress["created"].as_u64(), progress["total"].as_u64())
                {
                    out.push(RunEvent::FilteredProgress {
                        time,
                        created,
                        total,
                        completed: progress["completed"].as_bool().unwrap_or(false),
                    });
                }
            }
            states::VERIFY_FILTERED_INDEX => {
                if let Ok(verification) =
                    serde_json::from_value(output["filtered_verification"].clone())
                {
                    out.push(RunEvent::FilteredVerified { time, verification });
                }
            }
            states::CHECK_RECORD_DROP => {
                out.extend(self.drop_guard(time, &output));
            }
            states::CHECK_SEARCH_GUARD => {
                out.extend(
                    search_guard(time, &output).or_else(|| search_guard_refused(time, &output)),
                );
            }
            states::PREFLIGHT_PROMOTION => {
                out.extend(preflight(time, &output));
            }
            states::REPORT => {
                if let Some(report) = output
                    .get("report")
                    .and_then(|r| serde_json::from_value::<Report>(r.clone()).ok())
                {
                    out.push(RunEvent::Report { time, report });
                }
            }
            states::CLEAN_UP_FAILED_RUN | states::DELETE_UNPROMOTED_FILTERED => {
                // A failed cleanup's error: at `cleanup` since the failure notices read it
                // there, at `cleanup_error` in older filtered-index runs.
                let failed =
                    error_pair(&output["cleanup_error"]).or_else(|| error_pair(&output["cleanup"]));
                let summary = if let Some((error, cause)) = failed {
                    self.cleanup_failed = true;
                    format!("cleanup failed: {error}: {cause}")
                } else {
                    cleanup_summary(&output["cleanup"])
                };
                out.push(RunEvent::Cleanup { time, summary });
            }
            _ => {}
        }
    }

    fn drop_guard(&self, time: DateTime<Utc>, output: &Value) -> Option<RunEvent> {
        let drop = &output["record_drop"];
        if drop.is_object() {
            let overridden = drop["overridden"].as_bool().unwrap_or(false);
            return Some(RunEvent::DropGuard {
                time,
                verdict: if overridden {
                    Verdict::Overridden
                } else {
                    Verdict::Passed
                },
                before: drop["before"].as_u64(),
                after: drop["after"].as_u64(),
                drop_pct: drop["drop_pct"].as_f64(),
                max_drop_pct: self.max_drop_pct,
                message: None,
            });
        }
        let (error, cause) = error_pair(&output["error"])?;
        (error == "RecordDropTooLarge").then_some(RunEvent::DropGuard {
            time,
            verdict: Verdict::Refused,
            before: None,
            after: None,
            drop_pct: None,
            max_drop_pct: self.max_drop_pct,
            message: Some(cause),
        })
    }
}

/// The search guard's answer from `Check search guard`'s output: its report, or the
/// refusal (`SearchGuardFailed`) the Catch put at `$.error`.
fn search_guard(time: DateTime<Utc>, output: &Value) -> Option<RunEvent> {
    let report = serde_json::from_value::<refresh_core::es::SearchGuardReport>(
        output.get("search_guard")?.clone(),
    )
    .ok()?;
    let view = SearchGuardView::from_report(&report);
    Some(RunEvent::SearchGuard {
        time,
        verdict: view.verdict,
        ran: view.ran,
        passed: view.passed,
        failed: view.failed,
        min_ratio: view.min_ratio,
        failing: view.failing,
        message: None,
    })
}

/// [`search_guard`] for a run whose guard refused: the output holds the error instead.
fn search_guard_refused(time: DateTime<Utc>, output: &Value) -> Option<RunEvent> {
    let (error, cause) = error_pair(&output["error"])?;
    (error == "SearchGuardFailed").then_some(RunEvent::SearchGuard {
        time,
        verdict: Verdict::Refused,
        ran: true,
        passed: 0,
        failed: 0,
        min_ratio: None,
        failing: Vec::new(),
        message: Some(
            cause
                .strip_prefix("search guard: ")
                .map(str::to_string)
                .unwrap_or(cause.clone()),
        ),
    })
}

/// The pre-flight's answer: its report (passed), or `PromotionNotReady` at `$.error`.
fn preflight(time: DateTime<Utc>, output: &Value) -> Option<RunEvent> {
    if output.get("preflight").is_some_and(Value::is_object) {
        return Some(RunEvent::Preflight {
            time,
            passed: true,
            message: None,
        });
    }
    let (error, cause) = error_pair(&output["error"])?;
    (error == "PromotionNotReady").then_some(RunEvent::Preflight {
        time,
        passed: false,
        message: Some(cause),
    })
}

/// The ARN in a `startExecution` answer or a child execution's description (`.sync:2`
/// writes the SDK's names; the ResultSelector of the Map writes `execution_arn`).
fn child_execution_arn(value: &Value) -> Option<String> {
    ["ExecutionArn", "executionArn"]
        .iter()
        .find_map(|key| value.get(*key)?.as_str())
        .map(str::to_string)
}

/// The payload of `refresh finish`, read from the raw cause of an `AliasesNotPromoted` end.
fn finish_payload(error: Option<&str>, cause: Option<&str>) -> Option<Value> {
    if error != Some(ALIASES_NOT_PROMOTED) {
        return None;
    }
    crate::finish::payload_from_cause(cause?)
        .ok()
        .map(|p| p.to_value())
}

/// Folds a whole recorded history into a [`Run`]; also returns the events, in order.
pub fn replay(info: &ExecutionInfo, events: &[HistoryEvent]) -> (Run, Vec<RunEvent>) {
    replay_with_ranges(info, events, &[])
}

/// [`replay`] with the histories of the run's range executions (`(execution ARN, events)`;
/// those the run's history does not name are not read).
pub fn replay_with_ranges(
    info: &ExecutionInfo,
    events: &[HistoryEvent],
    ranges: &[(String, Vec<HistoryEvent>)],
) -> (Run, Vec<RunEvent>) {
    let mut run = Run::new(info);
    let mut reader = crate::reader::RunReader::new();
    let mut streams = vec![reader.parent(events)];
    for (arn, range_events) in ranges {
        streams.push(reader.child(arn, range_events));
    }
    let mut all = reader.settle(streams);
    for run_event in &all {
        run.apply(run_event);
    }
    reconcile(&mut run, &mut all, info);
    (run, all)
}

/// Makes a finished run agree with `DescribeExecution`, which is authoritative for the
/// status: LocalStack ends an aborted execution's history with `ExecutionFailed`
/// (`States.Runtime`) instead of `ExecutionAborted`, and a history read just before the
/// end has no closing event. Patches the closing events in `events` to match.
pub fn reconcile(run: &mut Run, events: &mut [RunEvent], info: &ExecutionInfo) {
    if info.is_running() || info.status.is_empty() || info.status == "UNKNOWN" {
        return;
    }
    let time = info.stop.or(run.stopped).unwrap_or_default();
    if !run.is_finished() {
        // No closing event yet: close the open stage the way the description says.
        let outcome = match info.status.as_str() {
            "SUCCEEDED" => StageOutcome::Succeeded,
            "ABORTED" => StageOutcome::Aborted,
            "TIMED_OUT" => StageOutcome::TimedOut,
            _ => StageOutcome::Failed,
        };
        for view in run
            .stages
            .iter_mut()
            .filter(|s| s.started.is_some() && s.outcome.is_none())
        {
            view.outcome = Some(outcome);
            view.finished = Some(time);
        }
        run.apply(&RunEvent::Finished {
            time,
            status: info.status.clone(),
            error: info.error.clone(),
            cause: info.cause.as_deref().map(readable_cause),
            report: info
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str::<Report>(o).ok()),
            finish_payload: finish_payload(info.error.as_deref(), info.cause.as_deref()),
        });
        return;
    }
    if run.status == info.status {
        return;
    }
    run.status = info.status.clone();
    run.stopped = info.stop.or(run.stopped);
    if info.status == "ABORTED" {
        // The stage that was running when the stop came was aborted, not failed.
        let last = run
            .stages
            .iter_mut()
            .filter(|s| s.stage != Stage::FailureCleanup && s.outcome.is_some())
            .max_by_key(|s| s.started);
        if let Some(view) = last {
            view.outcome = Some(StageOutcome::Aborted);
        }
        let stage = run.failure.as_ref().and_then(|f| f.stage);
        run.failure = Some(crate::model::Failure {
            stage,
            error: info.error.clone().unwrap_or_default(),
            cause: info
                .cause
                .as_deref()
                .map(readable_cause)
                .unwrap_or_else(|| "stopped by StopExecution".into()),
        });
    }
    for event in events.iter_mut().rev() {
        if let RunEvent::StageFinished { outcome, stage, .. } = event {
            if info.status == "ABORTED" && *stage != Stage::FailureCleanup {
                *outcome = StageOutcome::Aborted;
                break;
            }
        }
    }
    if let Some(RunEvent::Finished {
        status,
        error,
        cause,
        ..
    }) = events
        .iter_mut()
        .rev()
        .find(|e| matches!(e, RunEvent::Finished { .. }))
    {
        *status = run.status.clone();
        if let Some(failure) = &run.failure {
            *error = Some(failure.error.clone());
            *cause = Some(failure.cause.clone());
        }
    }
}

fn finish_status(kind: &str) -> Option<&'static str> {
    match kind {
        "ExecutionSucceeded" => Some("SUCCEEDED"),
        "ExecutionFailed" => Some("FAILED"),
        "ExecutionAborted" => Some("ABORTED"),
        "ExecutionTimedOut" => Some("TIMED_OUT"),
        _ => None,
    }
}

fn range_index(value: &Value) -> Option<u32> {
    u32::try_from(value.get("range")?.get("range_index")?.as_u64()?).ok()
}

fn attempt(value: &Value) -> Option<u32> {
    u32::try_from(value.get("attempt")?.as_u64()?).ok()
}

/// Seconds left at the current rate; `None` before the rate is known.
pub fn eta(done: u64, total: u64, per_second: f64) -> Option<u64> {
    if done >= total {
        return Some(0);
    }
    (per_second.is_finite() && per_second > 0.0)
        .then(|| ((total - done) as f64 / per_second).ceil() as u64)
}

/// A caught error as the state machine stores it: `{"Error", "Cause"}`.
fn error_pair(value: &Value) -> Option<(String, String)> {
    let error = value.get("Error")?.as_str()?.to_string();
    let cause = value
        .get("Cause")
        .and_then(Value::as_str)
        .map(readable_cause)
        .unwrap_or_default();
    Some((error, cause))
}

/// A Lambda error's cause is the function's error payload as JSON text: keep its message.
/// A failed range execution's cause (`startExecution.sync:2`) is its description: keep its
/// own error and cause.
pub fn readable_cause(cause: &str) -> String {
    one_line(&cause_text(cause), 400)
}

fn cause_text(cause: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(cause) else {
        return cause.to_string();
    };
    if let Some(message) = value.get("errorMessage").and_then(Value::as_str) {
        return message.to_string();
    }
    let field = |names: [&str; 2]| names.iter().find_map(|n| value.get(*n)?.as_str());
    match (field(["Error", "error"]), field(["Cause", "cause"])) {
        (Some(error), Some(cause)) => format!("{error}: {}", cause_text(cause)),
        (Some(error), None) => error.to_string(),
        (None, Some(cause)) => cause_text(cause),
        (None, None) => match field(["Status", "status"]) {
            // Stopped or timed out: no error of its own.
            Some(status) => format!("the range's execution ended {status}"),
            None => cause.to_string(),
        },
    }
}

/// Newlines folded, long text cut (on a character boundary) with an ellipsis.
pub fn one_line(text: &str, max_chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let cut: String = flat.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

/// `cleanup`'s output in one line.
fn cleanup_summary(cleanup: &Value) -> String {
    let list = |key: &str| -> Vec<String> {
        cleanup[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut parts = Vec::new();
    let terminated = list("terminated_instances");
    if !terminated.is_empty() {
        parts.push(format!("terminated {}", terminated.join(", ")));
    }
    if cleanup["dropped_temp_table"].as_bool() == Some(true) {
        parts.push("dropped the temp table".to_string());
    }
    let deleted = list("deleted_indices");
    if !deleted.is_empty() {
        parts.push(format!("deleted {}", deleted.join(", ")));
    }
    let kept = list("kept_indices");
    if !kept.is_empty() {
        parts.push(format!("kept {}", kept.join(", ")));
    }
    if let Some(skipped) = cleanup["skipped"].as_str() {
        parts.push(format!("skipped: {skipped}"));
    }
    if parts.is_empty() {
        "nothing was left to clean up".to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lambda_causes_keep_their_message() {
        assert_eq!(
            readable_cause(
                r#"{"errorType":"WorkerTaskFailed","errorMessage":"task t1 ended:\n boom"}"#
            ),
            "task t1 ended: boom"
        );
        assert_eq!(readable_cause("plain text"), "plain text");
        // A failed range execution's description, as `startExecution.sync:2` reports it.
        assert_eq!(
            readable_cause(
                r#"{"ExecutionArn":"arn:x","Status":"FAILED","Error":"WorkerNotReady","Cause":"The worker did not answer /healthcheck in time."}"#
            ),
            "WorkerNotReady: The worker did not answer /healthcheck in time."
        );
        assert_eq!(
            readable_cause(r#"{"ExecutionArn":"arn:x","Status":"ABORTED"}"#),
            "the range's execution ended ABORTED"
        );
        let long = "x".repeat(500);
        assert_eq!(readable_cause(&long).chars().count(), 401);
    }

    #[test]
    fn eta_is_unknown_until_there_is_a_rate() {
        assert_eq!(eta(0, 100, 0.0), None);
        assert_eq!(eta(50, 100, 10.0), Some(5));
        assert_eq!(eta(51, 100, 10.0), Some(5));
        assert_eq!(eta(100, 100, 0.0), Some(0));
        assert_eq!(eta(10, 100, f64::NAN), None);
    }

    #[test]
    fn cleanup_output_reads_as_a_sentence() {
        assert_eq!(
            cleanup_summary(&json!({
                "terminated_instances": ["i-1"], "dropped_temp_table": true,
                "dropped_fdw_server": true, "deleted_indices": ["image-x", "image-x-filtered"],
                "cancelled_tasks": [], "kept_indices": [], "skipped": null
            })),
            "terminated i-1; dropped the temp table; deleted image-x, image-x-filtered"
        );
        assert_eq!(cleanup_summary(&json!({})), "nothing was left to clean up");
    }
}
