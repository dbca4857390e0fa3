//! Step 7c: one poll of the filtered reindex task; an error when it completed with failures.

use super::params::{environment_of, optional_checked_params};
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::{StepError, StepResult};
use refresh_core::es::TaskStatus;
use refresh_core::input::RefreshParams;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `{task_id, params?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetEsTaskInput {
    pub task_id: String,
    #[serde(default, deserialize_with = "optional_checked_params")]
    pub params: Option<RefreshParams>,
}

pub fn parse(payload: Value) -> StepResult<GetEsTaskInput> {
    parse_input(payload)
}

pub async fn handle(ctx: Arc<Context>, input: GetEsTaskInput) -> StepResult<TaskStatus> {
    let client = ctx.search(environment_of(&input.params)).await?;
    let task = refresh_core::es::get_task(&client, &input.task_id).await?;
    tracing::info!(task_id = %task.task_id, completed = task.completed, created = task.created, total = task.total, failures = task.failures, "filtered reindex progress");
    if task.completed && !task.succeeded() {
        return Err(StepError::invalid_state(format!(
            "filtered reindex task {} completed with {} failures{}: {}",
            task.task_id,
            task.failures,
            task.error
                .as_deref()
                .map(|e| format!(" (error: {e})"))
                .unwrap_or_default(),
            task.first_failures.join(" | ")
        )));
    }
    Ok(task)
}
