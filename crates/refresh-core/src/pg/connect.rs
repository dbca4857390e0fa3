//! Connecting to PostgreSQL and classifying its errors for Retry/Catch.
//!
//! Connection strings carry passwords: they are parsed here and never appear in an error or
//! a log line. Connection errors name only the host and database.

use crate::error::{ErrorKind, StepError, StepResult};
use std::error::Error as _;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, Config, NoTls, Socket};

/// Parses a `postgres://` URL (or key=value string) without ever echoing it.
pub fn parse_url(url: &str) -> StepResult<Config> {
    url.parse::<Config>().map_err(|_| {
        StepError::new(
            ErrorKind::Configuration,
            "the database connection string is not a valid PostgreSQL URL (value not shown)",
        )
    })
}

/// `host:port/dbname` of a configuration: what a message may say about a connection.
pub fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("(default)");
    format!("{host}:{port}/{db}")
}

/// Connects without TLS (the local stack and the VPC-internal API DB). The connection task is
/// spawned on the current tokio runtime and ends when the client is dropped.
pub async fn connect(url: &str) -> StepResult<Client> {
    connect_with_tls(&parse_url(url)?, NoTls).await
}

/// The TLS seam: pass a `postgres-native-tls` / `tokio-postgres-rustls` connector here when a
/// deployment needs TLS; nothing else changes.
pub async fn connect_with_tls<T>(config: &Config, tls: T) -> StepResult<Client>
where
    T: MakeTlsConnect<Socket> + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let target = describe(config);
    let (client, connection) = config.connect(tls).await.map_err(|e| {
        let err = StepError::from(e);
        StepError::new(err.kind, format!("connecting to {target}: {}", err.message))
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(target_db = %target, error = %StepError::from(e), "PostgreSQL connection ended with an error");
        }
    });
    Ok(client)
}

/// A small connection pool (for the parallel tag re-filter).
pub fn pool(url: &str, size: usize) -> StepResult<deadpool_postgres::Pool> {
    let config = parse_url(url)?;
    let manager = deadpool_postgres::Manager::new(config, NoTls);
    deadpool_postgres::Pool::builder(manager)
        .max_size(size.max(1))
        .build()
        .map_err(|e| {
            StepError::new(
                ErrorKind::Internal,
                format!("building the connection pool: {e}"),
            )
        })
}

/// Whether a PostgreSQL error may pass on retry: lost or refused connections, I/O errors,
/// SQLSTATE classes 08 (connection) and 53 (insufficient resources), server shutdown /
/// restart (57P01–57P03), serialization failures (40001) and deadlocks (40P01).
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
            || *code == SqlState::T_R_DEADLOCK_DETECTED;
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

impl From<tokio_postgres::Error> for StepError {
    fn from(err: tokio_postgres::Error) -> Self {
        let kind = if is_transient(&err) {
            ErrorKind::TransientDatabase
        } else {
            ErrorKind::Internal
        };
        // The server's message and SQLSTATE; the detail is left out because it can quote row
        // values. tokio-postgres never includes the connection string in its errors.
        let message = match err.as_db_error() {
            Some(db) => format!("PostgreSQL error {}: {}", db.code().code(), db.message()),
            None => match err.source() {
                Some(source) => format!("PostgreSQL client error: {err}: {source}"),
                None => format!("PostgreSQL client error: {err}"),
            },
        };
        StepError::new(kind, message)
    }
}

/// Adds what was being done to a PostgreSQL error, keeping its kind.
pub trait PgResultExt<T> {
    fn context(self, what: &str) -> StepResult<T>;
}

impl<T> PgResultExt<T> for Result<T, tokio_postgres::Error> {
    fn context(self, what: &str) -> StepResult<T> {
        self.map_err(|e| {
            let err = StepError::from(e);
            StepError::new(err.kind, format!("{what}: {}", err.message))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_url_is_a_configuration_error_without_the_value() {
        let err = parse_url("postgres://user:s3cret@host:notaport/db").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration);
        assert!(!err.message.contains("s3cret"));
    }

    #[test]
    fn describe_names_host_and_database_only() {
        let config = parse_url("postgres://user:s3cret@db.internal:6543/openledger").unwrap();
        let d = describe(&config);
        assert_eq!(d, "db.internal:6543/openledger");
    }

    #[tokio::test]
    async fn refused_connection_is_transient_and_hides_the_password() {
        // Port 1 on loopback: nothing listens there.
        let err = connect("postgres://user:s3cret@127.0.0.1:1/db?connect_timeout=2")
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::TransientDatabase, "{}", err.message);
        assert!(err.message.contains("127.0.0.1:1/db"), "{}", err.message);
        assert!(!err.message.contains("s3cret"), "{}", err.message);
    }
}
