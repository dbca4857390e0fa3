//! Long SQL jobs: the statements that can outlive a Lambda (index and constraint builds,
//! foreign-key validation, `ANALYZE`, the temp table's primary key, the audioset copy), run by
//! the indexer worker on sessions it holds for as long as they take.
//!
//! - [`connect_job_session`]: a session whose statements die with their client. Nothing here
//!   relies on a backend finishing work for a client that is gone: a killed worker's builds
//!   are rolled back and the job is simply run again ([`SessionSafeguards`]).
//! - [`JobProgress`]: statements planned / done / failed and the ones running now, for the
//!   worker's task status.
//! - [`run_statement`]: one statement, cancelled on the server (`CancelToken`) when the job's
//!   [`CancellationToken`] fires.

use crate::error::{ErrorKind, StepError, StepResult};
use crate::pg::connect::{describe, parse_url};
use crate::pg::error::pg_error;
use crate::worker_api::RunningStatement;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

pub use tokio_util::sync::CancellationToken;

/// How a job session's backend notices that its client is gone, so a killed worker leaves no
/// statement running in the database.
///
/// - `client_check_interval` → `client_connection_check_interval` (PostgreSQL 14+): while a
///   statement runs, the backend polls its socket this often and aborts the statement once the
///   peer closed it. A killed process's sockets are closed by its kernel, so this catches
///   `kill -9` within one interval.
/// - `keepalive_*` → the server's `tcp_keepalives_idle/interval/count`: when the instance
///   itself vanishes (terminated, network cut), no FIN ever arrives; keepalive probes find the
///   dead peer after idle + interval × count, and the next connection check aborts the
///   statement. The same values are set on the client's socket, so the worker notices a lost
///   server too.
///
/// Both are session settings (`SET`), independent of `statement_timeout`, which job sessions
/// set to 0: an index build may rightly take hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSafeguards {
    pub client_check_interval: Duration,
    pub keepalive_idle: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_count: u32,
}

impl Default for SessionSafeguards {
    fn default() -> Self {
        SessionSafeguards {
            client_check_interval: Duration::from_secs(5),
            keepalive_idle: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(10),
            keepalive_count: 3,
        }
    }
}

/// How long a cancelled statement may take to stop before the job gives up waiting for it
/// (its session is then dropped, which the connection check turns into an abort).
const CANCEL_GRACE: Duration = Duration::from_secs(30);
/// Longest statement text a status shows.
const MAX_STATEMENT_CHARS: usize = 300;

/// Opens a job session on `url` with the [`SessionSafeguards`] in place. Errors name the
/// host and database only.
pub async fn connect_job_session(url: &str, safeguards: &SessionSafeguards) -> StepResult<Client> {
    let mut config = parse_url(url)?;
    config
        .keepalives(true)
        .keepalives_idle(safeguards.keepalive_idle.max(Duration::from_secs(1)))
        .keepalives_interval(safeguards.keepalive_interval.max(Duration::from_secs(1)))
        .keepalives_retries(safeguards.keepalive_count.max(1));
    let client = crate::pg::connect::connect_with_tls(&config, NoTls).await?;
    let target = describe(&config);
    let settings = [
        ("statement_timeout", "0".to_string()),
        ("idle_in_transaction_session_timeout", "0".to_string()),
        (
            "tcp_keepalives_idle",
            safeguards.keepalive_idle.as_secs().max(1).to_string(),
        ),
        (
            "tcp_keepalives_interval",
            safeguards.keepalive_interval.as_secs().max(1).to_string(),
        ),
        (
            "tcp_keepalives_count",
            safeguards.keepalive_count.max(1).to_string(),
        ),
        (
            "client_connection_check_interval",
            format!("{}ms", safeguards.client_check_interval.as_millis().max(1)),
        ),
    ];
    for (name, value) in settings {
        let sql = format!("SET {name} = '{value}'");
        if let Err(e) = client.batch_execute(&sql).await {
            // Before PostgreSQL 14 there is no connection check: keepalives still end the
            // backend's statement once the socket is found dead.
            if e.code() == Some(&SqlState::UNDEFINED_OBJECT) {
                tracing::warn!(setting = name, db = %target, "PostgreSQL does not know this setting; a killed worker's statements may run on until they next write to their socket");
                continue;
            }
            return Err(pg_error(
                &format!("setting {name} on a job session to {target}"),
                e,
            ));
        }
    }
    Ok(client)
}

#[derive(Debug)]
struct Running {
    what: String,
    statement: String,
    started: Instant,
}

#[derive(Debug, Default)]
struct ProgressInner {
    total: u64,
    done: u64,
    failed: u64,
    next_id: u64,
    running: BTreeMap<u64, Running>,
    waiting: Option<String>,
}

/// What a job has planned, done and is doing; shared between the job and status requests.
#[derive(Debug, Default)]
pub struct JobProgress {
    inner: Mutex<ProgressInner>,
}

/// A point-in-time copy of [`JobProgress`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressSnapshot {
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub running: Vec<RunningStatement>,
    pub waiting: Option<String>,
}

impl JobProgress {
    fn inner(&self) -> MutexGuard<'_, ProgressInner> {
        // Counters only: a panic elsewhere cannot leave them in a state worth losing the status over.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `statements` to the total the job expects to run.
    pub fn plan(&self, statements: usize) {
        self.inner().total += statements as u64;
    }

    /// Says what the job waits for (`None`: no longer waiting).
    pub fn waiting(&self, what: Option<String>) {
        self.inner().waiting = what;
    }

    fn start(&self, what: &str, statement: &str) -> u64 {
        let mut inner = self.inner();
        let id = inner.next_id;
        inner.next_id += 1;
        // A statement run outside the plan still counts, so done never exceeds total.
        if inner.done + inner.failed + inner.running.len() as u64 >= inner.total {
            inner.total += 1;
        }
        inner.running.insert(
            id,
            Running {
                what: what.to_string(),
                statement: shorten(statement),
                started: Instant::now(),
            },
        );
        id
    }

    fn finish(&self, id: u64, ok: bool) {
        let mut inner = self.inner();
        if inner.running.remove(&id).is_some() {
            if ok {
                inner.done += 1;
            } else {
                inner.failed += 1;
            }
        }
    }

    pub fn snapshot(&self) -> ProgressSnapshot {
        let inner = self.inner();
        ProgressSnapshot {
            total: inner.total,
            done: inner.done,
            failed: inner.failed,
            running: inner
                .running
                .values()
                .map(|r| RunningStatement {
                    what: r.what.clone(),
                    statement: r.statement.clone(),
                    seconds: (r.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                })
                .collect(),
            waiting: inner.waiting.clone(),
        }
    }
}

fn shorten(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX_STATEMENT_CHARS {
        flat
    } else {
        let head: String = flat.chars().take(MAX_STATEMENT_CHARS).collect();
        format!("{head}…")
    }
}

/// The error of a job stopped by its cancellation token (task cancelled or worker shutting
/// down). Transient: running the job again continues where it stopped.
pub fn cancelled(what: &str) -> StepError {
    StepError::new(
        ErrorKind::TransientDatabase,
        format!("cancelled while {what}: the task was cancelled or the worker is shutting down"),
    )
}

/// Runs one statement (no parameters; DDL, `DELETE`, `ANALYZE`) on `client`, recorded in
/// `progress`; returns the rows it touched. Its text is shown in the task status and logged:
/// never pass a statement that holds a secret (the FDW user mapping goes through `pg::fdw`). When `cancel` fires, the server is asked to cancel
/// it (`CancelToken`, a separate connection), and the statement's own answer is awaited.
pub async fn run_statement(
    client: &Client,
    what: &str,
    sql: &str,
    progress: &JobProgress,
    cancel: &CancellationToken,
) -> StepResult<u64> {
    if cancel.is_cancelled() {
        return Err(cancelled(what));
    }
    let id = progress.start(what, sql);
    tracing::info!(statement = %sql, "{what}");
    let started = Instant::now();
    let running = client.execute(sql, &[]);
    tokio::pin!(running);
    let result = tokio::select! {
        result = &mut running => result,
        _ = cancel.cancelled() => {
            if let Err(e) = client.cancel_token().cancel_query(NoTls).await {
                tracing::warn!(error = %StepError::from(e), "{what}: the cancel request failed; dropping the session instead");
            }
            match tokio::time::timeout(CANCEL_GRACE, &mut running).await {
                Ok(result) => result,
                Err(_) => {
                    progress.finish(id, false);
                    return Err(cancelled(what));
                }
            }
        }
    };
    progress.finish(id, result.is_ok());
    match result {
        Ok(rows) => {
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                rows,
                "done: {what}"
            );
            Ok(rows)
        }
        Err(e) if cancel.is_cancelled() && e.code() == Some(&SqlState::QUERY_CANCELED) => {
            Err(cancelled(what))
        }
        Err(e) => Err(pg_error(what, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_planned_running_and_finished_statements() {
        let progress = JobProgress::default();
        progress.plan(2);
        let a = progress.start("a", "CREATE INDEX a\n   ON t USING btree (x)");
        let b = progress.start("b", &"x".repeat(1000));
        let snap = progress.snapshot();
        assert_eq!((snap.total, snap.done, snap.failed), (2, 0, 0));
        assert_eq!(snap.running.len(), 2);
        assert_eq!(
            snap.running[0].statement,
            "CREATE INDEX a ON t USING btree (x)"
        );
        assert!(snap.running[1].statement.chars().count() <= MAX_STATEMENT_CHARS + 1);
        progress.finish(a, true);
        progress.finish(b, false);
        progress.finish(b, true); // a second finish changes nothing
                                  // An unplanned statement grows the total.
        let c = progress.start("c", "ANALYZE t");
        progress.finish(c, true);
        let snap = progress.snapshot();
        assert_eq!((snap.total, snap.done, snap.failed), (3, 2, 1));
        assert!(snap.running.is_empty());
        progress.waiting(Some("another build".into()));
        assert_eq!(
            progress.snapshot().waiting.as_deref(),
            Some("another build")
        );
    }

    #[test]
    fn cancellation_is_transient() {
        let e = cancelled("building x");
        assert_eq!(e.kind, ErrorKind::TransientDatabase);
        assert!(e.message.starts_with("cancelled while building x"));
    }
}
