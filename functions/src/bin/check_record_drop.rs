//! Step 12 guard: `RecordDropTooLarge` when the new index holds too few documents.

#![recursion_limit = "256"]

use refresh_core::guard::check_record_drop;
use refresh_functions::steps::{search, CheckRecordDropInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(
        |ctx: Arc<Context>, input: CheckRecordDropInput| async move {
            let params = &input.params;
            let client = search(&ctx, Some(params.environment)).await?;
            let after = refresh_core::es::count_documents(&client, &input.new_index).await?;
            let report = check_record_drop(
                input.before.total,
                after.total,
                params.max_record_drop_pct,
                params.override_record_drop,
            )?;
            tracing::info!(
                before = report.before,
                after = report.after,
                drop_pct = report.drop_pct,
                "record drop checked"
            );
            Ok(report)
        },
    )
    .await
}
