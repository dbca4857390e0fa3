//! Command line, tuning knobs and secrets (environment or Secrets Manager).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use refresh_core::config::vars::REFRESH_SECRET_ID;
use refresh_core::error::StepError;
use refresh_core::es::{SearchSettings, SettingError};
use refresh_core::pg::job::SessionSafeguards;
use refresh_core::settings::CatalogFdw;
use refresh_core::worker_api::MAX_SQL_PARALLELISM;
use secrecy::ExposeSecret;

use crate::bulk::BulkConfig;
use crate::pipeline::PipelineConfig;
use crate::sql_task::SqlConfig;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "indexer-worker",
    about = "Reindexes id ranges of a temp table into Elasticsearch"
)]
pub struct Cli {
    /// Address and port the HTTP API listens on (the instance's private IP on EC2).
    #[arg(long, env = "WORKER_BIND", default_value = "0.0.0.0:8003")]
    pub bind: SocketAddr,

    /// Stop the process after this many seconds without a running task (0 = never).
    #[arg(long, env = "IDLE_SHUTDOWN_SECS", default_value_t = 0)]
    pub idle_shutdown_secs: u64,

    /// On SIGTERM, how long running bulk requests may take to finish before the task is
    /// recorded as interrupted anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,

    /// The sensitive-terms list (file path or http(s) URL, one term a line), read once per
    /// dual-write task: documents with one of its terms stay out of the filtered index. The
    /// same location as the Lambdas' `SENSITIVE_TERMS_URL` (the filtered `_reindex` reads it).
    #[arg(long, env = "SENSITIVE_TERMS_URL")]
    pub sensitive_terms_url: Option<String>,

    /// Rows fetched from PostgreSQL per keyset page.
    #[arg(long, env = "PAGE_ROWS", default_value_t = 5_000)]
    pub page_rows: u32,

    /// A bulk request is cut at this many documents…
    #[arg(long, env = "BULK_MAX_DOCS", default_value_t = 2_000)]
    pub bulk_max_docs: usize,

    /// …or at this many bytes of NDJSON, whichever comes first.
    #[arg(long, env = "BULK_MAX_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub bulk_max_bytes: usize,

    /// Bulk requests in flight at once.
    #[arg(long, env = "BULK_IN_FLIGHT", default_value_t = 4)]
    pub bulk_in_flight: usize,

    /// Attempts per bulk request (and per failed item) before giving up.
    #[arg(long, env = "BULK_MAX_ATTEMPTS", default_value_t = 8)]
    pub bulk_max_attempts: u32,

    /// First retry delay in milliseconds; doubles each attempt.
    #[arg(long, env = "BULK_RETRY_BASE_MS", default_value_t = 500)]
    pub bulk_retry_base_ms: u64,

    /// Longest retry delay in milliseconds.
    #[arg(long, env = "BULK_RETRY_MAX_MS", default_value_t = 30_000)]
    pub bulk_retry_max_ms: u64,

    /// Timeout of one bulk request, in seconds.
    #[arg(long, env = "BULK_TIMEOUT_SECS", default_value_t = 120)]
    pub bulk_timeout_secs: u64,

    /// SQL tasks: index builds a `reapply` job runs at once when its request does not say
    /// (each on its own database session; at most 16).
    #[arg(long, env = "SQL_PARALLELISM", default_value_t = 4)]
    pub sql_parallelism: u32,

    /// SQL tasks: `client_connection_check_interval` of the job sessions, in seconds: how
    /// soon a backend notices a killed worker and aborts its statement.
    #[arg(long, env = "SQL_CLIENT_CHECK_SECS", default_value_t = 5)]
    pub sql_client_check_secs: u64,

    /// SQL tasks: TCP keepalive idle time of the job sessions (server and client side), in
    /// seconds: how soon a vanished instance's sessions start being probed.
    #[arg(long, env = "SQL_KEEPALIVE_IDLE_SECS", default_value_t = 30)]
    pub sql_keepalive_idle_secs: u64,

    /// SQL tasks: seconds between keepalive probes; the peer is dead after 3 unanswered.
    #[arg(long, env = "SQL_KEEPALIVE_INTERVAL_SECS", default_value_t = 10)]
    pub sql_keepalive_interval_secs: u64,
}

impl Cli {
    pub fn bulk_config(&self) -> BulkConfig {
        BulkConfig {
            max_docs: self.bulk_max_docs.max(1),
            max_bytes: self.bulk_max_bytes.max(1),
            in_flight: self.bulk_in_flight.max(1),
            max_attempts: self.bulk_max_attempts.max(1),
            retry_base: Duration::from_millis(self.bulk_retry_base_ms),
            retry_max: Duration::from_millis(self.bulk_retry_max_ms.max(self.bulk_retry_base_ms)),
            request_timeout: Duration::from_secs(self.bulk_timeout_secs.max(1)),
        }
    }

    pub fn pipeline_config(&self) -> PipelineConfig {
        PipelineConfig {
            page_rows: self.page_rows.max(1),
            bulk: self.bulk_config(),
        }
    }

    pub fn sql_config(&self) -> SqlConfig {
        SqlConfig {
            default_parallelism: self.sql_parallelism.clamp(1, MAX_SQL_PARALLELISM),
            safeguards: SessionSafeguards {
                client_check_interval: Duration::from_secs(self.sql_client_check_secs.max(1)),
                keepalive_idle: Duration::from_secs(self.sql_keepalive_idle_secs.max(1)),
                keepalive_interval: Duration::from_secs(self.sql_keepalive_interval_secs.max(1)),
                keepalive_count: 3,
            },
        }
    }

    pub fn idle_shutdown(&self) -> Option<Duration> {
        (self.idle_shutdown_secs > 0).then(|| Duration::from_secs(self.idle_shutdown_secs))
    }
}

/// What the worker must keep secret. `Debug` is redacted so it can never reach a log.
#[derive(Clone)]
pub struct Secrets {
    pub api_db_url: String,
    /// The cluster and how to reach it: the refresh secret's `es_url`, `es_auth` and
    /// `es_ca_cert`, validated by refresh-core exactly as for the Lambdas.
    pub es: SearchSettings,
    pub worker_token: String,
    /// For the audio `finish_copy` job's audioset copy only: from the secret's `catalog_fdw`,
    /// or `CATALOG_FDW` (the same JSON object) for a worker started without a secret.
    pub catalog_fdw: Option<CatalogFdw>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { <redacted> }")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "missing configuration: set {0} (or REFRESH_SECRET_ID to read it from Secrets Manager)"
    )]
    Missing(&'static str),
    /// Reading or parsing the secret failed; the message names its id, never its value.
    #[error(transparent)]
    Secret(#[from] StepError),
    /// `ES_URL` is not an http(s) URL; the reason never quotes it.
    #[error("ES_URL {}", .0.reason)]
    EsUrl(SettingError),
    #[error("WORKER_TOKEN must not be empty")]
    EmptyToken,
    /// The message names the field, never a value.
    #[error("CATALOG_FDW is not a valid catalog_fdw object: {0}")]
    BadCatalogFdw(String),
}

/// `CATALOG_FDW`: `{host, port, dbname, user, password}`. A parse error names what is wrong
/// but never echoes the value (it holds a password).
pub fn parse_catalog_fdw(json: &str) -> Result<CatalogFdw, ConfigError> {
    serde_json::from_str(json).map_err(|e| {
        let detail = e.to_string();
        let reason = if detail.starts_with("missing field") || detail.starts_with("unknown field") {
            detail
                .split(" at line")
                .next()
                .unwrap_or_default()
                .to_string()
        } else {
            "not JSON of that shape".to_string()
        };
        ConfigError::BadCatalogFdw(reason)
    })
}

impl Secrets {
    /// Environment variables win; whatever they leave unset comes from the secret named by
    /// `REFRESH_SECRET_ID`, when that is set.
    pub async fn load() -> Result<Secrets, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut shared = None;
        if ["API_DB_URL", "ES_URL", "WORKER_TOKEN", "CATALOG_FDW"]
            .iter()
            .any(|name| env(name).is_none())
        {
            if let Some(secret_id) = env(REFRESH_SECRET_ID) {
                let aws = aws_config::load_from_env().await;
                shared = Some(refresh_core::secrets::load_secret(&aws, &secret_id).await?);
            }
        }
        Secrets::resolve(env, shared.as_ref())
    }

    /// Merges the environment (`env`) with the refresh secret (`shared`). The Elasticsearch
    /// settings come whole from one side: `ES_URL` alone (a URL, for local runs and tests), or
    /// the secret's `es_url` with its `es_auth` / `es_ca_cert` — never a mix, so an API key or
    /// CA can only come from the secret and always goes with the URL it was written for.
    pub fn resolve(
        env: impl Fn(&str) -> Option<String>,
        shared: Option<&refresh_core::settings::Secrets>,
    ) -> Result<Secrets, ConfigError> {
        let es = match env("ES_URL") {
            Some(url) => SearchSettings::from_url(&url).map_err(ConfigError::EsUrl)?,
            None => shared
                .map(|s| s.es.clone())
                .ok_or(ConfigError::Missing("ES_URL"))?,
        };
        let api_db_url = env("API_DB_URL")
            .or_else(|| shared.map(|s| s.api_db_url.expose_secret().to_string()))
            .ok_or(ConfigError::Missing("API_DB_URL"))?;
        let worker_token = env("WORKER_TOKEN")
            .or_else(|| shared.map(|s| s.worker_token().to_string()))
            .ok_or(ConfigError::Missing("WORKER_TOKEN"))?;
        if worker_token.trim().is_empty() {
            return Err(ConfigError::EmptyToken);
        }
        // Only the audio audioset copy (a SQL task) needs it.
        let catalog_fdw = match env("CATALOG_FDW") {
            Some(json) => Some(parse_catalog_fdw(&json)?),
            None => shared.map(|s| s.catalog_fdw.clone()),
        };
        Ok(Secrets {
            api_db_url,
            es,
            worker_token,
            catalog_fdw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SHARED: &str = r#"{
        "api_db_url": "postgres://api:db-pa55@db.internal/api",
        "catalog_db_url": "postgres://cat:cat-pa55@catalog.internal/openledger",
        "es_url": "https://es.internal:9243",
        "es_auth": {"api_key_id": "key-id", "api_key": "key-secret"},
        "worker_token": "tok-123",
        "catalog_fdw": {"host": "c", "port": 5432, "dbname": "d", "user": "u", "password": "p"}
    }"#;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn the_secret_gives_the_same_elasticsearch_settings_as_the_lambdas_get() {
        let shared = refresh_core::settings::Secrets::from_json(SHARED).unwrap();
        let secrets = Secrets::resolve(env(&[]), Some(&shared)).unwrap();
        assert_eq!(secrets.es.to_string(), shared.es.to_string());
        assert_eq!(secrets.es.to_string(), "https://es.internal:9243 (api key)");
        assert_eq!(secrets.api_db_url, "postgres://api:db-pa55@db.internal/api");
        assert_eq!(secrets.worker_token, "tok-123");
        let debug = format!("{secrets:?}");
        assert!(
            !debug.contains("key-secret") && !debug.contains("pa55"),
            "{debug}"
        );
    }

    #[test]
    fn es_url_in_the_environment_replaces_the_whole_elasticsearch_setting() {
        let shared = refresh_core::settings::Secrets::from_json(SHARED).unwrap();
        let secrets = Secrets::resolve(
            env(&[("ES_URL", "http://127.0.0.1:19200"), ("WORKER_TOKEN", "t")]),
            Some(&shared),
        )
        .unwrap();
        // No API key or CA carried over to a URL they were not written for.
        assert_eq!(secrets.es.to_string(), "http://127.0.0.1:19200");
        assert_eq!(secrets.worker_token, "t");

        let err = Secrets::resolve(
            env(&[
                ("ES_URL", "ftp://u:hunter2@h"),
                ("API_DB_URL", "x"),
                ("WORKER_TOKEN", "t"),
            ]),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ES_URL must start with http:// or https://"
        );
    }

    #[test]
    fn missing_values_are_named() {
        let err =
            Secrets::resolve(env(&[("API_DB_URL", "x"), ("WORKER_TOKEN", "t")]), None).unwrap_err();
        assert!(err.to_string().contains("set ES_URL"), "{err}");
        let err = Secrets::resolve(
            env(&[
                ("ES_URL", "http://h:1"),
                ("API_DB_URL", "x"),
                ("WORKER_TOKEN", " "),
            ]),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::EmptyToken));
    }
    #[test]
    fn sql_settings_have_their_documented_defaults_and_bounds() {
        let cli = Cli::parse_from(["indexer-worker"]);
        let sql = cli.sql_config();
        assert_eq!(sql.default_parallelism, 4);
        assert_eq!(sql.safeguards, SessionSafeguards::default());
        let cli = Cli::parse_from([
            "indexer-worker",
            "--sql-parallelism",
            "64",
            "--sql-client-check-secs",
            "0",
        ]);
        let sql = cli.sql_config();
        assert_eq!(sql.default_parallelism, MAX_SQL_PARALLELISM);
        assert_eq!(sql.safeguards.client_check_interval, Duration::from_secs(1));
    }

    #[test]
    fn catalog_fdw_errors_never_echo_the_password() {
        let good =
            r#"{"host": "h", "port": 5432, "dbname": "d", "user": "u", "password": "hunter2"}"#;
        assert_eq!(parse_catalog_fdw(good).unwrap().port, 5432);
        for bad in [
            r#"{"host": "h", "port": "hunter2", "dbname": "d", "user": "u", "password": "hunter2"}"#,
            r#"{"host": "h", "dbname": "d", "user": "u", "password": "hunter2"}"#,
            r#"{"host": "h", "port": 1, "dbname": "d", "user": "u", "password": "hunter2", "x": 1}"#,
            "hunter2",
        ] {
            let message = parse_catalog_fdw(bad).unwrap_err().to_string();
            assert!(message.starts_with("CATALOG_FDW"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
