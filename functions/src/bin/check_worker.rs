//! Step 5: `GET /healthcheck` on a worker; `healthy: false` while it is still booting.

#![recursion_limit = "256"]

use refresh_functions::steps::runner::{run_step, StepFailure};
use refresh_functions::steps::{CheckWorkerInput, WorkerHealth};
use refresh_functions::worker_client::WorkerClient;
use refresh_functions::Context;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run_step(|ctx: Arc<Context>, input: CheckWorkerInput| async move {
        let worker = WorkerClient::new(input.ip, ctx.config.worker_port, None)?;
        let healthy = worker.is_healthy().await;
        Ok::<_, StepFailure>(WorkerHealth { healthy })
    })
    .await
}
