//! HTTP client for the indexer worker (docs/ARCHITECTURE.md "Indexer worker HTTP API"), used by
//! check_worker, start_reindex_task and get_reindex_task (which start and poll both kinds of
//! worker task: a reindex range and a SQL job).
//!
//! The bearer token is sent on every call but `/healthcheck` and never appears in an error or
//! a log line: messages name the worker by `ip:port` and quote only the worker's own answer.

use crate::runtime::StepFailure;
use refresh_core::error::{ErrorKind, StepError};
use refresh_core::input::{FilteredIndexMode, RefreshParams};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A booting worker must not hold the health check for long: the state machine polls again.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// A status poll survives this many network blips before the attempt counts as failed.
const STATUS_ATTEMPTS: u32 = 3;
const STATUS_RETRY_DELAY: Duration = Duration::from_secs(2);
/// Longest piece of a worker answer quoted in an error.
const MAX_QUOTED_CHARS: usize = 500;

pub use refresh_core::worker_api::{
    AnyTaskStatus, SqlJob, SqlTaskRequest, SqlTaskStatus, TaskRequest,
    TaskStatus as WorkerTaskStatus,
};

/// Index rows `start_id..=end_id` of the temp table into the new index (and, in dual-write
/// mode, the clean ones into the new filtered index in the same pass).
pub fn task_for_range(params: &RefreshParams, start_id: i64, end_id: i64) -> TaskRequest {
    TaskRequest {
        model_name: params.media_type.as_str().to_string(),
        table_name: params.temp_table.clone(),
        target_index: params.new_index.clone(),
        start_id,
        end_id,
        filtered_index: (params.filtered_index == FilteredIndexMode::DualWrite)
            .then(|| params.new_filtered_index.clone()),
    }
}

/// `POST /task` answer (202).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStarted {
    pub message: String,
    pub task_id: String,
    pub status_check: String,
}

/// Run `job` on the temp (or live) table of this run's media type; `parallelism` index builds
/// at once (`reapply` only; the worker's default when `None`).
pub fn sql_task(params: &RefreshParams, job: SqlJob, parallelism: Option<u32>) -> SqlTaskRequest {
    SqlTaskRequest::new(job, params.media_type.as_str(), parallelism)
}

/// get_reindex_task's output for a reindex: the worker's status plus `done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskProgress {
    #[serde(flatten)]
    pub status: WorkerTaskStatus,
    pub done: bool,
}

/// get_reindex_task's output for a SQL task: the worker's status plus `done`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlTaskProgress {
    #[serde(flatten)]
    pub status: SqlTaskStatus,
    pub done: bool,
}

/// Whether the SQL task is done. A task of another media type or job is refused; one that
/// ended with an error (a failed statement, a cancellation, a foreign key that failed
/// validation) is `WorkerTaskFailed` quoting the worker's error.
pub fn evaluate_sql(
    status: SqlTaskStatus,
    media_type: &str,
    job: Option<SqlJob>,
) -> Result<SqlTaskProgress, StepFailure> {
    if status.media_type != media_type || job.is_some_and(|j| j != status.job) {
        return Err(StepError::invalid_state(format!(
            "worker task {} runs {} of {}, not {} of {media_type}",
            status.task_id,
            status.job,
            status.media_type,
            job.map_or_else(|| "a SQL job".to_string(), |j| j.to_string()),
        ))
        .into());
    }
    if status.active {
        return Ok(SqlTaskProgress {
            status,
            done: false,
        });
    }
    if let Some(error) = &status.error {
        return Err(StepFailure::worker_task_failed(format!(
            "worker SQL task {} ({} of {}) ended with error: {}; {} of {} statement(s) done, {} failed",
            status.task_id,
            status.job,
            status.media_type,
            quote(error),
            status.statements_done,
            status.statements_total,
            status.statements_failed
        )));
    }
    Ok(SqlTaskProgress { status, done: true })
}

/// Whether the task is done. A task of another range, one that ended with an error, or one
/// that finished with documents it could not index is a failure, never a silent success.
pub fn evaluate(
    status: WorkerTaskStatus,
    expected: &TaskRequest,
) -> Result<TaskProgress, StepFailure> {
    if status.target_index != expected.target_index
        || status.table_name != expected.table_name
        || status.start_id != expected.start_id
        || status.end_id != expected.end_id
        || status.filtered_index != expected.filtered_index
    {
        return Err(StepError::invalid_state(format!(
            "worker task {} indexes {} ids {}..={} into {}, not {} ids {}..={} into {}",
            status.task_id,
            status.table_name,
            status.start_id,
            status.end_id,
            status.target_index,
            expected.table_name,
            expected.start_id,
            expected.end_id,
            expected.target_index
        ))
        .into());
    }
    if status.active {
        return Ok(TaskProgress {
            status,
            done: false,
        });
    }
    let dual_write_settled = status.filtered_indexed + status.sensitive == status.indexed;
    let reason = match (&status.error, status.failed + status.filtered_failed) {
        (Some(error), _) => Some(format!("ended with error: {}", quote(error))),
        (None, failed) if failed > 0 => Some(format!(
            "could not index {failed} documents ({} into the main index, {} into the filtered one)",
            status.failed, status.filtered_failed
        )),
        (None, _) if status.filtered_index.is_some() && !dual_write_settled => Some(format!(
            "wrote {} documents to {} and left out {} sensitive ones, which is not the {} indexed",
            status.filtered_indexed,
            status.filtered_index.as_deref().unwrap_or_default(),
            status.sensitive,
            status.indexed
        )),
        (None, _) => None,
    };
    if let Some(reason) = reason {
        let mut message = format!(
            "worker task {} ({} ids {}..={} into {}) {reason}; {} indexed, {} failed",
            status.task_id,
            status.table_name,
            status.start_id,
            status.end_id,
            status.target_index,
            status.indexed,
            status.failed
        );
        if !status.first_errors.is_empty() {
            let first: Vec<String> = status
                .first_errors
                .iter()
                .take(3)
                .map(|e| quote(e))
                .collect();
            message.push_str(&format!("; first errors: {}", first.join(" | ")));
        }
        return Err(StepFailure::worker_task_failed(message));
    }
    Ok(TaskProgress { status, done: true })
}

/// A client for the worker at `ip:port`.
#[derive(Clone)]
pub struct WorkerClient {
    http: reqwest::Client,
    address: SocketAddr,
    token: Option<SecretString>,
}

impl std::fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerClient")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl WorkerClient {
    /// `token` may be `None` only for the health check, which needs none.
    pub fn new(ip: IpAddr, port: u16, token: Option<SecretString>) -> Result<Self, StepFailure> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // Workers are reached on their private address only: never follow elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                StepError::new(
                    ErrorKind::Internal,
                    format!("building the HTTP client: {e}"),
                )
            })?;
        Ok(WorkerClient {
            http,
            address: SocketAddr::new(ip, port),
            token,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn bearer(&self) -> Result<&str, StepFailure> {
        self.token
            .as_ref()
            .map(|t| t.expose_secret())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                StepError::new(
                    ErrorKind::Configuration,
                    "the refresh secret has an empty worker_token",
                )
                .into()
            })
    }

    /// `GET /healthcheck` answered 2xx. Refused connections, timeouts and errors are `false`:
    /// a booting worker is simply not healthy yet.
    pub async fn is_healthy(&self) -> bool {
        match self
            .http
            .get(self.url("/healthcheck"))
            .timeout(HEALTH_TIMEOUT)
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => true,
            Ok(response) => {
                tracing::info!(worker = %self.address, status = response.status().as_u16(), "worker not healthy yet");
                false
            }
            Err(e) => {
                tracing::info!(worker = %self.address, error = %e.without_url(), "worker not answering yet");
                false
            }
        }
    }

    /// `POST /task` of either kind ([`TaskRequest`], [`SqlTaskRequest`]). A worker that does
    /// not answer, is shutting down or busy with another task is `WorkerNotReady`.
    pub async fn start_task(
        &self,
        request: &(impl Serialize + Sync),
    ) -> Result<TaskStarted, StepFailure> {
        let response = self
            .http
            .post(self.url("/task"))
            .bearer_auth(self.bearer()?)
            .json(request)
            .send()
            .await
            .map_err(|e| {
                StepFailure::worker_not_ready(format!(
                    "worker {} did not take the task: {}",
                    self.address,
                    e.without_url()
                ))
            })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&body).map_err(|e| {
                StepError::new(
                    ErrorKind::Internal,
                    format!(
                        "worker {} answered POST /task with unexpected JSON: {e}",
                        self.address
                    ),
                )
                .into()
            });
        }
        Err(self.http_failure("POST /task", status, &body))
    }

    /// `GET /task/{id}` of either kind, retried a few times over network blips.
    pub async fn task_status(&self, task_id: &str) -> Result<AnyTaskStatus, StepFailure> {
        check_task_id(task_id)?;
        let url = self.url(&format!("/task/{task_id}"));
        let mut attempt = 1;
        loop {
            let sent = self.http.get(&url).bearer_auth(self.bearer()?).send().await;
            let retryable = match sent {
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    if status.is_success() {
                        return serde_json::from_str(&body)
                            .and_then(AnyTaskStatus::from_value)
                            .map_err(|e| {
                            StepError::new(
                                ErrorKind::Internal,
                                format!(
                                    "worker {} answered GET /task/{task_id} with unexpected JSON: {e}",
                                    self.address
                                ),
                            )
                            .into()
                        });
                    }
                    if !status.is_server_error() {
                        return Err(self.http_failure(
                            &format!("GET /task/{task_id}"),
                            status,
                            &body,
                        ));
                    }
                    format!("HTTP {}: {}", status.as_u16(), quote(&body))
                }
                Err(e) => e.without_url().to_string(),
            };
            if attempt >= STATUS_ATTEMPTS {
                return Err(StepFailure::worker_task_failed(format!(
                    "worker {} stopped answering about task {task_id} ({attempt} attempts): {retryable}",
                    self.address
                )));
            }
            tracing::warn!(worker = %self.address, task_id, attempt, error = %retryable, "task status poll failed; retrying");
            tokio::time::sleep(STATUS_RETRY_DELAY * attempt).await;
            attempt += 1;
        }
    }

    fn http_failure(&self, call: &str, status: reqwest::StatusCode, body: &str) -> StepFailure {
        let what = format!(
            "worker {} answered {call} with HTTP {}: {}",
            self.address,
            status.as_u16(),
            worker_message(body)
        );
        match status.as_u16() {
            401 | 403 => StepError::new(
                ErrorKind::Configuration,
                format!("{what} (the worker refused this secret's worker_token)"),
            )
            .into(),
            400 => StepError::invalid_input(what).into(),
            404 => StepError::invalid_state(what).into(),
            409 | 503 => StepFailure::worker_not_ready(what),
            _ => StepError::new(ErrorKind::Internal, what).into(),
        }
    }
}

/// Task ids go into a URL path: the worker's ids are hex; refuse anything that could
/// address another path.
pub fn check_task_id(task_id: &str) -> Result<(), StepError> {
    let ok = !task_id.is_empty()
        && task_id.len() <= 128
        && task_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StepError::invalid_input(format!(
            "task_id: {:?} is not a worker task id",
            quote(task_id)
        )))
    }
}

/// The `message` of a worker's JSON error answer, else the (shortened) body.
fn worker_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .map(|m| quote(&m))
        .unwrap_or_else(|| quote(body))
}

fn quote(text: &str) -> String {
    if text.chars().count() <= MAX_QUOTED_CHARS {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX_QUOTED_CHARS).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expected() -> TaskRequest {
        TaskRequest {
            model_name: "image".into(),
            table_name: "temp_import_image".into(),
            target_index: "image-init".into(),
            start_id: 1,
            end_id: 500,
            filtered_index: None,
        }
    }

    fn status(active: bool, error: Option<&str>, failed: u64) -> WorkerTaskStatus {
        serde_json::from_value(json!({
            "task_id": "abc123", "active": active, "model": "image", "target_index": "image-init",
            "table_name": "temp_import_image", "start_id": 1, "end_id": 500, "progress": 40.0,
            "rows_total": 500, "rows_processed": 200, "indexed": 190, "skipped": 10,
            "failed": failed, "rows_per_second": 100.5, "start_time": "2026-03-02T00:00:00Z",
            "finish_time": null, "error": error, "first_errors": ["doc 7: mapper_parsing_exception"]
        }))
        .unwrap()
    }

    #[test]
    fn running_task_is_not_done_and_finished_task_is() {
        assert!(!evaluate(status(true, None, 0), &expected()).unwrap().done);
        let done = evaluate(status(false, None, 0), &expected()).unwrap();
        assert!(done.done);
        let out = serde_json::to_value(&done).unwrap();
        assert_eq!(out["done"], json!(true));
        assert_eq!(out["task_id"], json!("abc123"));
        assert_eq!(out["rows_processed"], json!(200));
    }

    #[test]
    fn task_with_error_or_failed_documents_is_worker_task_failed() {
        let err = evaluate(status(false, Some("bulk rejected"), 3), &expected()).unwrap_err();
        assert_eq!(err.name, "WorkerTaskFailed");
        assert!(err.message.contains("bulk rejected"), "{}", err.message);
        assert!(
            err.message.contains("mapper_parsing_exception"),
            "{}",
            err.message
        );
        let err = evaluate(status(false, None, 2), &expected()).unwrap_err();
        assert_eq!(err.name, "WorkerTaskFailed");
        assert!(err.message.contains("2 documents"), "{}", err.message);
    }

    #[test]
    fn a_dual_write_task_must_account_for_every_document_in_both_indices() {
        let dual = TaskRequest {
            filtered_index: Some("image-init-filtered".into()),
            ..expected()
        };
        let with = |filtered_indexed, sensitive, filtered_failed| {
            let mut s = status(false, None, 0);
            s.filtered_index = Some("image-init-filtered".into());
            (s.filtered_indexed, s.sensitive, s.filtered_failed) =
                (filtered_indexed, sensitive, filtered_failed);
            evaluate(s, &dual)
        };
        assert!(with(185, 5, 0).unwrap().done);
        let err = with(180, 5, 0).unwrap_err();
        assert_eq!(err.name, "WorkerTaskFailed");
        assert!(
            err.message
                .contains("wrote 180 documents to image-init-filtered and left out 5"),
            "{}",
            err.message
        );
        let err = with(184, 5, 1).unwrap_err();
        assert!(
            err.message.contains("1 into the filtered one"),
            "{}",
            err.message
        );
        // A worker that wrote the main index only did not do what was asked.
        let err = evaluate(status(false, None, 0), &dual).unwrap_err();
        assert_eq!(err.name, "InvalidState");
    }

    #[test]
    fn task_of_another_range_is_refused() {
        let mut other = status(false, None, 0);
        other.end_id = 499;
        let err = evaluate(other, &expected()).unwrap_err();
        assert_eq!(err.name, "InvalidState");
    }

    fn sql_status(active: bool, error: Option<&str>) -> SqlTaskStatus {
        serde_json::from_value(json!({
            "task_id": "s1", "kind": "sql", "active": active, "job": "reapply",
            "media_type": "image", "table_name": "temp_import_image", "parallelism": 4,
            "statements_total": 20, "statements_done": 7, "statements_failed": 1,
            "running": [{"what": "building x", "statement": "CREATE INDEX x", "seconds": 3.5}],
            "waiting": null, "elapsed_seconds": 12.0, "start_time": "2026-03-02T00:00:00Z",
            "finish_time": null, "error": error, "result": null
        }))
        .unwrap()
    }

    #[test]
    fn sql_tasks_are_polled_until_done_and_their_errors_fail_the_step() {
        let running = evaluate_sql(sql_status(true, None), "image", Some(SqlJob::Reapply)).unwrap();
        assert!(!running.done);
        let out = serde_json::to_value(&running).unwrap();
        assert_eq!(out["statements_done"], json!(7));
        assert_eq!(out["running"][0]["what"], json!("building x"));
        assert!(
            evaluate_sql(sql_status(false, None), "image", None)
                .unwrap()
                .done
        );
        let err = evaluate_sql(
            sql_status(
                false,
                Some("PostgreSQL error 23505: could not create unique index"),
            ),
            "image",
            Some(SqlJob::Reapply),
        )
        .unwrap_err();
        assert_eq!(err.name, "WorkerTaskFailed");
        assert!(
            err.message.contains("23505") && err.message.contains("7 of 20"),
            "{}",
            err.message
        );
        for (media, job) in [
            ("audio", None),
            ("image", Some(SqlJob::ValidateForeignKeys)),
        ] {
            let err = evaluate_sql(sql_status(false, None), media, job).unwrap_err();
            assert_eq!(err.name, "InvalidState", "{media} {job:?}");
        }
        let request = sql_task(
            &serde_json::from_value(json!({
                "media_type": "audio", "environment": "staging", "index_suffix": "x",
                "new_index": "audio-x", "new_filtered_index": "audio-x-filtered",
                "temp_table": "temp_import_audio", "skip_copy": false, "allow_concurrent": false,
                "wait_if_busy": false, "max_record_drop_pct": 10.0, "override_record_drop": false,
                "row_limit": null, "worker_count": 1, "launch_template": "lt"
            }))
            .unwrap(),
            SqlJob::Reapply,
            Some(2),
        );
        assert_eq!(
            serde_json::to_value(request).unwrap(),
            json!({"kind": "sql", "job": "reapply", "media_type": "audio", "parallelism": 2})
        );
    }

    #[test]
    fn task_ids_cannot_escape_the_path() {
        check_task_id("4f1c2d3e").unwrap();
        for bad in ["", "../healthcheck", "a/b", "a?b", "a b", &"a".repeat(129)] {
            assert!(check_task_id(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn refused_connection_is_unhealthy_not_an_error() {
        // Port 1 on loopback: nothing listens there.
        let client = WorkerClient::new("127.0.0.1".parse().unwrap(), 1, None).unwrap();
        assert!(!client.is_healthy().await);
    }

    #[tokio::test]
    async fn unreachable_worker_errors_never_carry_the_token() {
        let token = "tok-very-secret-0123456789";
        let client = WorkerClient::new(
            "127.0.0.1".parse().unwrap(),
            1,
            Some(SecretString::from(token.to_string())),
        )
        .unwrap();
        let err = client.start_task(&expected()).await.unwrap_err();
        assert_eq!(err.name, "WorkerNotReady");
        assert!(err.message.contains("127.0.0.1:1"), "{}", err.message);
        assert!(!err.message.contains(token), "{}", err.message);
        assert!(!format!("{client:?}").contains(token));
    }

    #[tokio::test]
    async fn missing_token_is_a_configuration_error() {
        let client = WorkerClient::new("127.0.0.1".parse().unwrap(), 1, None).unwrap();
        let err = client.start_task(&expected()).await.unwrap_err();
        assert_eq!(err.name, "ConfigurationError");
    }
}
