//! Step 12: the refresh report, before promotion: totals and per-source deltas between the
//! live alias (before) and the new index (after), both counted here so that no per-source
//! list rides in the execution's state. The state gets the report with the largest changes;
//! the log gets every source.

use super::params::checked_params;
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::{StepError, StepResult};
use refresh_core::input::RefreshParams;
use refresh_core::report::{GuardChecks, RefreshReport, SourceDelta, SOURCES_BUDGET_BYTES};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `{params, new_index, guards?}`: the guard checks that ran before (their outputs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub new_index: String,
    #[serde(default)]
    pub guards: GuardChecks,
}

pub fn parse(payload: Value) -> StepResult<ReportInput> {
    let input: ReportInput = parse_input(payload)?;
    if input.new_index != input.params.new_index {
        return Err(StepError::invalid_input(format!(
            "new_index: {:?} is not this run's new index {:?}",
            input.new_index, input.params.new_index
        )));
    }
    Ok(input)
}

/// Per-source rows a log line holds: one line stays far below any log event limit.
const ROWS_PER_LOG_LINE: usize = 500;

pub async fn handle(ctx: Arc<Context>, input: ReportInput) -> StepResult<RefreshReport> {
    let params = &input.params;
    let client = ctx.search(Some(params.environment)).await?;
    // Side by side: each is a full aggregation over a production index, and the function has
    // the time of one call for both.
    let (before, after) = tokio::try_join!(
        refresh_core::es::count_documents(&client, params.media_type.alias()),
        refresh_core::es::count_documents(&client, &input.new_index),
    )?;
    let (mut report, all) = RefreshReport::new(
        params.media_type.as_str(),
        params.environment.as_str(),
        &input.new_index,
        &before,
        &after,
        SOURCES_BUDGET_BYTES,
    );
    report.guards = input.guards;
    log_every_source(&all);
    tracing::info!(
        total_before = report.total_before,
        total_after = report.total_after,
        delta = report.delta,
        sources = report.sources,
        omitted_sources = report.omitted_sources,
        "data refresh report"
    );
    Ok(report)
}

fn log_every_source(all: &BTreeMap<String, SourceDelta>) {
    let rows: Vec<(&String, &SourceDelta)> = all.iter().collect();
    let parts = rows.len().div_ceil(ROWS_PER_LOG_LINE);
    for (part, chunk) in rows.chunks(ROWS_PER_LOG_LINE).enumerate() {
        let chunk: BTreeMap<&String, &SourceDelta> = chunk.iter().copied().collect();
        let by_source = serde_json::to_string(&chunk).unwrap_or_default();
        tracing::info!(part = part + 1, parts, by_source = %by_source, "report: per-source counts");
    }
}
