//! The commands: each reads the arguments, calls AWS through `aws.rs`, and hands the data to
//! the pure parts (interpreter, renderers). Returns the exit code, or a [`CliError`].

use crate::aws::{Aws, Machines};
use crate::cleanup_check::{cleanup_seen, CleanupSeen};
use crate::cli::{
    Cli, Command, FinishArgs, HistoryArgs, ListArgs, StartArgs, StatusArgs, StopArgs,
};
use crate::error::{exit_code_for, worst, CliError, EXIT_FAILED, EXIT_OK};
use crate::finish::{payload_from_cause, previous_indices, promotions};
use crate::follow::{follow, out, sink, Mode, Tracker};
use crate::history::recorded_ranges;
use crate::history::ExecutionInfo;
use crate::interpret::{replay, replay_with_ranges};
use crate::model::ALIASES_NOT_PROMOTED;
use crate::origin::{cli_execution_name, origin};
use crate::render;
use crate::source::Recorded;
use crate::start::{build_input, validate, warnings};
use crate::tables::{list_table, trend_table, ListRow, TrendRow};
use chrono::Utc;
use std::io::IsTerminal;
use std::time::Duration;

pub async fn run(cli: Cli) -> Result<u8, CliError> {
    let terminal = std::io::stdout().is_terminal()
        && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true);
    let mode = Mode::choose(cli.json, terminal);
    let interval = Duration::from_secs(cli.interval);
    match cli.command {
        Command::Start(args) => start(&cli.stack, mode, interval, args).await,
        Command::Status(args) => status(&cli.stack, mode, interval, args).await,
        Command::List(args) => list(&cli.stack, cli.json, args).await,
        Command::Stop(args) => stop(&cli.stack, cli.json, interval, args).await,
        Command::History(args) => history(&cli.stack, cli.json, args).await,
        Command::Finish(args) => finish(&cli.stack, cli.json, args).await,
    }
}

fn say(json: bool, fields: serde_json::Value, text: &str) {
    if json {
        out(&fields.to_string());
    } else {
        out(text);
    }
}

async fn start(
    stack: &str,
    mode: Mode,
    interval: Duration,
    args: StartArgs,
) -> Result<u8, CliError> {
    let request = args.request();
    let now = Utc::now();
    // Every input is checked before the first AWS call: one bad media type starts nothing.
    let mut planned = Vec::new();
    for media in args.media_types() {
        let input = build_input(media, &request);
        let params = validate(&input, now)?;
        planned.push((media, input, params));
    }
    let json = mode == Mode::Json;
    for warning in warnings(&request) {
        eprintln!("warning: {warning}");
    }
    if args.dry_run {
        for (media, input, params) in &planned {
            say(
                json,
                serde_json::json!({"event": "dry_run", "media_type": media, "input": input,
                                   "new_index": params.new_index}),
                &format!(
                    "{media}: input {input} is valid (index {})",
                    params.new_index
                ),
            );
        }
        return Ok(EXIT_OK);
    }
    let aws = Aws::connect().await;
    let machines = aws.machines(stack).await?;
    let mut trackers = Vec::new();
    for (media, input, _) in &planned {
        let name = cli_execution_name(media, &request.environment, Utc::now());
        let arn = aws.start(&machines.refresh, &name, input).await?;
        say(
            json,
            serde_json::json!({"event": "execution_started", "media_type": media,
                               "execution": name, "execution_arn": arn}),
            &format!("[{media}] started {arn}"),
        );
        trackers.push(Tracker::new(
            ExecutionInfo {
                arn,
                state_machine_arn: machines.refresh.clone(),
                name,
                status: "RUNNING".into(),
                start: Some(Utc::now()),
                input: Some(input.to_string()),
                ..ExecutionInfo::default()
            },
            media.to_string(),
        ));
    }
    if !args.follow {
        return Ok(EXIT_OK);
    }
    let several = trackers.len() > 1;
    let mut sink = sink(mode, several);
    let deadline = args
        .timeout
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let timed_out = follow(&aws, &mut trackers, sink.as_mut(), interval, deadline).await?;
    if timed_out {
        // A run still going at the deadline is stopped (and counts as failed), so a script's
        // timeout does not leave a refresh running unseen.
        for tracker in trackers.iter().filter(|t| !t.done) {
            sink.note(&format!(
                "[{}] still running after {}s; stopping {}",
                tracker.label,
                args.timeout.unwrap_or_default(),
                tracker.info.arn
            ));
            aws.stop(&tracker.info.arn, "refresh start --follow --timeout passed")
                .await?;
        }
    }
    Ok(worst(trackers.iter().map(|t| {
        if t.done {
            exit_code_for(t.run.result())
        } else {
            EXIT_FAILED
        }
    })))
}

/// The execution to show when none is named: the newest running one of either machine,
/// else the newest refresh.
async fn default_execution(aws: &Aws, machines: &Machines) -> Result<ExecutionInfo, CliError> {
    let mut newest: Option<ExecutionInfo> = None;
    for machine in machines.both() {
        for (arn, _) in aws.list_executions(machine, 10).await? {
            let info = aws.describe(&arn).await?;
            if info.is_running() && newest.as_ref().is_none_or(|n| n.start < info.start) {
                newest = Some(info);
            }
        }
    }
    if let Some(info) = newest {
        return Ok(info);
    }
    let latest = aws.list_executions(&machines.refresh, 1).await?;
    match latest.first() {
        Some((arn, _)) => aws.describe(arn).await,
        None => Err(CliError::Usage(format!(
            "EXECUTION: none given and {} has no executions",
            machines.refresh
        ))),
    }
}

async fn status(
    stack: &str,
    mode: Mode,
    interval: Duration,
    args: StatusArgs,
) -> Result<u8, CliError> {
    if let Some(path) = &args.replay {
        return replay_file(path, mode, interval, args.follow).await;
    }
    let aws = Aws::connect().await;
    let machines = aws.machines(stack).await?;
    let info = match &args.execution {
        Some(execution) => aws.resolve_execution(&machines, execution).await?,
        None => default_execution(&aws, &machines).await?,
    };
    if args.follow {
        let label = info.name.clone();
        let mut trackers = vec![Tracker::new(info, label)];
        let mut sink = sink(mode, false);
        follow(&aws, &mut trackers, sink.as_mut(), interval, None).await?;
        return Ok(exit_code_for(trackers[0].run.result()));
    }
    // The run's history and those of its range executions, as one.
    let mut tracker = Tracker::new(info.clone(), info.name.clone());
    let (mut run_events, _) = tracker.read(&aws).await?;
    // The description may be newer than the history just read: describe again after it.
    let info = aws.describe(&info.arn).await?;
    tracker.reconcile(info.clone(), &mut run_events);
    let run = tracker.run;
    if mode == Mode::Json {
        for event in &run_events {
            out(&render::json_line(&info.name, event));
        }
        out(&render::json_status(&run));
    } else {
        let origin = origin(&info.name, run.input.as_ref()).label();
        out(render::summary(&run, Some(origin), Utc::now()).trim_end());
    }
    Ok(exit_code_for(run.result()))
}

/// `status --replay FILE`: a recorded run (`{"describe", "history"}`) shown as `status`
/// would, or unfolding as `--follow` would, without AWS.
async fn replay_file(
    path: &str,
    mode: Mode,
    interval: Duration,
    live: bool,
) -> Result<u8, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("--replay {path}: {e}")))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("--replay {path}: not JSON: {e}")))?;
    let (info, events) = crate::history::recorded_run(&value)
        .map_err(|e| CliError::Usage(format!("--replay {path}: {e}")))?;
    let ranges =
        recorded_ranges(&value).map_err(|e| CliError::Usage(format!("--replay {path}: {e}")))?;
    if live {
        let source = Recorded::new(info, events, 20).with_ranges(ranges);
        let info = source.info_now();
        let label = info.name.clone();
        let mut trackers = vec![Tracker::new(info, label)];
        let mut sink = sink(mode, false);
        follow(&source, &mut trackers, sink.as_mut(), interval, None).await?;
        return Ok(exit_code_for(trackers[0].run.result()));
    }
    let ranges: Vec<_> = ranges
        .into_iter()
        .map(|(range, events)| (range.arn, events))
        .collect();
    let (run, run_events) = replay_with_ranges(&info, &events, &ranges);
    let now = info
        .stop
        .or(events.last().map(|e| e.timestamp))
        .unwrap_or_else(Utc::now);
    if mode == Mode::Json {
        for event in &run_events {
            out(&render::json_line(&info.name, event));
        }
        out(&render::json_status(&run));
    } else {
        let origin = origin(&info.name, run.input.as_ref()).label();
        out(render::summary(&run, Some(origin), now).trim_end());
    }
    Ok(exit_code_for(run.result()))
}

async fn list(stack: &str, json: bool, args: ListArgs) -> Result<u8, CliError> {
    let aws = Aws::connect().await;
    let machines = aws.machines(stack).await?;
    let limit = usize::from(args.limit);
    // A media filter needs each execution's input: read more candidates than shown.
    let fetch = if args.media.is_some() {
        limit * 4
    } else {
        limit
    }
    .min(1000);
    let mut candidates = Vec::new();
    for machine in machines.both() {
        candidates.extend(aws.list_executions(machine, fetch).await?);
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.1));
    let mut rows = Vec::new();
    for (arn, _) in candidates {
        if rows.len() >= limit {
            break;
        }
        let row = ListRow::from_info(&aws.describe(&arn).await?);
        if args
            .media
            .is_some_and(|m| row.media.as_deref() != Some(m.as_str()))
        {
            continue;
        }
        rows.push(row);
    }
    if json {
        for row in &rows {
            out(&serde_json::to_string(row).unwrap_or_default());
        }
    } else {
        out(list_table(&rows, Utc::now()).trim_end());
    }
    Ok(EXIT_OK)
}

async fn history(stack: &str, json: bool, args: HistoryArgs) -> Result<u8, CliError> {
    let aws = Aws::connect().await;
    let machines = aws.machines(stack).await?;
    let limit = usize::from(args.limit);
    let media = args.media.as_str();
    let mut rows = Vec::new();
    for (arn, _) in aws
        .list_executions(&machines.refresh, (limit * 5).min(1000))
        .await?
    {
        if rows.len() >= limit {
            break;
        }
        let info = aws.describe(&arn).await?;
        let input = info.input_json();
        let field = |key: &str| {
            input
                .as_ref()
                .and_then(|i| i.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        if field("media_type").as_deref() != Some(media) {
            continue;
        }
        if args
            .environment
            .as_deref()
            .is_some_and(|e| field("environment").as_deref() != Some(e))
        {
            continue;
        }
        let events = aws.events_after(&arn, 0).await?;
        let (run, _) = replay(&info, &events);
        rows.push(TrendRow::from_run(&run));
    }
    if json {
        for row in &rows {
            out(&serde_json::to_string(row).unwrap_or_default());
        }
    } else {
        out(trend_table(media, &rows).trim_end());
    }
    Ok(EXIT_OK)
}

/// `finish`: moves the aliases of a run that ended `AliasesNotPromoted`, with the payload
/// its cause ends with, through the stack's promote_aliases function (which refuses unless
/// the run's table promotion is on record, and is safe to repeat).
async fn finish(stack: &str, json: bool, args: FinishArgs) -> Result<u8, CliError> {
    let aws = Aws::connect().await;
    let machines = aws.machines(stack).await?;
    let info = aws.resolve_execution(&machines, &args.execution).await?;
    if info.is_running() || info.error.as_deref() != Some(ALIASES_NOT_PROMOTED) {
        let ended = match (&info.error, info.is_running()) {
            (_, true) => "is still RUNNING".to_string(),
            (Some(error), false) => format!("ended {} with {error}", info.status),
            (None, false) => format!("ended {}", info.status),
        };
        return Err(CliError::Refused(format!(
            "{} {ended}, not {ALIASES_NOT_PROMOTED}: nothing to finish",
            info.name
        )));
    }
    let payload = payload_from_cause(info.cause.as_deref().unwrap_or_default())
        .map_err(|e| CliError::Refused(format!("{}: {e}", info.name)))?
        .to_value();
    let function = aws.promote_aliases_function(stack).await?;
    say(
        json,
        serde_json::json!({"event": "finishing", "execution": info.name,
                           "function": function, "payload": payload}),
        &format!("{}: invoking {function} with {payload}", info.name),
    );
    let answer = aws.invoke(&function, &payload).await?;
    let previous = previous_indices(&answer);
    let moved = promotions(&answer);
    say(
        json,
        serde_json::json!({"event": "aliases_promoted", "execution": info.name,
                           "result": answer}),
        &format!(
            "aliases promoted: {}\nprevious indices (the run would have deleted them next): {}",
            if moved.is_empty() {
                "already in place".to_string()
            } else {
                moved.join(", ")
            },
            if previous.is_empty() {
                "none".to_string()
            } else {
                previous.join(", ")
            }
        ),
    );
    Ok(EXIT_OK)
}

async fn stop(stack: &str, json: bool, interval: Duration, args: StopArgs) -> Result<u8, CliError> {
    let aws = Aws::connect().await;
    let machines = aws.machines(stack).await?;
    let info = aws.resolve_execution(&machines, &args.execution).await?;
    let arn = info.arn.clone();
    // The cleanup's log is read from a little before the end (ours, or the recorded one
    // of an execution already over, so `stop --wait` on it checks its cleanup): the
    // service's clock and ours may differ by a few seconds.
    let ended = if info.is_running() {
        Utc::now()
    } else {
        info.stop.unwrap_or_else(Utc::now)
    };
    let since = ended - chrono::Duration::seconds(30);
    if info.is_running() {
        aws.stop(&arn, "stopped with `refresh stop`").await?;
        say(
            json,
            serde_json::json!({"event": "stop_requested", "execution_arn": arn}),
            &format!("stopping {arn}"),
        );
    } else {
        say(
            json,
            serde_json::json!({"event": "not_running", "execution_arn": arn, "status": info.status}),
            &format!("{} is already {}: nothing to stop", info.name, info.status),
        );
    }
    if !args.wait {
        return Ok(EXIT_OK);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let cleanup_function = aws.cleanup_function(stack, &machines).await;
    let mut ended: Option<String> = None;
    let mut workers_gone = false;
    let mut cleanup: Option<CleanupSeen> = None;
    let mut failure_said: Option<String> = None;
    loop {
        if ended.is_none() {
            let now = aws.describe(&arn).await?;
            if !now.is_running() {
                say(
                    json,
                    serde_json::json!({"event": "execution_ended", "status": now.status}),
                    &format!("execution {}", now.status),
                );
                ended = Some(now.status);
            }
        }
        if let Some(status) = ended.as_deref() {
            if !workers_gone && aws.instances_not_gone(&arn).await?.is_empty() {
                say(
                    json,
                    serde_json::json!({"event": "workers_gone"}),
                    "no worker instance tagged with this execution is left (all terminated)",
                );
                workers_gone = true;
            }
            // A run that succeeded promoted what it built: the rule has nothing to do.
            let needs_rule = status != "SUCCEEDED";
            let known = |c: &Option<CleanupSeen>| {
                matches!(c, Some(CleanupSeen::Done(_) | CleanupSeen::Skipped(_)))
            };
            if needs_rule && !known(&cleanup) {
                if let Ok(function) = &cleanup_function {
                    if let Some(lines) = aws.function_log_since(function, since).await? {
                        match cleanup_seen(&lines, &arn) {
                            Some(CleanupSeen::Failed(error))
                                if failure_said.as_deref() != Some(error.as_str()) =>
                            {
                                say(
                                    json,
                                    serde_json::json!({"event": "cleanup_error", "error": error}),
                                    &format!(
                                        "a cleanup invocation failed since the stop (the rule retries it): {error}"
                                    ),
                                );
                                failure_said = Some(error);
                            }
                            Some(CleanupSeen::Failed(_)) | None => {}
                            Some(seen) => {
                                let text = match &seen {
                                    CleanupSeen::Skipped(why) => {
                                        format!("cleanup had nothing to do: {why}")
                                    }
                                    CleanupSeen::Done(what) | CleanupSeen::Failed(what) => {
                                        format!("cleanup done: {what}")
                                    }
                                };
                                say(
                                    json,
                                    serde_json::json!({"event": "cleanup", "result": text}),
                                    &text,
                                );
                                cleanup = Some(seen);
                            }
                        }
                    }
                }
            }
            if workers_gone && (!needs_rule || known(&cleanup)) {
                let text = if needs_rule {
                    "clean: no worker instance, temp table or unpromoted index is left"
                } else {
                    "clean: the run succeeded (its table and indices were promoted) and no worker is left"
                };
                say(
                    json,
                    serde_json::json!({"event": "clean", "execution_arn": arn}),
                    text,
                );
                return Ok(EXIT_OK);
            }
            if workers_gone {
                if let Err(why) = &cleanup_function {
                    say(
                        json,
                        serde_json::json!({"event": "cleanup_not_checked", "reason": why}),
                        &format!(
                            "workers gone; NOT verified: temp table and unpromoted indices (cannot read the cleanup function's log: {why})"
                        ),
                    );
                    return Ok(EXIT_OK);
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let mut missing = Vec::new();
            if ended.is_none() {
                missing.push("the execution is still running");
            }
            if !workers_gone {
                missing.push("worker instances are not all terminated");
            }
            if ended.as_deref() != Some("SUCCEEDED") && cleanup.is_none() {
                missing.push("the cleanup function has logged no result for this execution");
            }
            return Err(CliError::Failed(format!(
                "stop --wait: gave up after {}s: {}",
                args.timeout,
                missing.join("; ")
            )));
        }
        tokio::time::sleep(interval).await;
    }
}
