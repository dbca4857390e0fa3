//! Step 9: swaps the temp table in, in one transaction.

#![recursion_limit = "256"]

use refresh_functions::steps::{api_db, secrets, ParamsInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: ParamsInput| async move {
        let secrets = secrets(&ctx, Some(input.params.environment)).await?;
        let mut api = api_db(&secrets).await?;
        let report =
            refresh_core::pg::promote::promote_table(&mut api, input.params.media_type).await?;
        tracing::info!(
            rows = report.rows,
            foreign_keys_repointed = report.foreign_keys_repointed,
            orphans_deleted = report.orphans_deleted,
            "table promoted"
        );
        Ok(report)
    })
    .await
}
