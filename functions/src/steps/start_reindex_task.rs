//! Step 5c: `POST /task` on a worker for one range of the temp table — or, with `sql`, a
//! long SQL job (`finish_copy`, `reapply`, `validate_foreign_keys`) that must not run on the
//! Lambda clock. The state machine launches, polls (get_reindex_task) and always terminates
//! the worker the same way for both.

use super::params::checked_params;
use crate::runtime::{parse_input, StepFailure};
use crate::worker_client::{sql_task, task_for_range, WorkerClient};
use crate::Context;
use refresh_core::error::{StepError, StepResult};
use refresh_core::input::RefreshParams;
use refresh_core::ranges::PlannedRange;
use refresh_core::worker_api::{SqlJob, MAX_SQL_PARALLELISM};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

/// `{ip, params, range}` (`range`: the Map item) or `{ip, params, sql: {job, parallelism?}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartReindexTaskInput {
    pub ip: IpAddr,
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    #[serde(default)]
    pub range: Option<PlannedRange>,
    #[serde(default)]
    pub sql: Option<SqlTaskInput>,
}

/// Which SQL job to start on the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlTaskInput {
    pub job: SqlJob,
    /// Index builds at once (`reapply` only, 1..=16); the worker's `SQL_PARALLELISM` when absent.
    #[serde(default)]
    pub parallelism: Option<u32>,
}

/// start_reindex_task's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedTask {
    pub task_id: String,
}

pub fn parse(payload: Value) -> StepResult<StartReindexTaskInput> {
    let input: StartReindexTaskInput = parse_input(payload)?;
    match (&input.range, &input.sql) {
        (Some(_), None) => {}
        (None, Some(sql)) => check_sql(sql)?,
        (Some(_), Some(_)) => {
            return Err(StepError::invalid_input(
                "step input: give either `range` (a reindex) or `sql` (a SQL job), not both",
            ))
        }
        (None, None) => {
            return Err(StepError::invalid_input(
                "step input: missing `range` (a reindex) or `sql` (a SQL job)",
            ))
        }
    }
    Ok(input)
}

/// The worker refuses these too; refused here so the state machine's input error is named
/// before an instance is used.
fn check_sql(sql: &SqlTaskInput) -> StepResult<()> {
    match (sql.job, sql.parallelism) {
        (_, None) => Ok(()),
        (SqlJob::Reapply, Some(n)) if (1..=MAX_SQL_PARALLELISM).contains(&n) => Ok(()),
        (SqlJob::Reapply, Some(n)) => Err(StepError::invalid_input(format!(
            "step input at `sql.parallelism`: {n} is out of range 1..={MAX_SQL_PARALLELISM}"
        ))),
        (job, Some(_)) => Err(StepError::invalid_input(format!(
            "step input at `sql.parallelism`: applies to the reapply job only, not to {job}"
        ))),
    }
}

pub async fn handle(
    ctx: Arc<Context>,
    input: StartReindexTaskInput,
) -> Result<StartedTask, StepFailure> {
    let secrets = ctx.secrets(Some(input.params.environment)).await?;
    let worker = WorkerClient::new(input.ip, ctx.config.worker_port, Some(secrets.worker_token))?;
    let started = match (&input.range, &input.sql) {
        (Some(range), _) => {
            let request = task_for_range(&input.params, range.start_id, range.end_id);
            let started = worker.start_task(&request).await?;
            tracing::info!(worker = %input.ip, range = range.range_index, task_id = %started.task_id, "reindex task started");
            started
        }
        (None, Some(sql)) => {
            let request = sql_task(&input.params, sql.job, sql.parallelism);
            let started = worker.start_task(&request).await?;
            tracing::info!(worker = %input.ip, job = %sql.job, parallelism = ?sql.parallelism, task_id = %started.task_id, "SQL task started");
            started
        }
        (None, None) => {
            return Err(StepError::invalid_input("step input: missing `range` or `sql`").into())
        }
    };
    Ok(StartedTask {
        task_id: started.task_id,
    })
}
