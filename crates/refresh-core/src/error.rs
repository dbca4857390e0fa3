//! The error every step returns, with a stable name per kind.
//!
//! Step Functions matches Retry/Catch on the error *name*; `ErrorKind::name` is that name
//! and must never change once a state machine refers to it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorKind {
    /// The execution input or a request was malformed. Never retried.
    InvalidInput,
    /// Another refresh (or a filtered-index rebuild) of the same scope is running.
    ConcurrencyConflict,
    /// The new data set is smaller than the drop guard allows. Never retried.
    RecordDropTooLarge,
    /// The search guard: a representative query finds too few documents in the new index.
    /// Never retried; `override_search_guard` promotes anyway.
    SearchGuardFailed,
    /// The pre-flight before the point of no return found the aliases could not be moved
    /// (an index missing or not green, a block, a full disk, an alias on two indices).
    PromotionNotReady,
    /// A connection or server error from PostgreSQL that may pass. Retried with back-off.
    TransientDatabase,
    /// A connection, 429 or 5xx error from Elasticsearch that may pass. Retried with back-off.
    TransientSearch,
    /// The cluster, table or index is not in the state the step requires (e.g. an alias on
    /// two indices, a missing temp table). Not retried: an operator must look.
    InvalidState,
    /// Configuration or secrets are missing or wrong. Not retried.
    Configuration,
    /// Anything else.
    Internal,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::ConcurrencyConflict => "ConcurrencyConflict",
            ErrorKind::RecordDropTooLarge => "RecordDropTooLarge",
            ErrorKind::SearchGuardFailed => "SearchGuardFailed",
            ErrorKind::PromotionNotReady => "PromotionNotReady",
            ErrorKind::TransientDatabase => "TransientDatabaseError",
            ErrorKind::TransientSearch => "TransientSearchError",
            ErrorKind::InvalidState => "InvalidState",
            ErrorKind::Configuration => "ConfigurationError",
            ErrorKind::Internal => "InternalError",
        }
    }
}

/// A step failure: what kind (for Retry/Catch) and a message for the operator.
/// Messages must never contain a secret (no connection strings, no passwords, no tokens).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub kind: ErrorKind,
    pub message: String,
}

impl StepError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StepError {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidState, message)
    }
}

pub type StepResult<T> = Result<T, StepError>;

/// Input is echoed in errors to help the operator, but never at unbounded length.
pub(crate) fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 120;
    if text.chars().count() <= MAX_CHARS {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX_CHARS).collect();
        format!("{head}…")
    }
}
