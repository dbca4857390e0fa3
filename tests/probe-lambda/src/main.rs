//! A tiny Lambda that exercises the local host executor (`localstack/ext`).
//!
//! The event's `action` picks the behaviour:
//! - `echo`: returns the event, the request id and the process id;
//! - `env`: returns the listed environment variables (`names`), to check what the executor passes;
//! - `log`: prints `lines` to stdout, so a test can find exactly this invocation's log lines;
//! - `error`: a handled error with the stable type name `ProbeError` (matchable by Retry/Catch);
//! - `sleep`: sleeps `seconds` (to run past the function's timeout), returns the process id;
//! - `crash`: prints to stderr and exits the process with `code`, without answering.

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The error type name a state machine's Catch matches on.
pub const PROBE_ERROR_TYPE: &str = "ProbeError";

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum Action {
    Echo {
        #[serde(default)]
        payload: Value,
    },
    Env {
        names: Vec<String>,
    },
    Log {
        lines: Vec<String>,
    },
    Error {
        message: String,
    },
    Sleep {
        seconds: f64,
    },
    Crash {
        #[serde(default = "default_exit_code")]
        code: i32,
    },
}

fn default_exit_code() -> i32 {
    3
}

#[derive(Debug)]
struct ProbeError(String);

impl From<ProbeError> for Diagnostic {
    fn from(error: ProbeError) -> Diagnostic {
        Diagnostic {
            error_type: PROBE_ERROR_TYPE.into(),
            error_message: error.0,
        }
    }
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, ProbeError> {
    let request_id = event.context.request_id.clone();
    let action: Action = serde_json::from_value(event.payload)
        .map_err(|e| ProbeError(format!("bad probe event: {e}")))?;
    match action {
        Action::Echo { payload } => Ok(json!({
            "echo": payload,
            "request_id": request_id,
            "pid": std::process::id(),
        })),
        Action::Env { names } => {
            let vars: serde_json::Map<String, Value> = names
                .into_iter()
                .map(|name| {
                    let value = std::env::var(&name).map_or(Value::Null, Value::String);
                    (name, value)
                })
                .collect();
            Ok(json!({ "env": vars }))
        }
        Action::Log { lines } => {
            for line in &lines {
                println!("{line}");
            }
            Ok(json!({ "logged": lines.len() }))
        }
        Action::Error { message } => Err(ProbeError(message)),
        Action::Sleep { seconds } => {
            tokio::time::sleep(Duration::from_secs_f64(seconds.max(0.0))).await;
            Ok(json!({ "slept": seconds, "pid": std::process::id() }))
        }
        Action::Crash { code } => {
            eprintln!("probe-lambda: crashing on purpose with exit code {code}");
            std::process::exit(code);
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(handle)).await
}
