//! The one runner every step goes through: JSON logs, the shared [`Context`] built once per
//! cold start, input parsed strictly, errors reported under their stable names.

use crate::context::Context;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use refresh_core::error::{ErrorKind, StepError, StepResult};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A step's failure: the name Retry/Catch match (`errorType`) and the operator's message.
/// Besides the [`ErrorKind`] names, the worker steps fail as `WorkerTaskFailed` and
/// `WorkerNotReady`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailure {
    pub name: &'static str,
    pub message: String,
}

impl StepFailure {
    /// A worker task that ended with an error (or with documents it could not index).
    pub fn worker_task_failed(message: impl Into<String>) -> Self {
        StepFailure {
            name: "WorkerTaskFailed",
            message: message.into(),
        }
    }

    /// A stage notification the chat webhook did not take (forward_notification).
    pub fn chat_webhook_failed(message: impl Into<String>) -> Self {
        StepFailure {
            name: "ChatWebhookFailed",
            message: message.into(),
        }
    }

    /// A worker that does not answer or refuses work for now.
    pub fn worker_not_ready(message: impl Into<String>) -> Self {
        StepFailure {
            name: "WorkerNotReady",
            message: message.into(),
        }
    }
}

impl From<StepError> for StepFailure {
    fn from(error: StepError) -> Self {
        StepFailure {
            name: error.kind.name(),
            message: error.message,
        }
    }
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for StepFailure {}

impl From<StepFailure> for Diagnostic {
    fn from(failure: StepFailure) -> Diagnostic {
        Diagnostic {
            error_type: failure.name.to_string(),
            error_message: failure.message,
        }
    }
}

/// Parses a step's JSON input; a mismatch is `InvalidInput` naming the field.
pub fn parse_input<In: DeserializeOwned>(payload: Value) -> StepResult<In> {
    serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string();
        let location = if path == "." || path.is_empty() {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        StepError::invalid_input(format!("step input{location}: {}", e.into_inner()))
    })
}

/// One invocation: parse (and check) the input, run the handler, serialise its output; the
/// failure is logged once with its name.
pub async fn invoke<In, Out, E, F, Fut>(
    parse: fn(Value) -> StepResult<In>,
    handle: F,
    context: Arc<Context>,
    payload: Value,
) -> Result<Value, StepFailure>
where
    Out: Serialize,
    E: Into<StepFailure>,
    F: FnOnce(Arc<Context>, In) -> Fut,
    Fut: Future<Output = Result<Out, E>>,
{
    let result = async {
        let input = parse(payload)?;
        let output = handle(context, input).await.map_err(Into::into)?;
        serde_json::to_value(&output).map_err(|e| {
            StepFailure::from(StepError::new(
                ErrorKind::Internal,
                format!("step output could not be serialised: {e}"),
            ))
        })
    }
    .await;
    result.inspect_err(|e| tracing::error!(error_type = e.name, error = %e.message, "step failed"))
}

tokio::task_local! {
    /// When the running invocation will be killed (the Lambda's deadline).
    static DEADLINE: Option<Instant>;
}

/// How long work started now may take: `cap`, but never past the invocation's deadline less
/// a margin (a quarter of what is left, at least 5 s) to record progress and reply. The
/// function timeout is a stack parameter, so steps must not assume 15 minutes.
pub fn time_budget(cap: Duration) -> Duration {
    let remaining = DEADLINE
        .try_with(|deadline| *deadline)
        .ok()
        .flatten()
        .map(|deadline| deadline.saturating_duration_since(Instant::now()));
    match remaining {
        Some(remaining) => {
            let margin = (remaining / 4).max(Duration::from_secs(5));
            cap.min(remaining.saturating_sub(margin))
        }
        None => cap,
    }
}

/// Serves `handler` under the Lambda runtime. A handler that could not be chosen (a
/// missing or unknown step name) or a context that fails to build (bad configuration) fails
/// every invocation with its error instead of crashing the runtime, so the state machine
/// sees `ConfigurationError` and why.
pub async fn run<H, Fut>(handler: StepResult<H>) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Arc<Context>, Value) -> Fut,
    Fut: Future<Output = Result<Value, StepFailure>>,
{
    refresh_core::telemetry::init_json_logs();
    let ready = async {
        let handler = handler?;
        Ok::<_, StepError>((handler, Arc::new(Context::from_env().await?)))
    }
    .await;
    if let Err(e) = &ready {
        tracing::error!(error_type = e.kind.name(), error = %e.message, "configuration is invalid");
    }
    let ready = &ready;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The runtime's deadline is wall-clock milliseconds; budgets are measured on Instant.
        let remaining = Duration::from_millis(event.context.deadline)
            .checked_sub(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default(),
            )
            .unwrap_or_default();
        let deadline = Some(Instant::now() + remaining);
        match ready {
            Ok((handler, context)) => {
                DEADLINE
                    .scope(deadline, handler(Arc::clone(context), event.payload))
                    .await
            }
            Err(e) => Err(StepFailure {
                name: e.kind.name(),
                message: e.message.clone(),
            }),
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_budget_keeps_a_margin_before_the_deadline() {
        let cap = Duration::from_secs(600);
        assert_eq!(
            time_budget(cap),
            cap,
            "outside an invocation the cap applies"
        );
        let in_60s = Some(Instant::now() + Duration::from_secs(60));
        let budget = DEADLINE.scope(in_60s, async { time_budget(cap) }).await;
        assert!(
            budget <= Duration::from_secs(45) && budget >= Duration::from_secs(44),
            "{budget:?}"
        );
        let in_15min = Some(Instant::now() + Duration::from_secs(900));
        assert_eq!(
            DEADLINE.scope(in_15min, async { time_budget(cap) }).await,
            cap
        );
        let passed = Some(Instant::now());
        assert_eq!(
            DEADLINE.scope(passed, async { time_budget(cap) }).await,
            Duration::ZERO
        );
    }
    use serde::Deserialize;

    #[test]
    fn concurrency_conflict_is_reported_under_its_stable_name() {
        let error = StepError::new(
            ErrorKind::ConcurrencyConflict,
            "image refresh arn:…:exec-1 is running",
        );
        let diagnostic: Diagnostic = StepFailure::from(error).into();
        assert_eq!(diagnostic.error_type, "ConcurrencyConflict");
        assert_eq!(
            diagnostic.error_message,
            "image refresh arn:…:exec-1 is running"
        );
    }

    #[test]
    fn every_kind_keeps_the_name_the_state_machines_match() {
        let expected = [
            (ErrorKind::InvalidInput, "InvalidInput"),
            (ErrorKind::ConcurrencyConflict, "ConcurrencyConflict"),
            (ErrorKind::RecordDropTooLarge, "RecordDropTooLarge"),
            (ErrorKind::SearchGuardFailed, "SearchGuardFailed"),
            (ErrorKind::PromotionNotReady, "PromotionNotReady"),
            (ErrorKind::TransientDatabase, "TransientDatabaseError"),
            (ErrorKind::TransientSearch, "TransientSearchError"),
            (ErrorKind::InvalidState, "InvalidState"),
            (ErrorKind::Configuration, "ConfigurationError"),
            (ErrorKind::Internal, "InternalError"),
        ];
        for (kind, name) in expected {
            let diagnostic: Diagnostic = StepFailure::from(StepError::new(kind, "m")).into();
            assert_eq!(diagnostic.error_type, name);
        }
    }

    #[test]
    fn the_runtime_serialises_the_name_as_error_type() {
        // What the Lambda Runtime API receives, and Step Functions turns into the error name.
        let diagnostic: Diagnostic =
            StepFailure::from(StepError::new(ErrorKind::TransientSearch, "es 503")).into();
        let json = serde_json::to_value(&diagnostic).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"errorType": "TransientSearchError", "errorMessage": "es 503"})
        );
    }

    #[test]
    fn worker_failures_keep_their_names() {
        let d: Diagnostic = StepFailure::worker_task_failed("task t1 failed").into();
        assert_eq!(d.error_type, "WorkerTaskFailed");
        assert_eq!(d.error_message, "task t1 failed");
        let d: Diagnostic = StepFailure::worker_not_ready("busy").into();
        assert_eq!(d.error_type, "WorkerNotReady");
        let d: Diagnostic =
            StepFailure::from(StepError::new(ErrorKind::TransientSearch, "503")).into();
        assert_eq!(d.error_type, "TransientSearchError");
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        #[allow(dead_code)]
        index: String,
        #[allow(dead_code)]
        range: ProbeRange,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ProbeRange {
        #[allow(dead_code)]
        start_id: i64,
    }

    #[test]
    fn bad_input_is_invalid_input_naming_the_field() {
        let err = parse_input::<Probe>(
            serde_json::json!({"index": "image-x", "range": {"start_id": "one"}}),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.contains("range.start_id"), "{}", err.message);

        let err = parse_input::<Probe>(serde_json::json!({"index": "image-x"})).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.contains("range"), "{}", err.message);

        assert!(
            parse_input::<Probe>(serde_json::json!({"index": "i", "range": {"start_id": 1}}))
                .is_ok()
        );
    }
}
