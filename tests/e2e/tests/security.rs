//! No secret in any log or state: after one real refresh, none of the values of the
//! environments' secrets (database passwords, the FDW password, the worker token) appears in
//! a Lambda function's logs, a worker's console, or any input or output of the execution.

use anyhow::{Context, Result};
use e2e::{
    all_function_logs, exclusive, execution_history_with_data, instance_console, load_sample_data,
    local_dir, Stack,
};
use refresh_core::media::MediaType;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Shorter values would match ordinary text by chance (and no real secret is this short).
const MIN_SECRET_LEN: usize = 6;

/// The password of a `postgres://user:password@host/db` URL, raw and percent-decoded.
fn url_password(url: &str) -> Vec<String> {
    let Some(rest) = url.split_once("://").map(|(_, rest)| rest) else {
        return Vec::new();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let Some((userinfo, _host)) = authority.rsplit_once('@') else {
        return Vec::new();
    };
    let Some((_user, password)) = userinfo.split_once(':') else {
        return Vec::new();
    };
    vec![password.to_string(), percent_decode(password)]
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if let (b'%', Some(hex)) = (bytes[i], hex) {
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// (what, value) for every secret value of an environment's secret that is set.
fn secret_values(environment: &str, secret: &Value) -> Vec<(String, String)> {
    let mut values = Vec::new();
    for key in ["api_db_url", "catalog_db_url"] {
        for password in url_password(secret[key].as_str().unwrap_or_default()) {
            values.push((format!("{environment} {key} password"), password));
        }
    }
    for (what, value) in [
        ("catalog_fdw.password", &secret["catalog_fdw"]["password"]),
        ("worker_token", &secret["worker_token"]),
    ] {
        values.push((
            format!("{environment} {what}"),
            value.as_str().unwrap_or_default().to_string(),
        ));
    }
    values.retain(|(_, value)| !value.is_empty());
    values.dedup();
    values
}

async fn read_secret(stack: &Stack, environment: &str) -> Result<Value> {
    let secret = stack
        .secrets
        .get_secret_value()
        .secret_id(format!("{}/{environment}", stack.stack_name))
        .send()
        .await
        .context("GetSecretValue")?;
    serde_json::from_str(secret.secret_string().unwrap_or_default())
        .context("the secret is not JSON")
}

/// Where a secret value was found: the source and the first matching line, with the value
/// masked (the failure message must not print it either).
fn leaks(sources: &[(String, String)], secrets: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (what, secret) in secrets {
        for (source, text) in sources {
            if let Some(line) = text.lines().find(|line| line.contains(secret.as_str())) {
                let masked = line.replace(secret.as_str(), "<SECRET>");
                let shown: String = masked.chars().take(300).collect();
                found.push(format!("{what} in {source}: {shown}"));
            }
        }
    }
    found
}

/// Waits until neither state machine has a running execution.
async fn wait_until_idle(stack: &Stack, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut running = Vec::new();
        for machine in [&stack.refresh_arn, &stack.filtered_arn] {
            let listed = stack
                .sfn
                .list_executions()
                .state_machine_arn(machine)
                .status_filter(aws_sdk_sfn::types::ExecutionStatus::Running)
                .send()
                .await
                .context("ListExecutions")?;
            running.extend(listed.executions().iter().map(|e| e.name().to_string()));
        }
        if running.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "executions still running after {timeout:?}: {running:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn no_secret_appears_in_logs_consoles_or_execution_state() -> Result<()> {
    let _guard = exclusive().await;
    let started = Instant::now();
    let stack = Stack::connect().await;

    let mut secrets = Vec::new();
    for environment in ["staging", "production"] {
        secrets.extend(secret_values(
            environment,
            &read_secret(&stack, environment).await?,
        ));
    }
    let short: Vec<&String> = secrets
        .iter()
        .filter(|(_, value)| value.len() < MIN_SECRET_LEN)
        .map(|(what, _)| what)
        .collect();
    assert!(
        short.is_empty(),
        "secret values shorter than {MIN_SECRET_LEN} characters cannot be searched for: {short:?}"
    );
    assert!(
        secrets
            .iter()
            .any(|(what, _)| what == "staging worker_token"),
        "the staging secret has no worker token: {:?}",
        secrets.iter().map(|(what, _)| what).collect::<Vec<_>>()
    );

    // One refresh of audio: every step runs, workers included. Other test binaries drive the
    // same stack (the `exclusive` lock is per binary): let their runs end first, and queue
    // behind one that starts meanwhile rather than be refused.
    wait_until_idle(&stack, RUN_TIMEOUT).await?;
    if stack
        .alias_targets(MediaType::Audio.alias())
        .await?
        .is_empty()
    {
        load_sample_data()?;
    }
    let finished = stack
        .run(
            &stack.refresh_arn,
            "e2e-security",
            json!({"media_type": "audio", "environment": "staging",
                   "override_record_drop": true, "wait_if_busy": true}),
            RUN_TIMEOUT,
        )
        .await?;
    assert_eq!(
        finished.status, "SUCCEEDED",
        "{:?} {:?}",
        finished.error, finished.cause
    );

    let mut sources: Vec<(String, String)> = Vec::new();

    // Every input and output of the execution (and every other field of its events).
    let history = execution_history_with_data(&finished.arn)?;
    let with_data = history
        .iter()
        .filter(|event| {
            event.as_object().is_some_and(|fields| {
                fields.values().any(|details| {
                    details.get("input").is_some()
                        || details.get("output").is_some()
                        || details.get("parameters").is_some()
                })
            })
        })
        .count();
    for (n, event) in history.iter().enumerate() {
        sources.push((
            format!("execution history event {n} ({})", event["type"]),
            event.to_string(),
        ));
    }

    // The same for each of its worker-range executions (ranges and SQL jobs).
    let children = stack.child_executions(&finished.arn).await?;
    let mut child_events = 0;
    for child in &children {
        let events = execution_history_with_data(child)?;
        child_events += events.len();
        for (n, event) in events.iter().enumerate() {
            sources.push((
                format!("history event {n} ({}) of {child}", event["type"]),
                event.to_string(),
            ));
        }
    }

    // Every function's logs (all invocations since the stack started, this run's included).
    let logs = all_function_logs(&stack.stack_name)?;
    let log_lines: usize = logs.values().map(Vec::len).sum();
    for (group, messages) in &logs {
        sources.push((format!("log group {group}"), messages.join("\n")));
    }

    // The consoles of this run's workers, and of every other local instance.
    let workers = stack.instances(&finished.arn).await?;
    let mut worker_console_lines = 0;
    for worker in &workers {
        let console = instance_console(&worker.id)?;
        worker_console_lines += console.lines().count();
        sources.push((format!("console of worker {}", worker.id), console));
    }
    let mut other_consoles = 0;
    if let Ok(entries) = std::fs::read_dir(local_dir().join("data/ec2")) {
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if workers.iter().any(|w| w.id == id) {
                continue;
            }
            if let Ok(console) = instance_console(&id) {
                other_consoles += 1;
                sources.push((format!("console of instance {id}"), console));
            }
        }
    }

    eprintln!(
        "scanned for {} secret values: {} history events ({with_data} with input/output) and \
         {child_events} of {} worker-range executions, \
         {log_lines} log lines from {} functions, {} worker consoles of this run \
         ({worker_console_lines} lines) and {other_consoles} other consoles, in {:?}",
        secrets.len(),
        history.len(),
        children.len(),
        logs.len(),
        workers.len(),
        started.elapsed()
    );
    // What was read is the run's real output, not nothing.
    assert!(
        with_data >= 20,
        "only {with_data} history events carry data"
    );
    assert!(
        logs.len() >= 10,
        "logs of only {} functions: {:?}",
        logs.len(),
        logs.keys().collect::<Vec<_>>()
    );
    assert!(log_lines >= 100, "only {log_lines} log lines");
    assert!(!workers.is_empty(), "the run launched no worker");
    assert!(
        children.len() >= 3 && child_events >= 30,
        "only {} worker-range executions ({child_events} events) read",
        children.len()
    );
    assert!(
        worker_console_lines >= 3,
        "the worker consoles hold only {worker_console_lines} lines"
    );

    let found = leaks(&sources, &secrets);
    assert!(
        found.is_empty(),
        "secret values leaked:\n{}",
        found.join("\n")
    );
    Ok(())
}

#[test]
fn url_passwords_are_found_raw_and_decoded() {
    assert_eq!(
        url_password("postgres://u:p%40ss@h:5432/db"),
        vec!["p%40ss".to_string(), "p@ss".to_string()]
    );
    assert!(url_password("postgres://postgres@127.0.0.1:55432/api").is_empty());
    assert!(url_password("").is_empty());
    let secret = json!({"api_db_url": "postgres://u:secret1@h/api", "catalog_db_url": "",
                        "catalog_fdw": {"password": ""}, "worker_token": "tok3n-value"});
    let found = secret_values("staging", &secret);
    assert!(found.contains(&("staging api_db_url password".into(), "secret1".into())));
    assert!(found.contains(&("staging worker_token".into(), "tok3n-value".into())));
    let sources = vec![("log".to_string(), "a\nb tok3n-value c\n".to_string())];
    let found_leaks = leaks(&sources, &found);
    assert_eq!(
        found_leaks,
        vec!["staging worker_token in log: b <SECRET> c"]
    );
}
