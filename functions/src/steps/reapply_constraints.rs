//! Step 8 on the Lambda clock: recreates the live table's indexes and constraints on the temp
//! table, one build at a time; stops starting builds near the Lambda limit and reports
//! `done: false` so the machine calls again. A single build longer than the Lambda's 15
//! minutes cannot finish here: production runs step 8 as the worker's `reapply` SQL job
//! (start_reindex_task with `sql`), which builds in parallel without a time limit.

use super::params::ParamsInput;
use crate::context::api_db;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::pg::promote::{reapply_constraints_until, ReapplyReport};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Index builds stop starting after this, leaving a Lambda (15 min) room to finish the one in
/// flight; the report then says `done: false` and a second call continues.
const TIME_BUDGET: Duration = Duration::from_secs(600);

pub fn parse(payload: Value) -> StepResult<ParamsInput> {
    ParamsInput::parse(payload)
}

pub async fn handle(ctx: Arc<Context>, input: ParamsInput) -> StepResult<ReapplyReport> {
    let deadline = Instant::now() + crate::runtime::time_budget(TIME_BUDGET);
    let secrets = ctx.secrets(Some(input.params.environment)).await?;
    let api = api_db(&secrets).await?;
    let report = reapply_constraints_until(&api, input.params.media_type, Some(deadline)).await?;
    tracing::info!(
        indexes = report.indexes.len(),
        constraints = report.constraints.len(),
        done = report.done,
        "constraints reapplied"
    );
    Ok(report)
}
