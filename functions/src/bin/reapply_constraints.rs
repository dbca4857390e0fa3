//! Step 8: the live table's indexes and constraints, recreated on the temp table.

#![recursion_limit = "256"]

use refresh_core::pg::promote::reapply_constraints_until;
use refresh_functions::steps::{api_db, secrets, ParamsInput};
use refresh_functions::{run, Context};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Index builds stop starting after this, leaving a Lambda (15 min) room to finish the one in
/// flight; the report then says `done: false` and a second call continues.
const TIME_BUDGET: Duration = Duration::from_secs(600);

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: ParamsInput| async move {
        let deadline = Instant::now() + TIME_BUDGET;
        let secrets = secrets(&ctx, Some(input.params.environment)).await?;
        let api = api_db(&secrets).await?;
        let report =
            reapply_constraints_until(&api, input.params.media_type, Some(deadline)).await?;
        tracing::info!(
            indexes = report.indexes.len(),
            constraints = report.constraints.len(),
            done = report.done,
            "constraints reapplied"
        );
        Ok(report)
    })
    .await
}
