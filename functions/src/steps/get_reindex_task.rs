//! Step 5d: one poll of a worker's task; fails as `WorkerTaskFailed` when the task ended
//! with an error or with documents it could not index.

use super::params::checked_params;
use crate::runtime::{parse_input, StepFailure};
use crate::worker_client::{evaluate, task_for_range, TaskProgress, WorkerClient};
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::input::RefreshParams;
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

/// `{ip, task_id, params}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetReindexTaskInput {
    pub ip: IpAddr,
    pub task_id: String,
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
}

pub fn parse(payload: Value) -> StepResult<GetReindexTaskInput> {
    parse_input(payload)
}

pub async fn handle(
    ctx: Arc<Context>,
    input: GetReindexTaskInput,
) -> Result<TaskProgress, StepFailure> {
    let secrets = ctx.secrets(Some(input.params.environment)).await?;
    let worker = WorkerClient::new(input.ip, ctx.config.worker_port, Some(secrets.worker_token))?;
    let status = worker.task_status(&input.task_id).await?;
    tracing::info!(worker = %input.ip, task_id = %status.task_id, progress = status.progress, rows_processed = status.rows_processed, rows_total = status.rows_total, indexed = status.indexed, failed = status.failed, rows_per_second = status.rows_per_second, "reindex progress");
    // The input carries no range: check the task reads this run's table into its index.
    let expected = task_for_range(&input.params, status.start_id, status.end_id);
    evaluate(status, &expected)
}
