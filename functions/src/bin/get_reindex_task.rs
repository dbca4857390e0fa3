//! Step 5: `GET /task/{id}` on a worker: its progress plus `done`; `WorkerTaskFailed` when the
//! task ended with an error.

#![recursion_limit = "256"]

use refresh_functions::steps::runner::run_step;
use refresh_functions::steps::{secrets, GetReindexTaskInput};
use refresh_functions::worker_client::{evaluate, task_for_range, WorkerClient};
use refresh_functions::Context;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_step(|ctx: Arc<Context>, input: GetReindexTaskInput| async move {
        let secrets = secrets(&ctx, Some(input.params.environment)).await?;
        let worker = WorkerClient::new(input.ip, ctx.config.worker_port, Some(secrets.worker_token))?;
        let status = worker.task_status(&input.task_id).await?;
        tracing::info!(worker = %input.ip, task_id = %status.task_id, progress = status.progress, rows_processed = status.rows_processed, rows_total = status.rows_total, indexed = status.indexed, failed = status.failed, rows_per_second = status.rows_per_second, "reindex progress");
        // The input carries no range: check the task reads this run's table into its index.
        let expected = task_for_range(&input.params, status.start_id, status.end_id);
        evaluate(status, &expected)
    })
    .await
}
