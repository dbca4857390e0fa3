//! Removes what a failed, aborted or timed-out run left: workers, FDW server, unpromoted
//! indices. Called from the state machine's Catch and by the execution status change rule.

#![recursion_limit = "256"]

use refresh_functions::steps::cleanup::{cleanup, parse_cleanup_request};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, payload: serde_json::Value| async move {
        let request = parse_cleanup_request(payload)?;
        cleanup(&ctx, request).await
    })
    .await
}
