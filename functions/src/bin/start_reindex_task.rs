//! Step 5: `POST /task` on a worker for one range of the temp table.

#![recursion_limit = "256"]

use refresh_functions::steps::runner::{run_step, StepFailure};
use refresh_functions::steps::{secrets, StartReindexTaskInput, StartedTask};
use refresh_functions::worker_client::{task_for_range, WorkerClient};
use refresh_functions::Context;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_step(|ctx: Arc<Context>, input: StartReindexTaskInput| async move {
        let secrets = secrets(&ctx, Some(input.params.environment)).await?;
        let worker = WorkerClient::new(input.ip, ctx.config.worker_port, Some(secrets.worker_token))?;
        let request = task_for_range(&input.params, input.range.start_id, input.range.end_id);
        let started = worker.start_task(&request).await?;
        tracing::info!(worker = %input.ip, range = input.range.range_index, task_id = %started.task_id, "reindex task started");
        Ok::<_, StepFailure>(StartedTask {
            task_id: started.task_id,
        })
    })
    .await
}
