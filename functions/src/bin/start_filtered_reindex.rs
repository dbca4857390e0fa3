//! Step 7: starts the async, sliced, throttled `_reindex` into `<media>-<suffix>-filtered` that
//! leaves out documents with a sensitive term.

#![recursion_limit = "256"]

use refresh_core::es::{load_sensitive_terms, start_filtered_reindex, ReindexOptions, Slices};
use refresh_functions::steps::{search, sensitive_terms_url, StartFilteredReindexInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(
        |ctx: Arc<Context>, input: StartFilteredReindexInput| async move {
            let params = &input.params;
            let terms = load_sensitive_terms(sensitive_terms_url(&ctx)?).await?;
            let options = ReindexOptions {
                requests_per_second: Some(ctx.config.search.reindex_throttle_rps),
                slices: Slices::Auto,
            };
            let client = search(&ctx, Some(params.environment)).await?;
            let started = start_filtered_reindex(
                &client,
                &input.source_index,
                &params.new_filtered_index,
                &terms,
                &options,
            )
            .await?;
            Ok(started)
        },
    )
    .await
}
