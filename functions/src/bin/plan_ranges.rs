//! Step 5 (plan): splits the temp table's `[min(id), max(id)]` into one disjoint, covering
//! range per worker of the environment.

#![recursion_limit = "256"]

use refresh_core::pg::counts::{id_span, row_count, MediaTable};
use refresh_functions::steps::{api_db, plan_ranges, secrets, ParamsInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: ParamsInput| async move {
        let params = &input.params;
        let secrets = secrets(&ctx, Some(params.environment)).await?;
        let db = api_db(&secrets).await?;
        let span = id_span(&db, params.media_type, MediaTable::Temp).await?;
        let rows = row_count(&db, params.media_type, MediaTable::Temp).await?;
        let plan = plan_ranges(span, rows, params.worker_count)?;
        tracing::info!(media = %params.media_type, rows, ranges = plan.ranges.len(), "ranges planned");
        Ok(plan)
    })
    .await
}
