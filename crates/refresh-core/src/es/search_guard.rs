//! The search guard's run (its configuration is [`crate::guard::SearchGuardConfig`]): before
//! the point of no return, representative queries run against the new index and the live one.

use super::alias::indices_of_alias;
use super::SearchClient;
use crate::error::{ErrorKind, StepError, StepResult};
use crate::guard::{GuardQuery, SearchGuardConfig};
use crate::media::MediaType;
use crate::names::validate_index_name;
use elasticsearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// One query's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardQueryResult {
    pub name: String,
    pub live_hits: u64,
    pub new_hits: u64,
    /// `new_hits / live_hits`; absent when the live index finds nothing.
    pub ratio: Option<f64>,
    pub passed: bool,
}

/// What the guard did (the step's output; the report carries it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchGuardReport {
    /// False on a first refresh, when there is no live index to compare with.
    pub ran: bool,
    pub live_index: Option<String>,
    pub new_index: String,
    pub min_ratio: f64,
    pub queries: Vec<GuardQueryResult>,
    /// Queries failed and `override_search_guard` promoted anyway.
    pub overridden: bool,
}

/// Runs the guard for `media`: each of its configured queries counted in `new_index` and in
/// the index behind `live_alias` (the media's alias in a refresh). Refuses (`SearchGuardFailed`, naming every failing query with its
/// figures) when a query's new count is below `min_ratio` of the live count, unless
/// `override_guard`. Changes nothing.
pub async fn check_search_guard(
    client: &SearchClient,
    config: &SearchGuardConfig,
    media: MediaType,
    live_alias: &str,
    new_index: &str,
    override_guard: bool,
) -> StepResult<SearchGuardReport> {
    validate_index_name(new_index)?;
    let live = indices_of_alias(client, live_alias).await?;
    let mut report = SearchGuardReport {
        ran: false,
        live_index: None,
        new_index: new_index.to_string(),
        min_ratio: config.min_ratio,
        queries: Vec::new(),
        overridden: false,
    };
    let live_index = match live.as_slice() {
        [] => {
            tracing::info!(alias = live_alias, "no live index: the search guard has nothing to compare with");
            return Ok(report);
        }
        [one] => one.clone(),
        many => {
            return Err(StepError::invalid_state(format!(
                "alias {live_alias} points at {} indices ({}): the search guard cannot tell which is live",
                many.len(),
                many.join(", ")
            )))
        }
    };
    for query in config.queries_for(media) {
        let live_hits = count(client, &live_index, query).await?;
        let new_hits = count(client, new_index, query).await?;
        let ratio = (live_hits > 0).then(|| new_hits as f64 / live_hits as f64);
        report.queries.push(GuardQueryResult {
            name: query.name.clone(),
            live_hits,
            new_hits,
            ratio,
            passed: ratio.is_none_or(|ratio| ratio >= config.min_ratio),
        });
    }
    report.ran = true;
    report.live_index = Some(live_index.clone());
    let failed: Vec<String> = report
        .queries
        .iter()
        .filter(|result| !result.passed)
        .map(|result| {
            format!(
                "query {:?} finds {} documents in {new_index} against {} in the live index {live_index} ({:.0} %)",
                result.name,
                result.new_hits,
                result.live_hits,
                result.ratio.unwrap_or(0.0) * 100.0
            )
        })
        .collect();
    if failed.is_empty() {
        return Ok(report);
    }
    if override_guard {
        tracing::warn!(failed = ?failed, "search guard failed; promoting anyway (override_search_guard)");
        report.overridden = true;
        return Ok(report);
    }
    Err(StepError::new(
        ErrorKind::SearchGuardFailed,
        format!(
            "search guard: {}; below {:.0} % of the live index; nothing was promoted (override_search_guard promotes anyway)",
            failed.join("; "),
            config.min_ratio * 100.0
        ),
    ))
}

async fn count(client: &SearchClient, index: &str, query: &GuardQuery) -> StepResult<u64> {
    let body = client
        .call(
            "search guard count",
            Method::Post,
            &format!("/{index}/_count"),
            &[],
            Some(&json!({ "query": query.query })),
        )
        .await?
        .into_success(&format!(
            "count search guard query {:?} in {index}",
            query.name
        ))?;
    body["count"].as_u64().ok_or_else(|| {
        StepError::new(
            ErrorKind::Internal,
            format!("the count of {:?} in {index} has no number", query.name),
        )
    })
}
