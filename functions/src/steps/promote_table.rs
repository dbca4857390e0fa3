//! Step 9: swaps the temp table in, in one transaction. Foreign keys of referencing tables come
//! back `NOT VALID` (`foreign_keys_not_valid` > 0): the worker's `validate_foreign_keys` SQL
//! job deletes their orphans and validates them afterwards.

use super::params::ParamsInput;
use crate::context::api_db;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::pg::promote::{promote_table, PromotionReport};
use serde_json::Value;
use std::sync::Arc;

pub fn parse(payload: Value) -> StepResult<ParamsInput> {
    ParamsInput::parse(payload)
}

pub async fn handle(ctx: Arc<Context>, input: ParamsInput) -> StepResult<PromotionReport> {
    let secrets = ctx.secrets(Some(input.params.environment)).await?;
    let mut api = api_db(&secrets).await?;
    let report = promote_table(&mut api, input.params.media_type).await?;
    tracing::info!(
        rows = report.rows,
        foreign_keys_repointed = report.foreign_keys_repointed,
        orphans_deleted = report.orphans_deleted,
        foreign_keys_not_valid = report.foreign_keys_not_valid,
        "table promoted"
    );
    Ok(report)
}
