//! Step 7: progress of the filtered `_reindex` task; an error when it completed with failures.

#![recursion_limit = "256"]

use refresh_core::error::StepError;
use refresh_functions::steps::{search, GetEsTaskInput};
use refresh_functions::{run, Context};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    run(|ctx: Arc<Context>, input: GetEsTaskInput| async move {
        let environment = input.params.as_ref().map(|p| p.environment);
        let client = search(&ctx, environment).await?;
        let task = refresh_core::es::get_task(&client, &input.task_id).await?;
        tracing::info!(task_id = %task.task_id, completed = task.completed, created = task.created, total = task.total, failures = task.failures, "filtered reindex progress");
        if task.completed && !task.succeeded() {
            return Err(StepError::invalid_state(format!(
                "filtered reindex task {} completed with {} failures{}: {}",
                task.task_id,
                task.failures,
                task.error.as_deref().map(|e| format!(" (error: {e})")).unwrap_or_default(),
                task.first_failures.join(" | ")
            )));
        }
        Ok(task)
    })
    .await
}
