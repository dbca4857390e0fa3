//! Step 6b: the index's health, polled by the state machine until it can go live.

use super::params::{environment_of, IndexInput};
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::es::IndexHealth;
use serde_json::Value;
use std::sync::Arc;

pub fn parse(payload: Value) -> StepResult<IndexInput> {
    IndexInput::parse(payload)
}

pub async fn handle(ctx: Arc<Context>, input: IndexInput) -> StepResult<IndexHealth> {
    let client = ctx.search(environment_of(&input.params)).await?;
    let health = refresh_core::es::index_health(&client, &input.index, None).await?;
    tracing::info!(index = %health.index, status = %health.status, unassigned = health.unassigned_shards, "index health");
    Ok(health)
}
