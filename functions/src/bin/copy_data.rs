//! Steps 2-3: copies a share of the catalog into the temp table (tags filtered on the way) and
//! returns a cursor; the state machine calls again until `done`.

#![recursion_limit = "256"]

use refresh_core::pg::copy::{copy_data, CopyRequest};
use refresh_functions::steps::{api_db, secrets, tag_filter, CopyDataInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: CopyDataInput| async move {
        let params = &input.params;
        let secrets = secrets(&ctx, Some(params.environment)).await?;
        let mut api = api_db(&secrets).await?;
        let mut request = CopyRequest::new(params.media_type, params.environment, params.row_limit);
        request.tag_filter = tag_filter(&ctx)?;
        let progress =
            copy_data(&mut api, &secrets.catalog_fdw, &request, input.cursor.as_ref()).await?;
        tracing::info!(media = %params.media_type, rows_copied = progress.rows_copied, rows_scanned = progress.rows_scanned, done = progress.done, "copy progress");
        Ok(progress)
    })
    .await
}
