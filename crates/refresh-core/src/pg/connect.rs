//! Connecting to PostgreSQL. Errors are mapped by `pg::error`.
//!
//! Connection strings carry passwords: they are parsed here and never appear in an error or
//! a log line. Connection errors name only the host and database.

use crate::error::{ErrorKind, StepError, StepResult};
use crate::pg::error::pg_error;
use tokio_postgres::config::Host;
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
    let (client, connection) = config
        .connect(tls)
        .await
        .map_err(|e| pg_error(&format!("connecting to {target}"), e))?;
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
