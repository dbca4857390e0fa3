//! Step 6: refresh, restore the serving replicas and refresh interval, report health.

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
    let search_config = &ctx.config.search;
    refresh_core::es::finish_index(
        &client,
        &input.index,
        search_config.serving_replicas,
        &search_config.serving_refresh_interval,
    )
    .await
}
