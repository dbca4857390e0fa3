//! Step 11: deletes the indices the aliases pointed at before (never one an alias points at).

#![recursion_limit = "256"]

use refresh_functions::steps::{search, DeleteIndicesInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: DeleteIndicesInput| async move {
        input.check()?;
        let environment = input.params.as_ref().map(|p| p.environment);
        let client = search(&ctx, environment).await?;
        let deleted = refresh_core::es::delete_indices(&client, &input.indices).await?;
        tracing::info!(deleted = ?deleted.deleted, missing = ?deleted.missing, "old indices deleted");
        Ok(deleted)
    })
    .await
}
