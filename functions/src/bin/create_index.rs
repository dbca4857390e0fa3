//! Steps 4 and 7: creates `<media>-<suffix>` (or its `-filtered` twin) with loading settings.

#![recursion_limit = "256"]

use refresh_functions::steps::{search, shards, CreateIndexInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: CreateIndexInput| async move {
        let params = &input.params;
        let name = if input.filtered {
            &params.new_filtered_index
        } else {
            &params.new_index
        };
        let client = search(&ctx, Some(params.environment)).await?;
        let created = refresh_core::es::create_index(
            &client,
            params.media_type,
            name,
            shards(&ctx, params.media_type),
        )
        .await?;
        Ok(created)
    })
    .await
}
