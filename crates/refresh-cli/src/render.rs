//! Text for people and JSON for scripts, from [`Run`] and [`RunEvent`]: pure functions, so
//! the snapshot tests see exactly what a terminal or a log would.

use crate::interpret::one_line;
use crate::model::{
    Counts, Guards, RangePhase, RangeView, Report, Run, RunEvent, RunResult, SearchGuardView,
    StageOutcome, StageState, Verdict, ALIASES_NOT_PROMOTED,
};
use crate::stages::{Machine, Stage};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt::Write as _;

/// `1234567` → `1,234,567`.
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn fmt_signed(n: i64) -> String {
    let magnitude = fmt_count(n.unsigned_abs());
    match n.signum() {
        -1 => format!("-{magnitude}"),
        1 => format!("+{magnitude}"),
        _ => magnitude,
    }
}

/// `0.4s`, `12s`, `4m 05s`, `2h 03m`.
pub fn fmt_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "?".into();
    }
    if seconds < 10.0 {
        return format!("{seconds:.1}s");
    }
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

pub fn fmt_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

fn clock(time: DateTime<Utc>) -> String {
    time.format("%H:%M:%S").to_string()
}

fn fmt_rate(per_second: f64) -> String {
    if !per_second.is_finite() || per_second < 0.0 {
        "? docs/s".into()
    } else if per_second >= 10_000.0 {
        format!("{:.1}k docs/s", per_second / 1000.0)
    } else {
        format!("{} docs/s", fmt_count(per_second.round() as u64))
    }
}

/// Whole seconds: `58s`, `4m 05s`, `2h 03m`.
pub fn fmt_eta(seconds: u64) -> String {
    if seconds < 60 {
        format!("{seconds}s")
    } else {
        fmt_duration(seconds as f64)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The change of a count in percent of the old one (`None` from zero).
pub fn change_pct(before: u64, after: u64) -> Option<f64> {
    (before > 0).then(|| (after as f64 - before as f64) * 100.0 / before as f64)
}

fn outcome_word(outcome: StageOutcome) -> &'static str {
    match outcome {
        StageOutcome::Succeeded => "succeeded",
        StageOutcome::Failed => "failed",
        StageOutcome::Refused => "refused",
        StageOutcome::Aborted => "aborted",
        StageOutcome::TimedOut => "timed out",
    }
}

/// One log line for an event (plain output, and the lines printed above the bars).
pub fn plain_line(event: &RunEvent) -> Option<String> {
    let text = match event {
        RunEvent::Started { .. } => "started".to_string(),
        RunEvent::Params { params, .. } => {
            let mut line = format!(
                "{} {} into {}",
                params.media_type,
                params.environment,
                params.new_index.as_deref().unwrap_or("?")
            );
            if let Some(workers) = params.worker_count {
                let _ = write!(line, ", {workers} workers");
            }
            if let Some(limit) = params.row_limit {
                let _ = write!(line, ", row limit {}", fmt_count(limit));
            }
            if params.skip_copy {
                line.push_str(", reusing the temp table");
            }
            if params.filtered_index.as_deref() == Some("dual_write") {
                line.push_str(", filtered index in the same pass");
            }
            line
        }
        RunEvent::Waiting { reason, .. } => format!("waiting: {reason}"),
        RunEvent::StageStarted { label, .. } => format!("{label} …"),
        RunEvent::StageFinished {
            label,
            outcome,
            seconds,
            ..
        } => format!(
            "{label} {} in {}",
            outcome_word(*outcome),
            fmt_duration(*seconds)
        ),
        RunEvent::StepError {
            state,
            range,
            error,
            cause,
            ..
        } => {
            let place = match range {
                Some(r) => format!("{state} (range {r})"),
                None => state.clone(),
            };
            format!("error in {place}: {error}: {}", one_line(cause, 200))
        }
        RunEvent::CopyProgress {
            rows_copied, done, ..
        } => format!(
            "copied {} rows{}",
            fmt_count(*rows_copied),
            if *done { " (done)" } else { "" }
        ),
        RunEvent::TagsFiltered { rows_changed, .. } => {
            format!("tag filter changed {} rows", fmt_count(*rows_changed))
        }
        RunEvent::Plan { rows, ranges, .. } => format!(
            "{} rows in {} range{}",
            rows.map(fmt_count).unwrap_or_else(|| "?".into()),
            ranges.len(),
            if ranges.len() == 1 { "" } else { "s" }
        ),
        RunEvent::RangeExecution {
            range,
            execution_arn,
            ..
        } => format!(
            "range {range}: runs in execution {}",
            execution_name(execution_arn)
        ),
        RunEvent::RangeAttempt { range, attempt, .. } => {
            format!("range {range} attempt {attempt}: launching a worker")
        }
        RunEvent::RangeInstance {
            range,
            attempt,
            instance_id,
            ..
        } => format!("range {range} attempt {attempt}: worker {instance_id}"),
        RunEvent::RangeProgress {
            range,
            attempt,
            rows_processed,
            rows_total,
            docs_per_second,
            eta_seconds,
            failed,
            ..
        } => {
            let mut line = format!(
                "range {range} attempt {attempt}: {}/{} rows ({:.1}%), {}",
                fmt_count(*rows_processed),
                fmt_count(*rows_total),
                percent(*rows_processed, *rows_total),
                fmt_rate(*docs_per_second),
            );
            match eta_seconds {
                Some(eta) if rows_processed < rows_total => {
                    let _ = write!(line, ", ETA {}", fmt_eta(*eta));
                }
                _ => {}
            }
            if *failed > 0 {
                let _ = write!(line, ", {} failed", fmt_count(*failed));
            }
            line
        }
        RunEvent::RangeAttemptFailed {
            range,
            attempt,
            error,
            cause,
            ..
        } => format!(
            "range {range} attempt {attempt} failed: {error}: {}",
            one_line(cause, 200)
        ),
        RunEvent::RangeDone {
            range,
            attempt,
            indexed,
            ..
        } => format!(
            "range {range} done on attempt {attempt}: {} documents indexed",
            fmt_count(*indexed)
        ),
        RunEvent::RangeFailed {
            range,
            attempt,
            error,
            cause,
            ..
        } => match attempt {
            Some(attempt) => format!(
                "range {range} failed after {attempt} attempt{}: {error}: {}",
                if *attempt == 1 { "" } else { "s" },
                one_line(cause, 200)
            ),
            None => format!("range {range} failed: {error}: {}", one_line(cause, 200)),
        },
        RunEvent::FilteredProgress {
            created,
            total,
            completed,
            ..
        } => format!(
            "filtered index: {}/{} documents ({:.1}%){}",
            fmt_count(*created),
            fmt_count(*total),
            percent(*created, *total),
            if *completed { ", complete" } else { "" }
        ),
        RunEvent::FilteredVerified { verification, .. } => filtered_verified(verification),
        RunEvent::Counts { which, counts, .. } => format!(
            "documents {which}: {} in {} sources",
            fmt_count(counts.total),
            counts.source_count()
        ),
        RunEvent::DropGuard {
            verdict,
            drop_pct,
            max_drop_pct,
            message,
            ..
        } => format!(
            "drop guard: {}",
            drop_guard_text(*verdict, *drop_pct, *max_drop_pct, message.as_deref())
        ),
        RunEvent::SearchGuard {
            verdict,
            ran,
            passed,
            failed,
            min_ratio,
            failing,
            message,
            ..
        } => format!(
            "search guard: {}",
            search_guard_text(&SearchGuardView {
                verdict: *verdict,
                ran: *ran,
                passed: *passed,
                failed: *failed,
                min_ratio: *min_ratio,
                failing: failing.clone(),
                message: message.clone(),
            })
        ),
        RunEvent::Preflight {
            passed, message, ..
        } => match (passed, message) {
            (true, _) => "promotion pre-flight: passed".to_string(),
            (false, Some(message)) => {
                format!("promotion pre-flight: FAILED: {}", one_line(message, 300))
            }
            (false, None) => "promotion pre-flight: FAILED".to_string(),
        },
        RunEvent::Report { report, .. } => format!(
            "report: {} → {} documents ({}) in {} sources",
            fmt_count(report.total_before),
            fmt_count(report.total_after),
            fmt_signed(report.delta),
            report.sources.unwrap_or(report.by_source.len())
        ),
        RunEvent::Cleanup { summary, .. } => format!("cleanup: {summary}"),
        RunEvent::Finished {
            status,
            error,
            cause,
            ..
        } => {
            let cause = one_line(cause.as_deref().unwrap_or_default(), 400);
            match error.as_deref() {
                Some(error) if !error.is_empty() && !cause.is_empty() => {
                    format!("{status}: {error}: {cause}")
                }
                Some(error) if !error.is_empty() => format!("{status}: {error}"),
                _ if !cause.is_empty() => format!("{status}: {cause}"),
                _ => status.clone(),
            }
        }
    };
    Some(format!("{} {text}", clock(event.time())))
}

/// The last part of an execution ARN: its name.
pub fn execution_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

fn search_guard_text(guard: &SearchGuardView) -> String {
    if !guard.ran {
        return "nothing to compare with (no live index)".to_string();
    }
    let total = guard.passed + guard.failed;
    let ratio = guard
        .min_ratio
        .map(|r| format!(" (min {:.0}% of the live hits)", r * 100.0))
        .unwrap_or_default();
    match guard.verdict {
        Verdict::Passed => format!("passed, {}/{total} queries{ratio}", guard.passed),
        Verdict::Overridden => format!(
            "OVERRIDDEN, {} of {total} queries below the ratio{ratio}: {}",
            guard.failed,
            guard.failing.join(", ")
        ),
        Verdict::Refused => match &guard.message {
            Some(message) => format!("REFUSED promotion: {}", one_line(message, 300)),
            None => "REFUSED promotion".to_string(),
        },
    }
}

fn drop_guard_text(
    verdict: Verdict,
    drop_pct: Option<f64>,
    max_drop_pct: Option<f64>,
    message: Option<&str>,
) -> String {
    let limit = max_drop_pct
        .map(|m| format!(" (limit {m}%)"))
        .unwrap_or_default();
    match verdict {
        Verdict::Passed => format!("passed, {:.2}% drop{limit}", drop_pct.unwrap_or(0.0)),
        Verdict::Overridden => format!("OVERRIDDEN, {:.2}% drop{limit}", drop_pct.unwrap_or(0.0)),
        Verdict::Refused => match message {
            Some(message) => format!("REFUSED promotion{limit}: {}", one_line(message, 300)),
            None => format!("REFUSED promotion{limit}"),
        },
    }
}

#[derive(Serialize)]
struct Tagged<'a> {
    execution: &'a str,
    #[serde(flatten)]
    event: &'a RunEvent,
}

/// One JSON object for an event, tagged with the execution's name.
pub fn json_line(execution: &str, event: &RunEvent) -> String {
    serde_json::to_string(&Tagged { execution, event }).unwrap_or_else(|e| {
        format!(
            "{{\"event\":\"unprintable\",\"error\":{:?}}}",
            e.to_string()
        )
    })
}

#[derive(Serialize)]
struct Status<'a> {
    event: &'static str,
    execution: &'a str,
    run: &'a Run,
}

/// The closing JSON object of `status --json`: the whole model.
pub fn json_status(run: &Run) -> String {
    serde_json::to_string(&Status {
        event: "status",
        execution: &run.name,
        run,
    })
    .unwrap_or_else(|e| {
        format!(
            "{{\"event\":\"unprintable\",\"error\":{:?}}}",
            e.to_string()
        )
    })
}

/// The prefix of a range's progress bar.
pub fn range_prefix(range: &RangeView) -> String {
    format!("range {}", range.range)
}

/// The text after a range's bar: rate, ETA, instance and attempt (or what it waits for).
pub fn range_bar_message(range: &RangeView) -> String {
    let mut parts = Vec::new();
    match range.phase {
        RangePhase::Indexing => {
            parts.push(fmt_rate(range.docs_per_second));
            match (range.eta_seconds, range.rows_total) {
                (_, Some(total)) if range.rows_processed >= total => {}
                (Some(eta), _) => parts.push(format!("ETA {}", fmt_eta(eta))),
                (None, _) => parts.push("ETA ?".into()),
            }
            if range.failed > 0 {
                parts.push(format!("{} failed", fmt_count(range.failed)));
            }
        }
        phase => parts.push(phase.label().to_string()),
    }
    if let Some(instance) = &range.instance_id {
        parts.push(instance.clone());
    }
    if range.attempt > 0 {
        parts.push(format!("attempt {}", range.attempt));
    }
    if matches!(range.phase, RangePhase::Retrying | RangePhase::Failed) {
        if let Some(error) = &range.last_error {
            parts.push(one_line(error, 80));
        }
    }
    parts.join(" · ")
}

/// A range as one line of plain text (status summary and bar-less output).
pub fn range_line(range: &RangeView) -> String {
    let ids = match (range.start_id, range.end_id) {
        (Some(s), Some(e)) => format!("ids {s}–{e}"),
        _ => "ids ?".into(),
    };
    let rows = match range.rows_total {
        Some(total) => format!(
            "{}/{} rows ({:.1}%)",
            fmt_count(range.rows_processed),
            fmt_count(total),
            percent(range.rows_processed, total)
        ),
        None => "rows ?".into(),
    };
    format!(
        "{:<9} {:<18} {:<9} {:<28} {}",
        range_prefix(range),
        ids,
        range.phase.label(),
        rows,
        range_bar_message_without_phase(range)
    )
    .trim_end()
    .to_string()
}

fn range_bar_message_without_phase(range: &RangeView) -> String {
    let text = range_bar_message(range);
    let phase = range.phase.label();
    text.strip_prefix(phase)
        .map(|rest| rest.trim_start_matches(" · ").to_string())
        .unwrap_or(text)
}

/// The filtered index's progress line.
pub fn filtered_line(run: &Run) -> Option<String> {
    let f = run.filtered.as_ref()?;
    Some(format!(
        "{}/{} documents ({:.1}%){}",
        fmt_count(f.created),
        fmt_count(f.total),
        percent(f.created, f.total),
        if f.completed { ", complete" } else { "" }
    ))
}

/// Who started a run, when and how, in one header block.
fn header(run: &Run, origin: Option<&str>, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    let what = [run.media(), run.environment()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let verdict = match run.result() {
        RunResult::Refused => " (refused: nothing was promoted)",
        _ => "",
    };
    let _ = writeln!(
        out,
        "{} ({} {}) · {}{verdict}",
        run.name,
        run.machine.label(),
        if what.is_empty() { "?" } else { &what },
        run.status
    );
    let mut line = match run.started {
        Some(start) => format!("started {}", fmt_time(start)),
        None => "start unknown".into(),
    };
    if let Some(seconds) = run.seconds(now) {
        let verb = if run.is_finished() {
            "took"
        } else {
            "running for"
        };
        let _ = write!(line, " · {verb} {}", fmt_duration(seconds));
    }
    if let Some(origin) = origin {
        let _ = write!(line, " · started by {origin}");
    }
    let _ = writeln!(out, "{line}");
    if let (Some(p), Machine::FilteredIndex) = (&run.params, run.machine) {
        let index = p.new_filtered_index.as_deref().unwrap_or("?");
        let _ = writeln!(out, "index {index}");
    } else if let Some(p) = &run.params {
        let mut line = format!("index {}", p.new_index.as_deref().unwrap_or("?"));
        if let Some(w) = p.worker_count {
            let _ = write!(line, " · {w} workers");
        }
        match p.row_limit {
            Some(limit) => {
                let _ = write!(line, " · row limit {}", fmt_count(limit));
            }
            None => line.push_str(" · no row limit"),
        }
        if let Some(max) = p.max_record_drop_pct {
            let _ = write!(line, " · max drop {max}%");
        }
        if p.override_record_drop {
            line.push_str(" · drop guard overridden");
        }
        if p.override_search_guard {
            line.push_str(" · search guard overridden");
        }
        if p.skip_copy {
            line.push_str(" · skip copy");
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "arn {}", run.arn);
    out
}

/// `status` without a terminal, and the closing block of `--follow`.
pub fn summary(run: &Run, origin: Option<&str>, now: DateTime<Utc>) -> String {
    let mut out = header(run, origin, now);
    if let Some(waiting) = &run.waiting {
        let _ = writeln!(out, "waiting: {waiting}");
    }
    out.push_str("\nstages\n");
    for view in &run.stages {
        let state = run.stage_state(view);
        // The failure path is shown only when the run took it.
        if view.stage == Stage::FailureCleanup && view.started.is_none() {
            continue;
        }
        let word = match state {
            StageState::Pending => "pending",
            StageState::Running => "running",
            StageState::Skipped => "skipped",
            StageState::Done(outcome) => outcome_word(outcome),
        };
        let duration = run
            .stage_seconds(view, now)
            .map(fmt_duration)
            .unwrap_or_default();
        let mut line = format!("  {:<24} {:<10} {:>8}", view.stage.label(), word, duration);
        let detail = stage_detail(run, view.stage);
        if !detail.is_empty() {
            let _ = write!(line, "  {detail}");
        }
        if view.errors > 0 {
            let _ = write!(
                line,
                "  ({} task error{})",
                view.errors,
                if view.errors == 1 { "" } else { "s" }
            );
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if !run.ranges.is_empty() {
        out.push_str("\nranges\n");
        for range in run.ranges.values() {
            let _ = writeln!(out, "  {}", range_line(range));
        }
    }
    if let Some(line) = filtered_line(run) {
        let _ = writeln!(out, "\nfiltered index  {line}");
    }
    if let Some(failure) = &run.failure {
        let place = failure
            .stage
            .map(|s| format!(" (in {})", s.label()))
            .unwrap_or_default();
        let what = if run.status == "ABORTED" {
            "aborted"
        } else {
            "failure"
        };
        let cause = one_line(&failure.cause, 600);
        let text = match (failure.error.is_empty(), cause.is_empty()) {
            (false, false) => format!("{}: {cause}", failure.error),
            (false, true) => failure.error.clone(),
            (true, _) => cause,
        };
        let _ = writeln!(out, "\n{what}{place}: {text}");
        if failure.error == ALIASES_NOT_PROMOTED {
            out.push_str(&aliases_not_promoted(run));
        }
    } else if !run.is_finished() {
        if let Some(last) = &run.last_error {
            let _ = writeln!(
                out,
                "\nlast task error: {}: {}",
                last.error,
                one_line(&last.cause, 300)
            );
        }
    }
    if let Some(cleanup) = &run.cleanup {
        let _ = writeln!(out, "cleanup: {cleanup}");
    } else if matches!(run.status.as_str(), "ABORTED" | "TIMED_OUT")
        && run.machine == Machine::Refresh
    {
        // Such a run never reaches its own cleanup state: the rule's Lambda does it.
        let _ = writeln!(
            out,
            "cleanup: left to the failed-run cleanup rule (`refresh stop --wait` waits for it)"
        );
    }
    if let Some(text) = report_block(run) {
        out.push('\n');
        out.push_str(&text);
    }
    out
}

/// What to do after `AliasesNotPromoted`: the table serves, the aliases do not yet.
fn aliases_not_promoted(run: &Run) -> String {
    let mut out = String::from(
        "the table is promoted but the aliases are not: the new indices are kept, and the \
         site searches the old ones until the aliases move\n",
    );
    let _ = writeln!(
        out,
        "once Elasticsearch takes the alias move, finish with: refresh finish {}",
        run.name
    );
    if let Some(payload) = &run.finish_payload {
        let _ = writeln!(
            out,
            "(or invoke the function of the stack output PromoteAliasesFunctionName with {payload})"
        );
    }
    out
}

fn stage_detail(run: &Run, stage: Stage) -> String {
    match stage {
        Stage::Copy => match (run.rows_copied, run.tags_filtered) {
            (Some(rows), _) => format!("{} rows copied", fmt_count(rows)),
            (None, Some(changed)) => {
                format!("temp table reused, {} tag rows changed", fmt_count(changed))
            }
            (None, None) => String::new(),
        },
        Stage::CountBefore => run
            .before
            .as_ref()
            .map(|c| format!("{} documents", fmt_count(c.total)))
            .unwrap_or_default(),
        Stage::Reindex => {
            if run.ranges.is_empty() {
                return String::new();
            }
            let done = run
                .ranges
                .values()
                .filter(|r| r.phase == RangePhase::Done)
                .count();
            let mut text = format!("{done}/{} ranges done", run.ranges.len());
            if let Some(rows) = run.rows_planned {
                let _ = write!(text, ", {} rows", fmt_count(rows));
            }
            text
        }
        Stage::FilteredIndex => filtered_line(run).unwrap_or_default(),
        Stage::DropGuard => {
            let mut parts = Vec::new();
            if let Some(g) = &run.drop_guard {
                let limit = g
                    .max_drop_pct
                    .map(|m| format!(" (limit {m}%)"))
                    .unwrap_or_default();
                let pct = g.drop_pct.map(|p| format!(" {p:.2}%")).unwrap_or_default();
                let word = match g.verdict {
                    Verdict::Passed => "passed",
                    Verdict::Overridden => "OVERRIDDEN",
                    Verdict::Refused => "REFUSED",
                };
                parts.push(format!("drop: {word}{pct}{limit}"));
            }
            if let Some(g) = &run.search_guard {
                let short = match (g.ran, g.verdict) {
                    (false, _) => "no live index".to_string(),
                    (true, Verdict::Refused) => "REFUSED".to_string(),
                    (true, verdict) => format!(
                        "{}/{} queries{}",
                        g.passed,
                        g.passed + g.failed,
                        if verdict == Verdict::Overridden {
                            " (OVERRIDDEN)"
                        } else {
                            ""
                        }
                    ),
                };
                parts.push(format!("search: {short}"));
            }
            parts.join(" · ")
        }
        Stage::Preflight => match &run.preflight {
            Some(p) if p.passed => "passed".to_string(),
            Some(_) => "FAILED".to_string(),
            None => String::new(),
        },
        Stage::Report => match (&run.report, &run.after) {
            (Some(r), _) => format!(
                "{} → {} documents",
                fmt_count(r.total_before),
                fmt_count(r.total_after)
            ),
            (None, Some(c)) => format!("{} documents", fmt_count(c.total)),
            (None, None) => String::new(),
        },
        _ => String::new(),
    }
}

/// The record-count report: the `report` output when the run got there, else whatever
/// counts the history holds; then the checks that ran before promotion.
pub fn report_block(run: &Run) -> Option<String> {
    let report = match (&run.report, &run.before, &run.after) {
        (Some(report), _, _) => report.clone(),
        (None, Some(before), Some(after)) => report_from_counts(before, after),
        (None, Some(before), None) => {
            let why = if run.is_finished() {
                "the run did not get there"
            } else {
                "not yet"
            };
            return Some(format!(
                "record counts\n  before  {} documents (no count after: {why})\n",
                fmt_count(before.total)
            ));
        }
        _ => return None,
    };
    let mut out = String::from("record counts (before → after)");
    if report.omitted_sources > 0 {
        let _ = write!(
            out,
            ", the {} largest changes of {} sources",
            report.by_source.len(),
            report
                .sources
                .unwrap_or(report.by_source.len() + report.omitted_sources)
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "  {:<24} {:>12} → {:<12} {:>10} {}",
        "total",
        fmt_count(report.total_before),
        fmt_count(report.total_after),
        fmt_signed(report.delta),
        change_pct(report.total_before, report.total_after)
            .map(|p| format!("({p:+.2}%)"))
            .unwrap_or_default()
    );
    for (source, d) in &report.by_source {
        let _ = writeln!(
            out,
            "  {:<24} {:>12} → {:<12} {:>10}",
            source,
            fmt_count(d.before),
            fmt_count(d.after),
            fmt_signed(d.delta)
        );
    }
    if let (n, Some(d)) = (report.omitted_sources, report.omitted.as_ref()) {
        if n > 0 {
            let _ = writeln!(
                out,
                "  {:<24} {:>12} → {:<12} {:>10}",
                format!("({n} more sources)"),
                fmt_count(d.before),
                fmt_count(d.after),
                fmt_signed(d.delta)
            );
        }
    }
    for line in guard_lines(run, &report) {
        let _ = writeln!(out, "  {line}");
    }
    Some(out)
}

/// The guards' verdicts: from the report's `guards` (what the report step was handed),
/// else from the history (older runs, and runs that stopped before the report).
fn guard_lines(run: &Run, report: &Report) -> Vec<String> {
    let Guards {
        record_drop,
        search,
        preflight,
    } = &report.guards;
    let max_drop_pct = run.params.as_ref().and_then(|p| p.max_record_drop_pct);
    let drop = match (record_drop, &run.drop_guard) {
        (Some(d), _) => drop_guard_text(
            if d.overridden {
                Verdict::Overridden
            } else {
                Verdict::Passed
            },
            Some(d.drop_pct),
            max_drop_pct,
            None,
        ),
        (None, Some(g)) => {
            drop_guard_text(g.verdict, g.drop_pct, g.max_drop_pct, g.message.as_deref())
        }
        (None, None) => {
            // No guard answer (filtered-only runs, old runs): say what the numbers mean
            // against the run's limit, computed the way the guard does.
            let drop = refresh_core::guard::drop_percent(report.total_before, report.total_after);
            match max_drop_pct {
                Some(max) if drop > max => format!("{drop:.2}% drop, over the {max}% limit"),
                Some(max) => format!("{drop:.2}% drop, within the {max}% limit"),
                None => format!("{drop:.2}% drop"),
            }
        }
    };
    let mut lines = vec![format!("drop guard: {drop}")];
    let search = search.as_ref().map(SearchGuardView::from_report);
    if let Some(guard) = search.as_ref().or(run.search_guard.as_ref()) {
        lines.push(format!("search guard: {}", search_guard_text(guard)));
    }
    match (preflight, &run.preflight) {
        (Some(p), _) => {
            let green = p
                .indices
                .values()
                .filter(|health| health.as_str() == "green")
                .count();
            lines.push(format!(
                "pre-flight: passed ({green}/{} new indices green, {} data node{} below the high watermark {})",
                p.indices.len(),
                p.disks.len(),
                if p.disks.len() == 1 { "" } else { "s" },
                p.high_watermark
            ));
        }
        (None, Some(p)) if p.passed => lines.push("pre-flight: passed".to_string()),
        (None, Some(p)) => lines.push(format!(
            "pre-flight: FAILED: {}",
            one_line(p.message.as_deref().unwrap_or_default(), 300)
        )),
        (None, None) => {}
    }
    lines
}

fn report_from_counts(before: &Counts, after: &Counts) -> Report {
    // Recorded runs from before the report counted for itself carry both counts.
    let core = |c: &Counts| refresh_core::es::DocumentCounts {
        total: c.total,
        by_source: c.by_source.clone(),
    };
    let by_source = refresh_core::report::compare(&core(before), &core(after));
    Report {
        media_type: None,
        environment: None,
        new_index: None,
        sources: None,
        omitted_sources: 0,
        omitted: None,
        guards: Guards::default(),
        total_before: before.total,
        total_after: after.total,
        delta: i64::try_from(i128::from(after.total) - i128::from(before.total))
            .unwrap_or(i64::MAX),
        by_source: by_source
            .into_iter()
            .map(|(k, d)| {
                (
                    k,
                    crate::model::SourceDelta {
                        before: d.before,
                        after: d.after,
                        delta: d.delta,
                    },
                )
            })
            .collect(),
    }
}

/// The dual-write gate's answer in a line.
fn filtered_verified(verification: &refresh_core::es::FilteredVerification) -> String {
    use refresh_core::es::FilteredVerification as V;
    match verification {
        V::Verified {
            main_count,
            sensitive_in_main,
            filtered_count,
        } => format!(
            "filtered index verified: {} documents = {} less {} sensitive",
            fmt_count(*filtered_count),
            fmt_count(*main_count),
            fmt_count(*sensitive_in_main)
        ),
        V::Repaired {
            main_count,
            sensitive_in_main,
            filtered_count,
            deleted,
        } => format!(
            "filtered index repaired: {} stray sensitive document(s) deleted; {} documents = {} less {} sensitive",
            fmt_count(*deleted),
            fmt_count(*filtered_count),
            fmt_count(*main_count),
            fmt_count(*sensitive_in_main)
        ),
        V::Rebuild {
            expected,
            filtered_count,
            reason,
            ..
        } => format!(
            "filtered index failed verification ({} documents, {} expected): {}; rebuilding it by _reindex",
            fmt_count(*filtered_count),
            fmt_count(*expected),
            one_line(reason, 200)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_read_easily() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_signed(-1500), "-1,500");
        assert_eq!(fmt_signed(20), "+20");
        assert_eq!(fmt_signed(0), "0");
        assert_eq!(fmt_duration(0.42), "0.4s");
        assert_eq!(fmt_duration(12.4), "12s");
        assert_eq!(fmt_duration(245.0), "4m 05s");
        assert_eq!(fmt_duration(7380.0), "2h 03m");
        assert_eq!(fmt_duration(-1.0), "?");
    }

    /// A large catalog's report keeps the largest changes and sums the rest; the guards it
    /// carries are shown from it.
    #[test]
    fn a_bounded_report_says_what_it_left_out() {
        let info = crate::history::ExecutionInfo {
            arn: "arn:aws:states:r:0:execution:st-data-refresh:run".into(),
            state_machine_arn: "arn:aws:states:r:0:stateMachine:st-data-refresh".into(),
            name: "run".into(),
            status: "SUCCEEDED".into(),
            ..Default::default()
        };
        let mut run = Run::new(&info);
        let report: Report = serde_json::from_value(serde_json::json!({
            "media_type": "image", "environment": "production", "new_index": "image-x",
            "total_before": 1000, "total_after": 900, "delta": -100, "sources": 5,
            "by_source": {"flickr": {"before": 500, "after": 420, "delta": -80}},
            "omitted_sources": 4, "omitted": {"before": 500, "after": 480, "delta": -20},
            "guards": {
                "record_drop": {"before": 1000, "after": 900, "drop_pct": 10.0, "overridden": true},
                "search": {"ran": true, "live_index": "image-old", "new_index": "image-x",
                           "min_ratio": 0.9, "overridden": false, "queries": [
                    {"name": "q1", "live_hits": 10, "new_hits": 10, "ratio": 1.0, "passed": true}]},
                "preflight": {"indices": {"image-x": "green", "image-x-filtered": "yellow"},
                              "aliases": {}, "disks": [], "high_watermark": "90%"}
            }
        }))
        .expect("a report of the current shape");
        run.apply(&RunEvent::Report {
            time: Utc::now(),
            report,
        });
        let text = report_block(&run).expect("a report");
        assert!(
            text.starts_with("record counts (before → after), the 1 largest changes of 5 sources"),
            "{text}"
        );
        assert!(text.contains("(4 more sources)"), "{text}");
        assert!(
            text.contains("drop guard: OVERRIDDEN, 10.00% drop"),
            "{text}"
        );
        assert!(text.contains("search guard: passed, 1/1 queries"), "{text}");
        assert!(
            text.contains("pre-flight: passed (1/2 new indices green"),
            "{text}"
        );
    }

    #[test]
    fn change_is_relative_to_before() {
        assert_eq!(change_pct(200, 150), Some(-25.0));
        assert_eq!(change_pct(0, 10), None);
    }
}
