//! Step 6: refresh, restore the serving replicas and refresh interval, report health.

#![recursion_limit = "256"]

use refresh_functions::steps::{search, IndexInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: IndexInput| async move {
        let environment = input.params.as_ref().map(|p| p.environment);
        let client = search(&ctx, environment).await?;
        let search_config = &ctx.config.search;
        let health = refresh_core::es::finish_index(
            &client,
            &input.index,
            search_config.serving_replicas,
            &search_config.serving_refresh_interval,
        )
        .await?;
        Ok(health)
    })
    .await
}
