//! Step 6: the index's health; the state machine waits for `healthy` before promotion.

#![recursion_limit = "256"]

use refresh_functions::steps::{search, IndexInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: IndexInput| async move {
        let environment = input.params.as_ref().map(|p| p.environment);
        let client = search(&ctx, environment).await?;
        let health = refresh_core::es::index_health(&client, &input.index, None).await?;
        tracing::info!(index = %health.index, status = %health.status, unassigned = health.unassigned_shards, "index health");
        Ok(health)
    })
    .await
}
