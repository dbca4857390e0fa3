//! Step 0: `ConcurrencyConflict` while an earlier conflicting execution is running.

#![recursion_limit = "256"]

use refresh_core::concurrency::check_concurrency;
use refresh_functions::sfn::SfnExecutionLister;
use refresh_functions::steps::concurrency::CheckConcurrencyInput;
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(
        |ctx: Arc<Context>, input: CheckConcurrencyInput| async move {
            let scope = input.scope()?;
            let lister = SfnExecutionLister::from_config(&ctx.aws);
            check_concurrency(
                &lister,
                &input.execution_id,
                &scope,
                input.params.allow_concurrent,
                &input.watched(),
            )
            .await?;
            Ok(serde_json::json!({}))
        },
    )
    .await
}
