//! Step 12a: the drop guard, before anything is promoted.

use super::params::checked_params;
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::guard::{check_record_drop, DropReport};
use refresh_core::input::RefreshParams;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `{params, before: {total}, new_index}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRecordDropInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub before: BeforeTotal,
    pub new_index: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeforeTotal {
    pub total: u64,
}

pub fn parse(payload: Value) -> StepResult<CheckRecordDropInput> {
    parse_input(payload)
}

pub async fn handle(ctx: Arc<Context>, input: CheckRecordDropInput) -> StepResult<DropReport> {
    let params = &input.params;
    let client = ctx.search(Some(params.environment)).await?;
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
}
