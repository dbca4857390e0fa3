//! Step 12d: the pre-flight just before the point of no return: everything the alias swap
//! needs (`PromotionNotReady` names what is missing; nothing has been promoted then).

use super::params::ParamsInput;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::es::{promotion_preflight, PreflightReport};
use serde_json::Value;
use std::sync::Arc;

pub fn parse(payload: Value) -> StepResult<ParamsInput> {
    ParamsInput::parse(payload)
}

pub async fn handle(ctx: Arc<Context>, input: ParamsInput) -> StepResult<PreflightReport> {
    let params = &input.params;
    let client = ctx.search(Some(params.environment)).await?;
    let report = promotion_preflight(
        &client,
        [params.media_type.alias(), params.media_type.filtered_alias()],
        &params.new_index,
        &params.new_filtered_index,
    )
    .await?;
    tracing::info!(report = ?report, "promotion pre-flight passed");
    Ok(report)
}
