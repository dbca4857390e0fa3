//! Step 12b: the refresh report (totals and per-source deltas).

use super::params::checked_params;
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::input::RefreshParams;
use refresh_core::report::{compare, Counts, GuardChecks, RefreshReport};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `{params, before, after, guards?}`: count_documents' outputs before and after, and the
/// outputs of the checks that ran before promotion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub before: Counts,
    pub after: Counts,
    #[serde(default)]
    pub guards: GuardChecks,
}

pub fn parse(payload: Value) -> StepResult<ReportInput> {
    parse_input(payload)
}

pub async fn handle(_ctx: Arc<Context>, input: ReportInput) -> StepResult<RefreshReport> {
    let (delta, by_source) = compare(&input.before, &input.after);
    let report = RefreshReport {
        media_type: input.params.media_type.to_string(),
        environment: input.params.environment.to_string(),
        new_index: input.params.new_index.clone(),
        total_before: input.before.total,
        total_after: input.after.total,
        delta,
        by_source,
        guards: input.guards,
    };
    tracing::info!(report = ?report, "data refresh finished");
    Ok(report)
}
