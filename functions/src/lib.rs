//! Shared glue for the Lambda handlers: logging, settings from Secrets Manager, error names.
//!
//! A step binary is a few lines:
//!
//! ```no_run
//! use refresh_functions::{run, Context};
//! use std::sync::Arc;
//!
//! #[derive(serde::Deserialize)]
//! struct Input { index: String }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     run(|_ctx: Arc<Context>, input: Input| async move {
//!         Ok(serde_json::json!({ "index": input.index }))
//!     })
//!     .await
//! }
//! ```

pub mod ec2;
pub mod sfn;
pub mod steps;
pub mod worker_client;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use refresh_core::config::{vars, ProcessEnv, StepConfig};
use refresh_core::error::{ErrorKind, StepError, StepResult};
use refresh_core::input::Environment;
use refresh_core::settings::Secrets;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;

/// JSON logs (one object a line, as CloudWatch and the local executor collect them), level
/// from `RUST_LOG` (default `info`), no ANSI colours. Safe to call more than once.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (tests, or a binary that already initialised) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_current_span(false)
        .flatten_event(true)
        .try_init();
}

/// A step's error as the Lambda runtime reports it: `errorType` is the stable
/// [`ErrorKind::name`] that the state machines' Retry/Catch match on (without this the runtime
/// reports a Rust type name), `errorMessage` the operator-facing message.
#[derive(Debug)]
pub struct HandlerError(pub StepError);

impl From<StepError> for HandlerError {
    fn from(error: StepError) -> Self {
        HandlerError(error)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.kind.name(), self.0.message)
    }
}

impl std::error::Error for HandlerError {}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Diagnostic {
        Diagnostic {
            error_type: error.0.kind.name().to_string(),
            error_message: error.0.message,
        }
    }
}

/// What every handler may need, built once per cold start.
#[derive(Debug)]
pub struct Context {
    pub config: StepConfig,
    pub aws: aws_config::SdkConfig,
}

impl Context {
    pub async fn from_env() -> StepResult<Context> {
        let config = StepConfig::from_env(&ProcessEnv)?;
        let aws = aws_config::load_from_env().await;
        Ok(Context { config, aws })
    }

    /// The credentials of `environment` (`REFRESH_SECRET_ID_<ENV>`, else `REFRESH_SECRET_ID`),
    /// read on every call so a rotated secret takes effect without a redeploy.
    pub async fn secrets_for(&self, environment: Environment) -> StepResult<Secrets> {
        load_secret(&self.aws, self.config.secret_id_for(environment)?).await
    }

    /// The credentials named by `REFRESH_SECRET_ID`.
    pub async fn secrets(&self) -> StepResult<Secrets> {
        load_secret(&self.aws, self.config.secret_id()?).await
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.aws)
    }
}

/// Reads the secret named by `REFRESH_SECRET_ID` from Secrets Manager.
pub async fn load_secrets() -> StepResult<Secrets> {
    let secret_id = std::env::var(vars::REFRESH_SECRET_ID)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            StepError::new(
                ErrorKind::Configuration,
                format!("{} is not set", vars::REFRESH_SECRET_ID),
            )
        })?;
    let aws = aws_config::load_from_env().await;
    load_secret(&aws, &secret_id).await
}

/// Reads and parses one refresh secret. Errors name the secret id, never its value.
pub async fn load_secret(aws: &aws_config::SdkConfig, secret_id: &str) -> StepResult<Secrets> {
    let client = aws_sdk_secretsmanager::Client::new(aws);
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| secret_read_error(secret_id, &e))?;
    let value = output.secret_string().ok_or_else(|| {
        StepError::new(
            ErrorKind::Configuration,
            format!("secret {secret_id} has no string value"),
        )
    })?;
    Secrets::from_json(value)
        .map_err(|e| StepError::new(e.kind, format!("secret {secret_id}: {}", e.message)))
}

fn secret_read_error<E, R>(
    secret_id: &str,
    error: &aws_sdk_secretsmanager::error::SdkError<E, R>,
) -> StepError
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    use aws_sdk_secretsmanager::error::SdkError;
    // A missing secret or a denied read needs an operator; anything else (throttling, a
    // network blip) is reported as internal so the message carries the SDK's reason.
    let kind = match error {
        SdkError::ServiceError(service) => match service.err().code() {
            Some(
                "ResourceNotFoundException"
                | "AccessDeniedException"
                | "DecryptionFailure"
                | "InvalidRequestException",
            ) => ErrorKind::Configuration,
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    };
    // The SDK's error text describes the request and the failure, never the secret's value.
    StepError::new(
        kind,
        format!(
            "could not read secret {secret_id}: {}",
            aws_sdk_secretsmanager::error::DisplayErrorContext(error)
        ),
    )
}

/// Parses a step's JSON input; a mismatch is `InvalidInput` naming the field.
pub fn parse_input<In: DeserializeOwned>(payload: serde_json::Value) -> StepResult<In> {
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

/// Serialises a step's output, mapping the (unexpected) failure to `InternalError`.
fn to_output<Out: Serialize>(output: &Out) -> StepResult<serde_json::Value> {
    serde_json::to_value(output).map_err(|e| {
        StepError::new(
            ErrorKind::Internal,
            format!("step output could not be serialised: {e}"),
        )
    })
}

/// Runs a step handler under the Lambda runtime: JSON logs, the shared [`Context`] built once,
/// input parsed into `In` (bad input → `InvalidInput`), errors reported under their stable
/// names. A context that fails to build (bad configuration) fails every invocation with its
/// error instead of crashing the runtime, so the state machine sees `ConfigurationError`.
pub async fn run<In, Out, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    In: DeserializeOwned,
    Out: Serialize,
    F: Fn(Arc<Context>, In) -> Fut,
    Fut: Future<Output = StepResult<Out>>,
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
                Err(e) => return Err(HandlerError(StepError::new(e.kind, e.message.clone()))),
            };
            invoke(handler, context, event.payload).await
        },
    ))
    .await
}

/// One invocation: parse, run, serialise; the error is logged once with its name.
pub async fn invoke<In, Out, F, Fut>(
    handler: &F,
    context: Arc<Context>,
    payload: serde_json::Value,
) -> Result<serde_json::Value, HandlerError>
where
    In: DeserializeOwned,
    Out: Serialize,
    F: Fn(Arc<Context>, In) -> Fut,
    Fut: Future<Output = StepResult<Out>>,
{
    let result = async {
        let input = parse_input::<In>(payload)?;
        let output = handler(context, input).await?;
        to_output(&output)
    }
    .await;
    result.map_err(|e| {
        tracing::error!(error_type = e.kind.name(), error = %e.message, "step failed");
        HandlerError(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn concurrency_conflict_is_reported_under_its_stable_name() {
        let error = StepError::new(
            ErrorKind::ConcurrencyConflict,
            "image refresh arn:…:exec-1 is running",
        );
        let diagnostic: Diagnostic = HandlerError::from(error).into();
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
            (ErrorKind::TransientDatabase, "TransientDatabaseError"),
            (ErrorKind::TransientSearch, "TransientSearchError"),
            (ErrorKind::InvalidState, "InvalidState"),
            (ErrorKind::Configuration, "ConfigurationError"),
            (ErrorKind::Internal, "InternalError"),
        ];
        for (kind, name) in expected {
            let diagnostic: Diagnostic = HandlerError(StepError::new(kind, "m")).into();
            assert_eq!(diagnostic.error_type, name);
        }
    }

    #[test]
    fn the_runtime_serialises_the_name_as_error_type() {
        // What the Lambda Runtime API receives, and Step Functions turns into the error name.
        let diagnostic: Diagnostic =
            HandlerError(StepError::new(ErrorKind::TransientSearch, "es 503")).into();
        let json = serde_json::to_value(&diagnostic).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"errorType": "TransientSearchError", "errorMessage": "es 503"})
        );
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
