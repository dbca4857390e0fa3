//! Step 1: documents behind an alias or in an index, in total and per source (the largest
//! sources that fit the state's budget; the log line has the number of sources).

use super::params::{environment_of, optional_checked_params};
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::input::RefreshParams;
use refresh_core::report::{BoundedCounts, SOURCES_BUDGET_BYTES};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `{alias_or_index, params?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountDocumentsInput {
    pub alias_or_index: String,
    #[serde(default, deserialize_with = "optional_checked_params")]
    pub params: Option<RefreshParams>,
}

pub fn parse(payload: Value) -> StepResult<CountDocumentsInput> {
    parse_input(payload)
}

pub async fn handle(ctx: Arc<Context>, input: CountDocumentsInput) -> StepResult<BoundedCounts> {
    let client = ctx.search(environment_of(&input.params)).await?;
    let counts = refresh_core::es::count_documents(&client, &input.alias_or_index).await?;
    tracing::info!(alias_or_index = %input.alias_or_index, total = counts.total, sources = counts.by_source.len(), "documents counted");
    Ok(BoundedCounts::new(&counts, SOURCES_BUDGET_BYTES))
}
