//! Step 7b: starts the sliced, throttled `_reindex` that fills the filtered index.

use super::params::checked_params;
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::es::{
    load_sensitive_terms, start_filtered_reindex, FilteredReindexStarted, ReindexOptions, Slices,
};
use refresh_core::input::RefreshParams;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `{params, source_index}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartFilteredReindexInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub source_index: String,
}

pub fn parse(payload: Value) -> StepResult<StartFilteredReindexInput> {
    parse_input(payload)
}

pub async fn handle(
    ctx: Arc<Context>,
    input: StartFilteredReindexInput,
) -> StepResult<FilteredReindexStarted> {
    let params = &input.params;
    let terms = load_sensitive_terms(ctx.sensitive_terms_url()?).await?;
    let options = ReindexOptions {
        requests_per_second: Some(ctx.config.search.reindex_throttle_rps),
        slices: Slices::Auto,
    };
    let client = ctx.search(Some(params.environment)).await?;
    start_filtered_reindex(
        &client,
        &input.source_index,
        &params.new_filtered_index,
        &terms,
        &options,
    )
    .await
}
