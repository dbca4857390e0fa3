//! `list` and `history` tables: pure functions over descriptions and replayed runs.

use crate::history::ExecutionInfo;
use crate::model::{seconds_between, Run, RunResult, StageOutcome};
use crate::origin::{origin, Origin};
use crate::render::{change_pct, fmt_count, fmt_duration, fmt_time};
use crate::stages::{Machine, Stage};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;

/// One line of `refresh list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListRow {
    pub name: String,
    pub arn: String,
    pub machine: Machine,
    pub media: Option<String>,
    pub environment: Option<String>,
    pub status: String,
    pub start: Option<DateTime<Utc>>,
    pub stop: Option<DateTime<Utc>>,
    pub started_by: Origin,
}

fn input_field(input: Option<&Value>, key: &str) -> Option<String> {
    input?.get(key)?.as_str().map(str::to_string)
}

impl ListRow {
    pub fn from_info(info: &ExecutionInfo) -> ListRow {
        let input = info.input_json();
        ListRow {
            name: info.name.clone(),
            arn: info.arn.clone(),
            machine: Machine::of_state_machine_arn(&info.state_machine_arn),
            media: input_field(input.as_ref(), "media_type"),
            environment: input_field(input.as_ref(), "environment"),
            status: info.status.clone(),
            start: info.start,
            stop: info.stop,
            started_by: origin(&info.name, input.as_ref()),
        }
    }

    pub fn seconds(&self, now: DateTime<Utc>) -> Option<f64> {
        Some(seconds_between(self.start?, self.stop.unwrap_or(now)))
    }
}

pub fn list_table(rows: &[ListRow], now: DateTime<Utc>) -> String {
    if rows.is_empty() {
        return "no executions\n".into();
    }
    let mut out = format!(
        "{:<21} {:<10} {:<14} {:<6} {:<11} {:>9}  {:<9} {}\n",
        "STARTED", "STATUS", "MACHINE", "MEDIA", "ENVIRONMENT", "DURATION", "BY", "NAME"
    );
    for row in rows {
        let duration = row.seconds(now).map(fmt_duration).unwrap_or_default();
        let duration = if row.stop.is_none() && row.start.is_some() {
            format!("{duration}+")
        } else {
            duration
        };
        let _ = writeln!(
            out,
            "{:<21} {:<10} {:<14} {:<6} {:<11} {:>9}  {:<9} {}",
            row.start.map(fmt_time).unwrap_or_else(|| "?".into()),
            row.status,
            row.machine.label(),
            row.media.as_deref().unwrap_or("?"),
            row.environment.as_deref().unwrap_or("?"),
            duration,
            row.started_by.label(),
            row.name
        );
    }
    out
}

/// One refresh of `refresh history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendRow {
    pub name: String,
    pub status: String,
    pub result: RunResult,
    pub environment: Option<String>,
    pub start: Option<DateTime<Utc>>,
    pub seconds: Option<f64>,
    pub copy_seconds: Option<f64>,
    pub reindex_seconds: Option<f64>,
    pub before: Option<u64>,
    pub after: Option<u64>,
    pub max_drop_pct: Option<f64>,
    pub drop_guard_refused: bool,
    /// The error a failed run ended with (its name: `RecordDropTooLarge`, …).
    pub error: Option<String>,
    pub started_by: Origin,
}

fn finished_stage_seconds(run: &Run, stage: Stage) -> Option<f64> {
    let view = run.stages.iter().find(|s| s.stage == stage)?;
    Some(seconds_between(view.started?, view.finished?))
}

impl TrendRow {
    pub fn from_run(run: &Run) -> TrendRow {
        let report = run.report.as_ref();
        TrendRow {
            name: run.name.clone(),
            status: run.status.clone(),
            result: run.result(),
            environment: run.environment(),
            start: run.started,
            seconds: run
                .stopped
                .and_then(|stop| Some(seconds_between(run.started?, stop))),
            copy_seconds: finished_stage_seconds(run, Stage::Copy),
            reindex_seconds: finished_stage_seconds(run, Stage::Reindex),
            before: report
                .map(|r| r.total_before)
                .or(run.before.as_ref().map(|c| c.total)),
            after: report
                .map(|r| r.total_after)
                .or(run.after.as_ref().map(|c| c.total)),
            max_drop_pct: run.params.as_ref().and_then(|p| p.max_record_drop_pct),
            drop_guard_refused: run
                .stages
                .iter()
                .any(|s| s.stage == Stage::DropGuard && s.outcome == Some(StageOutcome::Refused)),
            error: run
                .failure
                .as_ref()
                .map(|f| f.error.clone())
                .filter(|e| !e.is_empty()),
            started_by: origin(&run.name, run.input.as_ref()),
        }
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// A run this much slower than the median of the other successful runs is flagged.
pub const SLOW_FACTOR: f64 = 1.5;

/// What stands out about a run against the others: a slowdown, a drop near or past the
/// guard, a refusal.
pub fn notes(row: &TrendRow, all: &[TrendRow]) -> Vec<String> {
    let mut notes = Vec::new();
    match (row.result, row.error.as_deref()) {
        (RunResult::Refused, Some(error)) => notes.push(format!("refused: {error}")),
        (RunResult::Failed, Some(error)) => notes.push(format!("failed: {error}")),
        (RunResult::Failed, None) if row.status == "ABORTED" => notes.push("stopped".into()),
        _ => {}
    }
    if let (Some(before), Some(after)) = (row.before, row.after) {
        let drop = refresh_core::guard::drop_percent(before, after);
        let limit = row
            .max_drop_pct
            .unwrap_or(refresh_core::config::DEFAULT_MAX_RECORD_DROP_PCT);
        if drop > limit {
            notes.push(format!("drop {drop:.1}% > {limit}% limit"));
        } else if drop >= limit / 2.0 && drop > 0.0 {
            notes.push(format!("drop {drop:.1}% (limit {limit}%)"));
        }
    }
    if let Some(seconds) = row.seconds.filter(|_| row.result == RunResult::Succeeded) {
        let others: Vec<f64> = all
            .iter()
            .filter(|o| o.name != row.name && o.result == RunResult::Succeeded)
            .filter_map(|o| o.seconds)
            .collect();
        if others.len() >= 2 {
            if let Some(m) = median(others).filter(|m| *m > 0.0) {
                if seconds >= m * SLOW_FACTOR {
                    notes.push(format!(
                        "slow: {:.1}× the median {}",
                        seconds / m,
                        fmt_duration(m)
                    ));
                }
            }
        }
    }
    notes
}

pub fn trend_table(media: &str, rows: &[TrendRow]) -> String {
    if rows.is_empty() {
        return format!("no {media} refreshes\n");
    }
    let mut out = format!(
        "{:<21} {:<10} {:<11} {:<9} {:>9} {:>9} {:>9} {:>12}   {:<12} {:>9}  NOTES\n",
        "STARTED",
        "STATUS",
        "ENVIRONMENT",
        "BY",
        "TOTAL",
        "COPY",
        "REINDEX",
        "BEFORE",
        "AFTER",
        "CHANGE",
    );
    for row in rows {
        let opt_duration = |s: Option<f64>| s.map(fmt_duration).unwrap_or_else(|| "-".into());
        let change = match (row.before, row.after) {
            (Some(b), Some(a)) => change_pct(b, a)
                .map(|p| format!("{p:+.2}%"))
                .unwrap_or_else(|| "new".into()),
            _ => "-".into(),
        };
        let line = format!(
            "{:<21} {:<10} {:<11} {:<9} {:>9} {:>9} {:>9} {:>12} → {:<12} {:>9}  {}",
            row.start.map(fmt_time).unwrap_or_else(|| "?".into()),
            row.status,
            row.environment.as_deref().unwrap_or("?"),
            row.started_by.label(),
            opt_duration(row.seconds),
            opt_duration(row.copy_seconds),
            opt_duration(row.reindex_seconds),
            row.before.map(fmt_count).unwrap_or_else(|| "-".into()),
            row.after.map(fmt_count).unwrap_or_else(|| "-".into()),
            change,
            notes(row, rows).join("; ")
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, minute, 0)
            .single()
            .expect("valid time")
    }

    fn row(name: &str, seconds: f64, before: u64, after: u64) -> TrendRow {
        TrendRow {
            name: name.into(),
            status: "SUCCEEDED".into(),
            result: RunResult::Succeeded,
            environment: Some("staging".into()),
            start: Some(at(0)),
            seconds: Some(seconds),
            copy_seconds: None,
            reindex_seconds: None,
            before: Some(before),
            after: Some(after),
            max_drop_pct: Some(10.0),
            drop_guard_refused: false,
            error: None,
            started_by: Origin::Cli,
        }
    }

    #[test]
    fn a_slow_run_and_a_drop_stand_out() {
        let rows = vec![
            row("a", 100.0, 1000, 1000),
            row("b", 110.0, 1000, 1010),
            row("c", 200.0, 1000, 940),
            row("d", 105.0, 1000, 880),
        ];
        assert!(notes(&rows[0], &rows).is_empty());
        let slow = notes(&rows[2], &rows);
        assert_eq!(slow.len(), 2, "{slow:?}");
        assert!(slow[0].starts_with("drop 6.0%"), "{slow:?}");
        assert!(slow[1].starts_with("slow: 1.9×"), "{slow:?}");
        assert_eq!(notes(&rows[3], &rows), ["drop 12.0% > 10% limit"]);
    }

    #[test]
    fn two_runs_are_not_enough_to_call_one_slow() {
        let rows = vec![row("a", 100.0, 1, 1), row("b", 1000.0, 1, 1)];
        assert!(notes(&rows[1], &rows).is_empty());
    }

    #[test]
    fn list_rows_read_media_environment_and_starter_from_the_description() {
        let info = ExecutionInfo {
            arn: "arn:aws:states:r:0:execution:st-data-refresh:cli-audio-staging-x".into(),
            state_machine_arn: "arn:aws:states:r:0:stateMachine:st-data-refresh".into(),
            name: "cli-audio-staging-x".into(),
            status: "RUNNING".into(),
            start: Some(at(0)),
            input: Some(r#"{"media_type":"audio","environment":"staging"}"#.into()),
            ..ExecutionInfo::default()
        };
        let row = ListRow::from_info(&info);
        assert_eq!(row.media.as_deref(), Some("audio"));
        assert_eq!(row.started_by, Origin::Cli);
        let table = list_table(&[row], at(3));
        assert!(table.contains("3m 00s+"), "{table}");
    }
}
