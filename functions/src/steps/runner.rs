//! A runner for steps that fail under names of their own besides the `ErrorKind` ones
//! (`WorkerTaskFailed`, `WorkerNotReady`): `refresh_core::error::ErrorKind` has no such
//! kinds, and [`crate::run`] reports only those.

use crate::{init_tracing, parse_input, Context};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use refresh_core::error::{ErrorKind, StepError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// A worker step's failure: the name Retry/Catch match and the operator's message.
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

/// One invocation: parse, run, serialise; the failure is logged once with its name.
pub async fn invoke_step<In, Out, F, Fut>(
    handler: &F,
    context: Arc<Context>,
    payload: serde_json::Value,
) -> Result<serde_json::Value, StepFailure>
where
    In: DeserializeOwned,
    Out: Serialize,
    F: Fn(Arc<Context>, In) -> Fut,
    Fut: Future<Output = Result<Out, StepFailure>>,
{
    let result = async {
        let input = parse_input::<In>(payload)?;
        let output = handler(context, input).await?;
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

/// Like [`crate::run`], for handlers returning [`StepFailure`].
pub async fn run_step<In, Out, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    In: DeserializeOwned,
    Out: Serialize,
    F: Fn(Arc<Context>, In) -> Fut,
    Fut: Future<Output = Result<Out, StepFailure>>,
{
    init_tracing();
    let context = Context::from_env().await.map(Arc::new);
    if let Err(e) = &context {
        tracing::error!(error_type = e.kind.name(), error = %e.message, "configuration is invalid");
    }
    let context = &context;
    let handler = &handler;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let context = match context {
                Ok(context) => Arc::clone(context),
                Err(e) => return Err(StepFailure::from(StepError::new(e.kind, e.message.clone()))),
            };
            invoke_step(handler, context, event.payload).await
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
