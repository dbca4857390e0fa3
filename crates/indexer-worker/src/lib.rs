//! The indexer worker: an HTTP service that reindexes one id range of a temp table.
//!
//! `main.rs` only parses the command line and calls [`run`]; the pieces are here so tests
//! and the benchmark drive the same code.

pub mod api;
pub mod bulk;
pub mod config;
pub mod pipeline;
pub mod request;
pub mod sql_task;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use refresh_core::es::SearchClient;

use crate::api::AppState;
use crate::config::{Cli, Secrets};
use crate::pipeline::Services;
use crate::tasks::TaskRegistry;

/// Why the worker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    Signal,
    Idle,
}

/// Serves until SIGTERM/SIGINT or idle shutdown, then lets running bulk requests finish
/// (up to the grace period) and records every unfinished task as failed.
pub async fn run(cli: Cli, secrets: Secrets) -> anyhow::Result<ExitReason> {
    let pipeline = cli.pipeline_config();
    // Built from the refresh secret's es_url / es_auth / es_ca_cert exactly as the Lambdas
    // build theirs; the bulk requests' own timeout is `pipeline.bulk.request_timeout`.
    let es = SearchClient::from_settings(&secrets.es)?;
    let es_description = secrets.es.to_string();
    let listener = TcpListener::bind(cli.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cli.bind))?;
    let shutdown = CancellationToken::new();
    let state = Arc::new(AppState {
        // Every task's token is a child of the shutdown token: SIGTERM stops reindexes and
        // cancels running SQL statements on the server.
        registry: TaskRegistry::new(shutdown.clone()),
        services: Services {
            db_url: secrets.api_db_url,
            es: es.clone(),
            catalog_fdw: secrets.catalog_fdw,
            sensitive_terms_url: cli
                .sensitive_terms_url
                .clone()
                .filter(|u| !u.trim().is_empty()),
        },
        pipeline,
        sql: cli.sql_config(),
        token: secrets.worker_token,
        shutdown: shutdown.clone(),
        running: TaskTracker::new(),
    });
    tracing::info!(bind = %cli.bind, es = %es_description, idle_shutdown_secs = cli.idle_shutdown_secs, "worker listening");

    let reason = Arc::new(std::sync::Mutex::new(ExitReason::Signal));
    tokio::spawn(wait_for_signal(shutdown.clone()));
    if let Some(idle) = cli.idle_shutdown() {
        tokio::spawn(watch_idle(
            state.clone(),
            idle,
            shutdown.clone(),
            reason.clone(),
        ));
    }

    axum::serve(listener, api::router(state.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;

    state.running.close();
    let grace = Duration::from_secs(cli.shutdown_grace_secs);
    if tokio::time::timeout(grace, state.running.wait())
        .await
        .is_err()
    {
        for task in state.registry.all().iter().filter(|t| t.is_active()) {
            task.finish(Some(format!(
                "worker shut down; work still running after {}s was abandoned (SQL statements end with their sessions)",
                grace.as_secs()
            )));
            match task.status() {
                refresh_core::worker_api::AnyTaskStatus::Reindex(status) => {
                    tracing::error!(task_id = %status.task_id, indexed = status.indexed, failed = status.failed,
                        "task abandoned at shutdown")
                }
                refresh_core::worker_api::AnyTaskStatus::Sql(status) => {
                    tracing::error!(task_id = %status.task_id, job = %status.job, statements_done = status.statements_done,
                        "SQL task abandoned at shutdown")
                }
            }
        }
    }
    let reason = *reason.lock().unwrap_or_else(|p| p.into_inner());
    tracing::info!(?reason, "worker stopped");
    Ok(reason)
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
                    _ = shutdown.cancelled() => return,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                tokio::select! { _ = ctrl_c => {}, _ = shutdown.cancelled() => return }
            }
        }
    }
    #[cfg(not(unix))]
    tokio::select! { _ = ctrl_c => {}, _ = shutdown.cancelled() => return }
    shutdown.cancel();
}

async fn watch_idle(
    state: Arc<AppState>,
    idle: Duration,
    shutdown: CancellationToken,
    reason: Arc<std::sync::Mutex<ExitReason>>,
) {
    let tick = (idle / 10).clamp(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = shutdown.cancelled() => return,
        }
        let idle_for = state.registry.idle_for();
        if idle_for >= idle {
            tracing::info!(
                idle_secs = idle_for.as_secs(),
                "no task for the idle limit: shutting down"
            );
            *reason.lock().unwrap_or_else(|p| p.into_inner()) = ExitReason::Idle;
            shutdown.cancel();
            return;
        }
    }
}
