//! Step 3 with `skip_copy`: the set-based tag filter over the existing temp table.

#![recursion_limit = "256"]

use refresh_core::pg::connect::pool;
use refresh_core::pg::filter::{refilter_tags, RefilterRequest};
use refresh_functions::steps::{secrets, tag_filter, ParamsInput, TagsFiltered};
use refresh_functions::{run, Context};
use secrecy::ExposeSecret;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: ParamsInput| async move {
        let params = &input.params;
        let secrets = secrets(&ctx, Some(params.environment)).await?;
        let request = RefilterRequest::new(params.media_type, tag_filter(&ctx)?);
        let pool = pool(secrets.api_db_url.expose_secret(), request.parallelism)?;
        let rows_changed = refilter_tags(&pool, &request).await?;
        tracing::info!(media = %params.media_type, rows_changed, "tags re-filtered");
        Ok(TagsFiltered { rows_changed })
    })
    .await
}
