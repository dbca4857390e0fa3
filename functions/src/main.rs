//! The bootstrap of every step's Lambda function: `REFRESH_STEP` chooses the handler.

#![recursion_limit = "256"]

use refresh_functions::runtime;
use refresh_functions::steps::Step;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let step = Step::from_env();
    runtime::run(step.map(|step| move |context, payload| step.invoke(context, payload))).await
}
