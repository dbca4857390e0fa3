//! The verification gate of a filtered index written in the same pass as the main index
//! (dual write): Elasticsearch's own `terms` query, the one the filtered reindex uses,
//! checks what the Rust matcher ([`crate::sensitive::SensitiveTerms`]) decided.
//!
//! 1. Both indices are refreshed.
//! 2. Documents of the filtered index the query finds sensitive (the matcher's false
//!    negatives) are deleted with `_delete_by_query` — unless there are more than
//!    [`VerifyOptions::max_deletions`], then the index is not worth repairing.
//! 3. The filtered index must then hold exactly `main − sensitive(main)` documents. Fewer
//!    means clean documents are missing (the matcher's false positives, or lost writes); more
//!    means documents the main index does not have. Either way only a rebuild by the
//!    filtered `_reindex` ([`super::reindex::start_filtered_reindex`]) makes it right.

use super::reindex::sensitive_documents_query;
use super::SearchClient;
use crate::error::{ErrorKind, StepError, StepResult};
use crate::names::validate_index_name;
use elasticsearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What [`verify_filtered`] may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Above this many sensitive documents in the filtered index the gate asks for a
    /// rebuild instead of deleting them (a matcher that wrong is not to be patched up).
    pub max_deletions: u64,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            max_deletions: 10_000,
        }
    }
}

/// The gate's answer, for the state machine's report (`{"outcome": "verified", …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum FilteredVerification {
    /// The filtered index is the main index less its sensitive documents.
    Verified {
        main_count: u64,
        sensitive_in_main: u64,
        filtered_count: u64,
    },
    /// It is, after `deleted` sensitive documents were removed from it.
    Repaired {
        main_count: u64,
        sensitive_in_main: u64,
        filtered_count: u64,
        deleted: u64,
    },
    /// It is not: rebuild it with the filtered `_reindex`. `sensitive_in_filtered` is what
    /// step 2 found (and deleted, when `deleted` says so).
    Rebuild {
        main_count: u64,
        sensitive_in_main: u64,
        expected: u64,
        filtered_count: u64,
        sensitive_in_filtered: u64,
        deleted: u64,
        reason: String,
    },
}

impl FilteredVerification {
    /// The filtered index may be promoted as it is.
    pub fn is_ok(&self) -> bool {
        !matches!(self, FilteredVerification::Rebuild { .. })
    }
}

/// Checks (and, for stray sensitive documents, repairs) `filtered_index` against
/// `main_index` with the filtered reindex's own query over `terms`.
pub async fn verify_filtered(
    client: &SearchClient,
    main_index: &str,
    filtered_index: &str,
    terms: &[String],
    options: &VerifyOptions,
) -> StepResult<FilteredVerification> {
    validate_index_name(main_index)?;
    validate_index_name(filtered_index)?;
    if main_index == filtered_index {
        return Err(StepError::invalid_input(format!(
            "cannot verify {main_index} against itself"
        )));
    }
    let sensitive = sensitive_documents_query(terms)?;
    refresh(client, main_index).await?;
    refresh(client, filtered_index).await?;

    let sensitive_in_filtered = count(client, filtered_index, Some(&sensitive)).await?;
    let mut deleted = 0;
    if sensitive_in_filtered > options.max_deletions {
        let main_count = count(client, main_index, None).await?;
        let sensitive_in_main = count(client, main_index, Some(&sensitive)).await?;
        let filtered_count = count(client, filtered_index, None).await?;
        let outcome = FilteredVerification::Rebuild {
            main_count,
            sensitive_in_main,
            expected: main_count.saturating_sub(sensitive_in_main),
            filtered_count,
            sensitive_in_filtered,
            deleted,
            reason: format!(
                "{sensitive_in_filtered} sensitive documents in the filtered index, more than the {} the gate deletes",
                options.max_deletions
            ),
        };
        log(filtered_index, &outcome);
        return Ok(outcome);
    }
    if sensitive_in_filtered > 0 {
        deleted = delete_by_query(client, filtered_index, &sensitive).await?;
    }

    let main_count = count(client, main_index, None).await?;
    let sensitive_in_main = count(client, main_index, Some(&sensitive)).await?;
    let filtered_count = count(client, filtered_index, None).await?;
    let expected = main_count.saturating_sub(sensitive_in_main);
    let outcome = if filtered_count != expected {
        let reason = if filtered_count < expected {
            format!(
                "{} clean documents of {main_index} are missing from {filtered_index}",
                expected - filtered_count
            )
        } else {
            format!(
                "{filtered_index} has {} documents more than the clean documents of {main_index}",
                filtered_count - expected
            )
        };
        FilteredVerification::Rebuild {
            main_count,
            sensitive_in_main,
            expected,
            filtered_count,
            sensitive_in_filtered,
            deleted,
            reason,
        }
    } else if deleted > 0 {
        FilteredVerification::Repaired {
            main_count,
            sensitive_in_main,
            filtered_count,
            deleted,
        }
    } else {
        FilteredVerification::Verified {
            main_count,
            sensitive_in_main,
            filtered_count,
        }
    };
    log(filtered_index, &outcome);
    Ok(outcome)
}

fn log(filtered_index: &str, outcome: &FilteredVerification) {
    match outcome {
        FilteredVerification::Verified { filtered_count, .. } => {
            tracing::info!(filtered_index, filtered_count, "filtered index verified");
        }
        FilteredVerification::Repaired { deleted, .. } => {
            tracing::warn!(
                filtered_index,
                deleted,
                "filtered index repaired: sensitive documents the matcher let through were deleted"
            );
        }
        FilteredVerification::Rebuild {
            expected,
            filtered_count,
            reason,
            ..
        } => {
            tracing::warn!(
                filtered_index,
                expected,
                filtered_count,
                reason,
                "filtered index needs a rebuild"
            );
        }
    }
}

async fn refresh(client: &SearchClient, index: &str) -> StepResult<()> {
    client
        .call(
            "refresh index",
            Method::Post,
            &format!("/{index}/_refresh"),
            &[],
            None,
        )
        .await?
        .into_success(&format!("refresh {index}"))?;
    Ok(())
}

/// Documents of `index` (matching `query`, when given). A missing index is an error: the
/// gate runs on indices the refresh has just written.
async fn count(client: &SearchClient, index: &str, query: Option<&Value>) -> StepResult<u64> {
    let body = query.map(|q| json!({ "query": q }));
    let response = client
        .call(
            "count documents",
            Method::Post,
            &format!("/{index}/_count"),
            &[],
            body.as_ref(),
        )
        .await?
        .into_success(&format!("count documents in {index}"))?;
    response["count"].as_u64().ok_or_else(|| {
        StepError::new(
            ErrorKind::Internal,
            format!("Elasticsearch answered a count of {index} without a count"),
        )
    })
}

/// Deletes what `query` finds in `index`, waiting for it; returns how many were deleted.
async fn delete_by_query(client: &SearchClient, index: &str, query: &Value) -> StepResult<u64> {
    let response = client
        .call(
            "delete sensitive documents",
            Method::Post,
            &format!("/{index}/_delete_by_query"),
            &[
                ("refresh", "true".to_string()),
                // A concurrent write is not ours to lose: count it as a failure below.
                ("conflicts", "abort".to_string()),
            ],
            Some(&json!({ "query": query })),
        )
        .await?
        .into_success(&format!("delete sensitive documents from {index}"))?;
    let failures = response["failures"].as_array().map_or(0, Vec::len);
    if failures > 0 {
        return Err(StepError::new(
            ErrorKind::InvalidState,
            format!(
                "deleting sensitive documents from {index} failed for {failures} documents: {}",
                super::error_reason(&response["failures"][0])
            ),
        ));
    }
    response["deleted"].as_u64().ok_or_else(|| {
        StepError::new(
            ErrorKind::Internal,
            format!("Elasticsearch answered a delete-by-query on {index} without a count"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_serialise_with_their_name() {
        let verified = FilteredVerification::Verified {
            main_count: 10,
            sensitive_in_main: 2,
            filtered_count: 8,
        };
        assert_eq!(
            serde_json::to_value(&verified).unwrap(),
            json!({"outcome": "verified", "main_count": 10, "sensitive_in_main": 2, "filtered_count": 8})
        );
        let rebuild = FilteredVerification::Rebuild {
            main_count: 10,
            sensitive_in_main: 2,
            expected: 8,
            filtered_count: 7,
            sensitive_in_filtered: 1,
            deleted: 1,
            reason: "1 clean documents are missing".into(),
        };
        let value = serde_json::to_value(&rebuild).unwrap();
        assert_eq!(value["outcome"], "rebuild");
        assert_eq!(
            serde_json::from_value::<FilteredVerification>(value).unwrap(),
            rebuild
        );
        assert!(verified.is_ok());
        assert!(!rebuild.is_ok());
    }
}
