//! Step 5b: whether a booting worker answers `/healthcheck` yet (never fails on a refused
//! connection: the state machine polls again).

use crate::runtime::{parse_input, StepFailure};
use crate::worker_client::WorkerClient;
use crate::Context;
use refresh_core::error::StepResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

/// `{ip}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckWorkerInput {
    pub ip: IpAddr,
}

/// check_worker's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHealth {
    pub healthy: bool,
}

pub fn parse(payload: Value) -> StepResult<CheckWorkerInput> {
    parse_input(payload)
}

pub async fn handle(ctx: Arc<Context>, input: CheckWorkerInput) -> Result<WorkerHealth, StepFailure> {
    let worker = WorkerClient::new(input.ip, ctx.config.worker_port, None)?;
    Ok(WorkerHealth {
        healthy: worker.is_healthy().await,
    })
}
