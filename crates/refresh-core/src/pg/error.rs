//! The one mapping from PostgreSQL errors to step errors, used by every caller in this crate.
//!
//! - Kind: `TransientDatabase` when a retry may pass ([`is_transient`]), else `Internal`.
//! - Message: what was being done, then the server's SQLSTATE, message, detail and hint.
//!   Operators need the reason ("relation temp_import_image does not exist", the view that
//!   blocks a `DROP`, the key that clashed); a detail may quote row values, which are the
//!   catalog's public data, not secrets.
//! - Secrets: tokio-postgres never puts the connection string or a password in its errors,
//!   and connection errors are reported by host/db name only (`pg::connect`). A statement
//!   that itself holds a secret (the FDW user mapping) reports only its SQLSTATE
//!   ([`pg_error_withheld`]): the server's message could quote the statement.

use crate::error::{ErrorKind, StepError, StepResult};
use std::error::Error as _;
use tokio_postgres::error::SqlState;

/// Whether a PostgreSQL error may pass on retry: lost or refused connections, I/O errors,
/// SQLSTATE classes 08 (connection) and 53 (insufficient resources), server shutdown /
/// restart (57P01–57P03), serialization failures (40001), deadlocks (40P01) and lock
/// timeouts (55P03: promotion gives up waiting for the API's queries and is retried).
pub fn is_transient(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    if let Some(code) = err.code() {
        let c = code.code();
        return c.starts_with("08")
            || c.starts_with("53")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::LOCK_NOT_AVAILABLE;
    }
    // No SQLSTATE: a client-side failure. I/O (refused, reset, timed out) may pass; others
    // (a type mismatch, a protocol error) will not.
    let mut source = err.source();
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn kind_of(err: &tokio_postgres::Error) -> ErrorKind {
    if is_transient(err) {
        ErrorKind::TransientDatabase
    } else {
        ErrorKind::Internal
    }
}

/// `PostgreSQL error <SQLSTATE>: <message>; detail: …; hint: …` as the server reported it.
fn server_text(code: &str, message: &str, detail: Option<&str>, hint: Option<&str>) -> String {
    let mut text = format!("PostgreSQL error {code}: {message}");
    if let Some(detail) = detail {
        text.push_str(&format!("; detail: {detail}"));
    }
    if let Some(hint) = hint {
        text.push_str(&format!("; hint: {hint}"));
    }
    text
}

/// The error without context: the server's text, or what the client saw.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => server_text(db.code().code(), db.message(), db.detail(), db.hint()),
        None => match err.source() {
            Some(source) => format!("PostgreSQL client error: {err}: {source}"),
            None => format!("PostgreSQL client error: {err}"),
        },
    }
}

/// `<context>: <the error>`, classified: the mapping every PostgreSQL call goes through.
pub fn pg_error(context: &str, err: tokio_postgres::Error) -> StepError {
    StepError::new(kind_of(&err), format!("{context}: {}", describe(&err)))
}

/// For a statement holding a secret: the kind and SQLSTATE only, never the server's text.
pub fn pg_error_withheld(context: &str, err: tokio_postgres::Error) -> StepError {
    let code = err
        .code()
        .map_or_else(|| "none".to_string(), |c| c.code().to_string());
    StepError::new(
        kind_of(&err),
        format!(
            "{context} failed (SQLSTATE {code}; details withheld: the statement holds a password)"
        ),
    )
}

impl From<tokio_postgres::Error> for StepError {
    fn from(err: tokio_postgres::Error) -> Self {
        StepError::new(kind_of(&err), describe(&err))
    }
}

/// [`pg_error`] on a result: `.context("reading the copy position")?`, or
/// `.with_context(|| format!(…))` when the context is built from values.
pub trait PgResultExt<T> {
    fn context(self, what: &str) -> StepResult<T>;
    fn with_context(self, what: impl FnOnce() -> String) -> StepResult<T>;
}

impl<T> PgResultExt<T> for Result<T, tokio_postgres::Error> {
    fn context(self, what: &str) -> StepResult<T> {
        self.map_err(|e| pg_error(what, e))
    }

    fn with_context(self, what: impl FnOnce() -> String) -> StepResult<T> {
        self.map_err(|e| pg_error(&what(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_keeps_code_message_detail_and_hint() {
        assert_eq!(
            server_text("42P01", "relation \"x\" does not exist", None, None),
            "PostgreSQL error 42P01: relation \"x\" does not exist"
        );
        assert_eq!(
            server_text(
                "2BP01",
                "cannot drop table image because other objects depend on it",
                Some("view image_titles depends on table image"),
                Some("Use DROP ... CASCADE to drop the dependent objects too."),
            ),
            "PostgreSQL error 2BP01: cannot drop table image because other objects depend on it; \
             detail: view image_titles depends on table image; \
             hint: Use DROP ... CASCADE to drop the dependent objects too."
        );
    }

    async fn refused() -> tokio_postgres::Error {
        tokio_postgres::connect(
            "host=127.0.0.1 port=1 user=x connect_timeout=2",
            tokio_postgres::NoTls,
        )
        .await
        .err()
        .unwrap()
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        // A refused connection has no SQLSTATE; is_transient treats it as transient.
        let err = pg_error("promoting", refused().await);
        assert_eq!(err.kind, ErrorKind::TransientDatabase);
        assert!(err.message.starts_with("promoting: "), "{}", err.message);
        let err: Result<(), _> = Err(refused().await);
        let err = err
            .with_context(|| format!("promoting {}", "image"))
            .unwrap_err();
        assert!(
            err.message.starts_with("promoting image: "),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_withheld_error_keeps_only_kind_and_code() {
        let err = pg_error_withheld("creating the user mapping", refused().await);
        assert_eq!(err.kind, ErrorKind::TransientDatabase);
        assert_eq!(
            err.message,
            "creating the user mapping failed (SQLSTATE none; details withheld: the statement holds a password)"
        );
    }
}
