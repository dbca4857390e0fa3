//! Step 5a: splits the temp table's id span into one numbered range per worker.

use super::params::ParamsInput;
use crate::context::api_db;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::pg::counts::{id_span, row_count, MediaTable};
use refresh_core::ranges::{plan_ranges, RangePlan};
use serde_json::Value;
use std::sync::Arc;

pub fn parse(payload: Value) -> StepResult<ParamsInput> {
    ParamsInput::parse(payload)
}

pub async fn handle(ctx: Arc<Context>, input: ParamsInput) -> StepResult<RangePlan> {
    let params = &input.params;
    let secrets = ctx.secrets(Some(params.environment)).await?;
    let db = api_db(&secrets).await?;
    let span = id_span(&db, params.media_type, MediaTable::Temp).await?;
    let rows = row_count(&db, params.media_type, MediaTable::Temp).await?;
    let plan = plan_ranges(span, rows, params.worker_count)?;
    tracing::info!(media = %params.media_type, rows, ranges = plan.ranges.len(), "ranges planned");
    Ok(plan)
}
