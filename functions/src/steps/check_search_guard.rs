//! Step 12c: the search guard, before anything is promoted: representative queries against
//! the new index and the live one (`SearchGuardFailed` names each query that falls short).

use super::params::ParamsInput;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::es::{check_search_guard, SearchGuardReport};
use serde_json::Value;
use std::sync::Arc;

pub fn parse(payload: Value) -> StepResult<ParamsInput> {
    ParamsInput::parse(payload)
}

pub async fn handle(ctx: Arc<Context>, input: ParamsInput) -> StepResult<SearchGuardReport> {
    let params = &input.params;
    let client = ctx.search(Some(params.environment)).await?;
    let report = check_search_guard(
        &client,
        &ctx.config.search.search_guard,
        params.media_type,
        params.media_type.alias(),
        &params.new_index,
        params.override_search_guard,
    )
    .await?;
    tracing::info!(
        ran = report.ran,
        queries = report.queries.len(),
        overridden = report.overridden,
        "search guard checked"
    );
    Ok(report)
}
