//! The bootstrap of every step's Lambda function: `REFRESH_STEP` chooses the handler.

#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    refresh_functions::runtime::run().await
}
