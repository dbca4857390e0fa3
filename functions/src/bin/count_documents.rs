//! Steps 1 and 12: total and per-source document counts behind an alias or index.

#![recursion_limit = "256"]

use refresh_functions::steps::{search, CountDocumentsInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: CountDocumentsInput| async move {
        let environment = input.params.as_ref().map(|p| p.environment);
        let client = search(&ctx, environment).await?;
        let counts = refresh_core::es::count_documents(&client, &input.alias_or_index).await?;
        tracing::info!(alias_or_index = %input.alias_or_index, total = counts.total, sources = counts.by_source.len(), "documents counted");
        Ok(counts)
    })
    .await
}
