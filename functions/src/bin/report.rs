//! Step 12: totals and per-source deltas; the execution's output.

#![recursion_limit = "256"]

use refresh_core::error::StepResult;
use refresh_functions::steps::report::{compare, RefreshReport};
use refresh_functions::steps::ReportInput;
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|_ctx: Arc<Context>, input: ReportInput| async move {
        let (delta, by_source) = compare(&input.before, &input.after);
        let report = RefreshReport {
            media_type: input.params.media_type.to_string(),
            environment: input.params.environment.to_string(),
            new_index: input.params.new_index.clone(),
            total_before: input.before.total,
            total_after: input.after.total,
            delta,
            by_source,
        };
        tracing::info!(report = ?report, "data refresh finished");
        StepResult::Ok(report)
    })
    .await
}
