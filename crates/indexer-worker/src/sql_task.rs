//! SQL tasks: the statements that can outlive a Lambda, run on this worker's own database
//! sessions for as long as they take (`refresh_core::pg::job`). The jobs are in
//! `refresh_core`; this runs one, records its progress and outcome on the task, and ties it to
//! the task's cancellation token (`DELETE /task/{id}`, SIGTERM).
//!
//! A killed worker takes its statements with it: every session is a job session
//! (`connect_job_session`: `client_connection_check_interval` and TCP keepalives), so the
//! backends abort once they see the client gone, and the job is simply run again on a fresh
//! worker (each job is idempotent).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use refresh_core::error::StepError;
use refresh_core::media::MediaType;
use refresh_core::pg::copy::finish_copy_job;
use refresh_core::pg::job::{connect_job_session, JobProgress, SessionSafeguards};
use refresh_core::pg::promote::{reapply_constraints_on, validate_foreign_keys, ReapplyOptions};
use refresh_core::worker_api::{SqlJob, SqlTaskStatus, TaskKind};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Services;
use crate::tasks::new_task_id;

/// How the worker runs SQL tasks (command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlConfig {
    /// Index builds at once when the request does not say.
    pub default_parallelism: u32,
    pub safeguards: SessionSafeguards,
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig {
            default_parallelism: refresh_core::pg::promote::DEFAULT_REAPPLY_PARALLELISM as u32,
            safeguards: SessionSafeguards::default(),
        }
    }
}

/// A validated SQL task request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlSpec {
    pub job: SqlJob,
    pub media: MediaType,
    /// Index builds at once (1 for the jobs that build none).
    pub parallelism: u32,
}

impl SqlSpec {
    /// The table the job works on.
    pub fn table(&self) -> &'static str {
        match self.job {
            SqlJob::ValidateForeignKeys => self.media.table(),
            SqlJob::FinishCopy | SqlJob::Reapply => self.media.temp_table(),
        }
    }
}

#[derive(Debug, Default)]
struct Outcome {
    finished: Option<(DateTime<Utc>, Instant)>,
    error: Option<String>,
    result: Option<serde_json::Value>,
}

/// One SQL task: its spec, the statements' progress, its outcome.
#[derive(Debug)]
pub struct SqlTask {
    pub id: String,
    pub spec: SqlSpec,
    pub progress: JobProgress,
    /// Fires on `DELETE /task/{id}` and on shutdown (a child of the registry's token).
    pub cancel: CancellationToken,
    cancel_requested: AtomicBool,
    start_time: DateTime<Utc>,
    started: Instant,
    outcome: Mutex<Outcome>,
}

impl SqlTask {
    pub(crate) fn new(spec: SqlSpec, cancel: CancellationToken) -> Self {
        SqlTask {
            id: new_task_id(),
            spec,
            progress: JobProgress::default(),
            cancel,
            cancel_requested: AtomicBool::new(false),
            start_time: Utc::now(),
            started: Instant::now(),
            outcome: Mutex::new(Outcome::default()),
        }
    }

    fn outcome(&self) -> MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_active(&self) -> bool {
        self.outcome().finished.is_none()
    }

    pub(crate) fn request_cancel(&self) {
        self.cancel_requested.store(true, Ordering::Relaxed);
        self.cancel.cancel();
    }

    /// Records the end (first outcome wins): the job's report, and why it failed if it did.
    pub fn finish(&self, result: Option<serde_json::Value>, error: Option<String>) {
        let mut outcome = self.outcome();
        if outcome.finished.is_none() {
            outcome.finished = Some((Utc::now(), Instant::now()));
            outcome.error = error;
            outcome.result = result;
        }
    }

    pub fn status(&self) -> SqlTaskStatus {
        let outcome = self.outcome();
        let progress = self.progress.snapshot();
        let end = outcome
            .finished
            .map(|(_, at)| at)
            .unwrap_or_else(Instant::now);
        SqlTaskStatus {
            task_id: self.id.clone(),
            kind: TaskKind::Sql,
            active: outcome.finished.is_none(),
            job: self.spec.job,
            media_type: self.spec.media.as_str().to_string(),
            table_name: self.spec.table().to_string(),
            parallelism: self.spec.parallelism,
            statements_total: progress.total,
            statements_done: progress.done,
            statements_failed: progress.failed,
            running: progress.running,
            waiting: progress.waiting,
            elapsed_seconds: (end.duration_since(self.started).as_secs_f64() * 10.0).round() / 10.0,
            start_time: self.start_time.to_rfc3339_opts(SecondsFormat::Millis, true),
            finish_time: outcome
                .finished
                .map(|(at, _)| at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            error: outcome.error.clone(),
            result: outcome.result.clone(),
        }
    }
}

/// Runs the job to its end and records the outcome on the task. Never panics on bad data:
/// every failure becomes the task's `error`.
pub async fn run_sql_task(services: Services, config: SqlConfig, task: Arc<SqlTask>) {
    let cancel = task.cancel.clone();
    tracing::info!(task_id = %task.id, job = %task.spec.job, media = %task.spec.media,
        parallelism = task.spec.parallelism, "SQL task started");
    let (result, error) = match run(&services, &config, &task, &cancel).await {
        Ok(done) => done,
        Err(e) => {
            let reason = if cancel.is_cancelled() {
                if task.cancel_requested.load(Ordering::Relaxed) {
                    "task cancelled"
                } else {
                    "worker shut down"
                }
            } else {
                ""
            };
            let message = if reason.is_empty() {
                e.message
            } else {
                format!("{reason}: {}", e.message)
            };
            (None, Some(message))
        }
    };
    task.progress.waiting(None);
    task.finish(result, error);
    let status = task.status();
    match &status.error {
        None => tracing::info!(task_id = %task.id, job = %task.spec.job,
            statements = status.statements_done, seconds = status.elapsed_seconds, "SQL task finished"),
        Some(error) => tracing::error!(task_id = %task.id, job = %task.spec.job,
            statements = status.statements_done, failed = status.statements_failed, %error, "SQL task failed"),
    }
}

type Done = (Option<serde_json::Value>, Option<String>);

async fn run(
    services: &Services,
    config: &SqlConfig,
    task: &SqlTask,
    cancel: &CancellationToken,
) -> Result<Done, StepError> {
    let (spec, progress) = (&task.spec, &task.progress);
    let url = &services.db_url;
    match spec.job {
        SqlJob::FinishCopy => {
            let client = connect_job_session(url, &config.safeguards).await?;
            let report = finish_copy_job(
                &client,
                services.catalog_fdw.as_ref(),
                spec.media,
                progress,
                cancel,
            )
            .await?;
            Ok((Some(to_json(&report)?), None))
        }
        SqlJob::Reapply => {
            let options = ReapplyOptions {
                parallelism: spec.parallelism as usize,
                deadline: None,
                wait_for_other_builds: true,
            };
            let report = reapply_constraints_on(
                url,
                &config.safeguards,
                spec.media,
                &options,
                progress,
                cancel,
            )
            .await?;
            let error = (!report.done).then(|| {
                format!(
                    "the reapply job stopped before building every index of {}",
                    spec.table()
                )
            });
            Ok((Some(to_json(&report)?), error))
        }
        SqlJob::ValidateForeignKeys => {
            let client = connect_job_session(url, &config.safeguards).await?;
            let report = validate_foreign_keys(&client, spec.media, progress, cancel).await?;
            // Promotion stands whatever happens here: the failures are the task's error, each
            // key's outcome is in the result.
            let error = report.failure_summary();
            Ok((Some(to_json(&report)?), error))
        }
    }
}

fn to_json(report: &impl Serialize) -> Result<serde_json::Value, StepError> {
    serde_json::to_value(report).map_err(|e| {
        StepError::new(
            refresh_core::error::ErrorKind::Internal,
            format!("serialising the job's report: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(job: SqlJob) -> SqlSpec {
        SqlSpec {
            job,
            media: MediaType::Audio,
            parallelism: 2,
        }
    }

    #[test]
    fn status_reports_the_job_and_its_outcome() {
        let task = SqlTask::new(spec(SqlJob::Reapply), CancellationToken::new());
        task.progress.plan(3);
        let running = task.status();
        assert!(running.active);
        assert_eq!(running.table_name, "temp_import_audio");
        assert_eq!((running.statements_total, running.statements_done), (3, 0));
        assert_eq!(running.kind, TaskKind::Sql);
        task.finish(
            Some(serde_json::json!({"done": false})),
            Some("PostgreSQL error 57014: canceling statement".into()),
        );
        task.finish(None, None); // first outcome wins
        let done = task.status();
        assert!(!done.active && done.finish_time.is_some());
        assert_eq!(done.result, Some(serde_json::json!({"done": false})));
        assert!(done.error.unwrap().contains("57014"));
        assert_eq!(
            spec(SqlJob::ValidateForeignKeys).table(),
            "audio",
            "validation works on the promoted (live) table"
        );
    }

    #[tokio::test]
    async fn an_unreachable_database_fails_the_task_without_the_url() {
        let services = Services {
            db_url: "postgres://worker:hunter2@127.0.0.1:1/api?connect_timeout=2".into(),
            es: refresh_core::es::SearchClient::new("http://127.0.0.1:1").unwrap(),
            catalog_fdw: None,
            sensitive_terms_url: None,
        };
        for job in SqlJob::ALL {
            let task = Arc::new(SqlTask::new(spec(job), CancellationToken::new()));
            run_sql_task(services.clone(), SqlConfig::default(), task.clone()).await;
            let status = task.status();
            let error = status.error.expect("the task failed");
            assert!(error.contains("127.0.0.1:1/api"), "{job}: {error}");
            assert!(!error.contains("hunter2"), "{job}: {error}");
            assert!(!status.active);
        }
    }
}
