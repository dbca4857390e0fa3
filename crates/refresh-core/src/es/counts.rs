//! Document counts: the total and one count per `source`, for every source.

use super::SearchClient;
use crate::error::{ErrorKind, StepError, StepResult};
use crate::names::validate_index_name;
use elasticsearch::http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Buckets per composite-aggregation page.
pub const COUNT_PAGE_SIZE: u32 = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DocumentCounts {
    pub total: u64,
    pub by_source: BTreeMap<String, u64>,
}

/// Counts behind an alias or index; `{0, {}}` when it does not exist (yet).
pub async fn count_documents(
    client: &SearchClient,
    alias_or_index: &str,
) -> StepResult<DocumentCounts> {
    count_documents_paged(client, alias_or_index, COUNT_PAGE_SIZE).await
}

/// [`count_documents`] with a chosen page size: a composite aggregation paged with
/// `after_key`, so every source is counted however many there are (not a top-N).
pub async fn count_documents_paged(
    client: &SearchClient,
    alias_or_index: &str,
    page_size: u32,
) -> StepResult<DocumentCounts> {
    validate_index_name(alias_or_index)?;
    if page_size == 0 {
        return Err(StepError::invalid_input("page size must be positive"));
    }
    let path = format!("/{alias_or_index}/_search");
    let mut counts = DocumentCounts::default();
    let mut after: Option<Value> = None;
    let mut first_page = true;
    loop {
        let mut composite = json!({
            "size": page_size,
            "sources": [{ "source": { "terms": { "field": "source" } } }],
        });
        if let Some(after_key) = &after {
            composite["after"] = after_key.clone();
        }
        let body = json!({
            "size": 0,
            "track_total_hits": true,
            "aggs": { "by_source": { "composite": composite } },
        });
        let response = client
            .call("count documents", Method::Post, &path, &[], Some(&body))
            .await?;
        if response.status == StatusCode::NOT_FOUND && first_page {
            return Ok(DocumentCounts::default());
        }
        let body = response.into_success(&format!("count documents in {alias_or_index}"))?;
        if first_page {
            counts.total = total_hits(&body)?;
            first_page = false;
        }
        let aggregation = &body["aggregations"]["by_source"];
        let buckets = aggregation["buckets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for bucket in buckets {
            if let (Some(source), Some(n)) = (
                bucket["key"]["source"].as_str(),
                bucket["doc_count"].as_u64(),
            ) {
                *counts.by_source.entry(source.to_string()).or_default() += n;
            }
        }
        match aggregation.get("after_key") {
            Some(after_key) if !buckets.is_empty() => after = Some(after_key.clone()),
            _ => break,
        }
    }
    Ok(counts)
}

fn total_hits(body: &Value) -> StepResult<u64> {
    let total = &body["hits"]["total"];
    // 7.x and 8.x: {"value": n, "relation": "eq"}; track_total_hits=true makes it exact.
    total["value"]
        .as_u64()
        .or_else(|| total.as_u64())
        .ok_or_else(|| StepError::new(ErrorKind::Internal, "Elasticsearch returned no hit total"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_in_both_shapes() {
        assert_eq!(
            total_hits(&json!({"hits": {"total": {"value": 12, "relation": "eq"}}})).unwrap(),
            12
        );
        assert_eq!(total_hits(&json!({"hits": {"total": 3}})).unwrap(), 3);
        assert_eq!(
            total_hits(&json!({"hits": {}})).unwrap_err().kind,
            ErrorKind::Internal
        );
    }
}
