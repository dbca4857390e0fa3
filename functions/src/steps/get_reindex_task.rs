//! Step 5d: one poll of a worker's task — a reindex range or a SQL job; fails as
//! `WorkerTaskFailed` when the task ended with an error (or, for a reindex, with documents it
//! could not index).

use super::params::checked_params;
use crate::runtime::{parse_input, StepFailure};
use crate::worker_client::{
    evaluate, evaluate_sql, task_for_range, AnyTaskStatus, SqlTaskProgress, TaskProgress,
    WorkerClient,
};
use crate::Context;
use refresh_core::error::{StepError, StepResult};
use refresh_core::input::RefreshParams;
use refresh_core::worker_api::SqlJob;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

/// `{ip, task_id, params, job?}`: `job` (a SQL task's) is checked against the task when given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetReindexTaskInput {
    pub ip: IpAddr,
    pub task_id: String,
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    #[serde(default)]
    pub job: Option<SqlJob>,
}

/// get_reindex_task's output: the worker's status of either kind, plus `done`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PolledTask {
    Reindex(TaskProgress),
    Sql(SqlTaskProgress),
}

pub fn parse(payload: Value) -> StepResult<GetReindexTaskInput> {
    parse_input(payload)
}

pub async fn handle(
    ctx: Arc<Context>,
    input: GetReindexTaskInput,
) -> Result<PolledTask, StepFailure> {
    let secrets = ctx.secrets(Some(input.params.environment)).await?;
    let worker = WorkerClient::new(input.ip, ctx.config.worker_port, Some(secrets.worker_token))?;
    match worker.task_status(&input.task_id).await? {
        AnyTaskStatus::Reindex(status) => {
            if let Some(job) = input.job {
                return Err(StepError::invalid_state(format!(
                    "worker task {} is a reindex, not the SQL job {job}",
                    status.task_id
                ))
                .into());
            }
            tracing::info!(worker = %input.ip, task_id = %status.task_id, progress = status.progress, rows_processed = status.rows_processed, rows_total = status.rows_total, indexed = status.indexed, failed = status.failed, rows_per_second = status.rows_per_second, "reindex progress");
            // The input carries no range: check the task reads this run's table into its index.
            let expected = task_for_range(&input.params, status.start_id, status.end_id);
            evaluate(status, &expected).map(PolledTask::Reindex)
        }
        AnyTaskStatus::Sql(status) => {
            let running: Vec<&str> = status.running.iter().map(|r| r.what.as_str()).collect();
            tracing::info!(worker = %input.ip, task_id = %status.task_id, job = %status.job,
                statements_done = status.statements_done, statements_total = status.statements_total,
                running = ?running, waiting = ?status.waiting, elapsed_seconds = status.elapsed_seconds,
                "SQL task progress");
            evaluate_sql(status, input.params.media_type.as_str(), input.job).map(PolledTask::Sql)
        }
    }
}
