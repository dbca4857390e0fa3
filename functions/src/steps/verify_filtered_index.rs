//! Step 7 in dual-write mode: the verification gate of the filtered index the workers wrote
//! beside the main index (`refresh_core::es::verify_filtered`). Elasticsearch's own `terms`
//! query checks the matcher: stray sensitive documents are deleted, a count that does not
//! add up asks for a rebuild with the filtered `_reindex` (the state machine's `rebuild`
//! branch). An unverified filtered index is never promoted.

use super::params::checked_params;
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::{StepError, StepResult};
use refresh_core::es::{load_sensitive_terms, verify_filtered, FilteredVerification, VerifyOptions};
use refresh_core::input::{FilteredIndexMode, RefreshParams};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `{params}`: the new index and its filtered index are `P`'s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyFilteredIndexInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
}

pub fn parse(payload: Value) -> StepResult<VerifyFilteredIndexInput> {
    let input: VerifyFilteredIndexInput = parse_input(payload)?;
    if input.params.filtered_index != FilteredIndexMode::DualWrite {
        return Err(StepError::invalid_input(format!(
            "params.filtered_index: {:?}; the gate checks a filtered index written by dual write",
            input.params.filtered_index.as_str()
        )));
    }
    Ok(input)
}

pub async fn handle(
    ctx: Arc<Context>,
    input: VerifyFilteredIndexInput,
) -> StepResult<FilteredVerification> {
    let params = &input.params;
    let terms = load_sensitive_terms(ctx.sensitive_terms_url()?).await?;
    let client = ctx.search(Some(params.environment)).await?;
    verify_filtered(
        &client,
        &params.new_index,
        &params.new_filtered_index,
        &terms,
        &VerifyOptions::default(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(mode: &str) -> Value {
        json!({
            "media_type": "image", "environment": "staging", "index_suffix": "init",
            "new_index": "image-init", "new_filtered_index": "image-init-filtered",
            "temp_table": "temp_import_image", "skip_copy": false, "allow_concurrent": false,
            "max_record_drop_pct": 10.0, "override_record_drop": false, "row_limit": 100,
            "worker_count": 2, "launch_template": "lt", "filtered_index": mode
        })
    }

    #[test]
    fn only_a_dual_write_run_is_verified() {
        let input = parse(json!({"params": params("dual_write")})).unwrap();
        assert_eq!(input.params.new_filtered_index, "image-init-filtered");
        let err = parse(json!({"params": params("reindex")})).unwrap_err();
        assert!(err.message.contains("params.filtered_index"), "{}", err.message);
        let err = parse(json!({"params": params("dual_write"), "index": "x"})).unwrap_err();
        assert!(err.message.contains("index"), "{}", err.message);
    }
}
