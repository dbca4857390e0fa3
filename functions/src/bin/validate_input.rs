//! Step 0: validates the execution input and resolves `P` (names, suffix, workers, template).

#![recursion_limit = "256"]

use refresh_core::input::RefreshParams;
use refresh_functions::steps::validate::parse_validate_request;
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, payload: serde_json::Value| async move {
        let request = parse_validate_request(payload)?;
        let params: RefreshParams = request
            .input
            .validate(&ctx.config.defaults, request.start_time)?;
        tracing::info!(execution = %request.execution_id, params = ?params, "input valid");
        Ok(params)
    })
    .await
}
