//! The CLI's errors and its exit codes (0 success, 2 usage, 3 refused, 4 the refresh
//! failed, 5 cannot reach AWS). Every message is one line and names what was wrong.

use crate::model::RunResult;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use thiserror::Error;

pub const EXIT_OK: u8 = 0;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_REFUSED: u8 = 3;
pub const EXIT_FAILED: u8 = 4;
pub const EXIT_AWS: u8 = 5;

#[derive(Debug, Error, PartialEq)]
pub enum CliError {
    /// A bad argument (unknown execution, unknown stack, a flag clap could not check).
    #[error("{0}")]
    Usage(String),
    /// Refused before anything changed: invalid input, another run, the drop guard.
    #[error("{0}")]
    Refused(String),
    /// The refresh (or the wait for it) failed.
    #[error("{0}")]
    Failed(String),
    /// AWS could not be reached, or would not answer (credentials, network, permissions).
    #[error("{0}")]
    Aws(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Refused(_) => EXIT_REFUSED,
            CliError::Failed(_) => EXIT_FAILED,
            CliError::Aws(_) => EXIT_AWS,
        }
    }
}

/// The exit code a run's outcome means (a running one is not a failure).
pub fn exit_code_for(result: RunResult) -> u8 {
    match result {
        RunResult::Running | RunResult::Succeeded => EXIT_OK,
        RunResult::Refused => EXIT_REFUSED,
        RunResult::Failed => EXIT_FAILED,
    }
}

/// The worst of several codes: a failure outweighs a refusal, which outweighs success.
pub fn worst(codes: impl IntoIterator<Item = u8>) -> u8 {
    let rank = |c: u8| match c {
        EXIT_OK => 0,
        EXIT_REFUSED => 1,
        EXIT_FAILED => 2,
        _ => 3,
    };
    codes
        .into_iter()
        .max_by_key(|&c| rank(c))
        .unwrap_or(EXIT_OK)
}

/// Service error codes that mean the argument named something that does not exist.
const NOT_FOUND: [&str; 5] = [
    "ExecutionDoesNotExist",
    "StateMachineDoesNotExist",
    "InvalidArn",
    "InvalidName",
    "ResourceNotFoundException",
];

/// Service error codes that mean Step Functions refused to start the execution.
const REFUSED: [&str; 3] = [
    "ExecutionLimitExceeded",
    "ExecutionAlreadyExists",
    "InvalidExecutionInput",
];

/// Maps an SDK error to the CLI's kinds. `what` names the call and its argument
/// (`"DescribeExecution of EXECUTION my-run"`). SDK messages carry no credentials.
pub fn aws_error<E, R>(what: &str, err: SdkError<E, R>) -> CliError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            classify_service_error(what, inner.code(), inner.message())
        }
        _ => CliError::Aws(one_line(&format!(
            "{what}: cannot reach AWS: {}",
            aws_sdk_sfn::error::DisplayErrorContext(&err)
        ))),
    }
}

/// A service's answer, by its error code.
pub fn classify_service_error(what: &str, code: Option<&str>, message: Option<&str>) -> CliError {
    let code = code.unwrap_or("ServiceError");
    let text = one_line(&format!("{what}: {code}: {}", message.unwrap_or_default()));
    if NOT_FOUND.contains(&code) {
        CliError::Usage(text)
    } else if REFUSED.contains(&code) {
        CliError::Refused(text)
    } else {
        CliError::Aws(text)
    }
}

fn one_line(text: &str) -> String {
    crate::interpret::one_line(text, 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CliError::Refused("x".into()).exit_code(), 3);
        assert_eq!(CliError::Failed("x".into()).exit_code(), 4);
        assert_eq!(CliError::Aws("x".into()).exit_code(), 5);
        assert_eq!(exit_code_for(RunResult::Succeeded), 0);
        assert_eq!(exit_code_for(RunResult::Running), 0);
        assert_eq!(exit_code_for(RunResult::Refused), 3);
        assert_eq!(exit_code_for(RunResult::Failed), 4);
    }

    #[test]
    fn the_worst_outcome_wins() {
        assert_eq!(worst([0, 3, 0]), 3);
        assert_eq!(worst([3, 4, 0]), 4);
        assert_eq!(worst([0, 5, 4]), 5);
        assert_eq!(worst([]), 0);
    }

    #[test]
    fn service_errors_are_sorted_by_code() {
        let missing = classify_service_error(
            "DescribeExecution of EXECUTION x",
            Some("ExecutionDoesNotExist"),
            Some("Execution Does Not Exist: 'arn:x'"),
        );
        assert_eq!(missing.exit_code(), EXIT_USAGE);
        assert_eq!(
            missing.to_string(),
            "DescribeExecution of EXECUTION x: ExecutionDoesNotExist: Execution Does Not Exist: 'arn:x'"
        );
        let taken = classify_service_error("StartExecution", Some("ExecutionAlreadyExists"), None);
        assert_eq!(taken.exit_code(), EXIT_REFUSED);
        let denied = classify_service_error("ListExecutions", Some("AccessDeniedException"), None);
        assert_eq!(denied.exit_code(), EXIT_AWS);
        let unknown = classify_service_error("ListExecutions", None, Some("line one\nline two"));
        assert_eq!(
            unknown.to_string(),
            "ListExecutions: ServiceError: line one line two"
        );
    }
}
