//! Command line, tuning knobs and secrets (environment or Secrets Manager).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use refresh_core::config::vars::REFRESH_SECRET_ID;
use refresh_core::error::StepError;
use secrecy::ExposeSecret;

use crate::bulk::BulkConfig;
use crate::pipeline::PipelineConfig;

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

    pub fn idle_shutdown(&self) -> Option<Duration> {
        (self.idle_shutdown_secs > 0).then(|| Duration::from_secs(self.idle_shutdown_secs))
    }
}

/// What the worker must keep secret. `Debug` is redacted so it can never reach a log.
#[derive(Clone)]
pub struct Secrets {
    pub api_db_url: String,
    pub es_url: String,
    pub worker_token: String,
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
    #[error("WORKER_TOKEN must not be empty")]
    EmptyToken,
}

impl Secrets {
    /// Environment variables win; whatever they leave unset comes from the secret named by
    /// `REFRESH_SECRET_ID`, when that is set.
    pub async fn load() -> Result<Secrets, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut api_db_url = env("API_DB_URL");
        let mut es_url = env("ES_URL");
        let mut worker_token = env("WORKER_TOKEN");
        if api_db_url.is_none() || es_url.is_none() || worker_token.is_none() {
            if let Some(secret_id) = env(REFRESH_SECRET_ID) {
                let aws = aws_config::load_from_env().await;
                let shared = refresh_core::secrets::load_secret(&aws, &secret_id).await?;
                api_db_url = api_db_url.or(Some(shared.api_db_url.expose_secret().to_string()));
                es_url = es_url.or(Some(shared.es_url.expose_secret().to_string()));
                worker_token = worker_token.or(Some(shared.worker_token().to_string()));
            }
        }
        let secrets = Secrets {
            api_db_url: api_db_url.ok_or(ConfigError::Missing("API_DB_URL"))?,
            es_url: es_url.ok_or(ConfigError::Missing("ES_URL"))?,
            worker_token: worker_token.ok_or(ConfigError::Missing("WORKER_TOKEN"))?,
        };
        if secrets.worker_token.trim().is_empty() {
            return Err(ConfigError::EmptyToken);
        }
        Ok(secrets)
    }
}
