//! Step 5c: `POST /task` on a worker for one range of the temp table.

use super::params::checked_params;
use crate::runtime::{parse_input, StepFailure};
use crate::worker_client::{task_for_range, WorkerClient};
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::input::RefreshParams;
use refresh_core::ranges::PlannedRange;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

/// `{ip, params, range}`: `range` is the Map item.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartReindexTaskInput {
    pub ip: IpAddr,
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub range: PlannedRange,
}

/// start_reindex_task's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedTask {
    pub task_id: String,
}

pub fn parse(payload: Value) -> StepResult<StartReindexTaskInput> {
    parse_input(payload)
}

pub async fn handle(
    ctx: Arc<Context>,
    input: StartReindexTaskInput,
) -> Result<StartedTask, StepFailure> {
    let secrets = ctx.secrets(Some(input.params.environment)).await?;
    let worker = WorkerClient::new(input.ip, ctx.config.worker_port, Some(secrets.worker_token))?;
    let request = task_for_range(&input.params, input.range.start_id, input.range.end_id);
    let started = worker.start_task(&request).await?;
    tracing::info!(worker = %input.ip, range = input.range.range_index, task_id = %started.task_id, "reindex task started");
    Ok(StartedTask {
        task_id: started.task_id,
    })
}
