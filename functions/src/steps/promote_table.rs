//! Step 9: swaps the temp table in, in one transaction. Foreign keys of referencing tables come
//! back `NOT VALID` (`foreign_keys_not_valid` > 0): the worker's `validate_foreign_keys` SQL
//! job deletes their orphans and validates them afterwards.

use super::params::ParamsInput;
use crate::context::api_db;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::pg::counts::{row_count, MediaTable};
use refresh_core::pg::promote::{
    promote_table_with, table_promoted_by, PromotionOptions, PromotionRecord, PromotionReport,
};
use serde_json::Value;
use std::sync::Arc;

pub fn parse(payload: Value) -> StepResult<ParamsInput> {
    ParamsInput::parse(payload)
}

pub async fn handle(ctx: Arc<Context>, input: ParamsInput) -> StepResult<PromotionReport> {
    let secrets = ctx.secrets(Some(input.params.environment)).await?;
    let mut api = api_db(&secrets).await?;
    // A retry after a lost reply: the swap committed, the temp table is gone.
    if table_promoted_by(&api, &input.params.new_index).await? {
        tracing::info!(index = %input.params.new_index, "this run already promoted the table");
        return Ok(PromotionReport {
            promoted: true,
            foreign_keys_repointed: 0,
            foreign_keys_not_valid: 0,
            orphans_deleted: 0,
            foreign_keys: Vec::new(),
            rows: i64::try_from(
                row_count(&api, input.params.media_type, MediaTable::Live).await?,
            )
            .unwrap_or(i64::MAX),
        });
    }
    // The record marks the point of no return for cleanup and the roll-forward.
    let options = PromotionOptions {
        record: Some(PromotionRecord {
            new_index: input.params.new_index.clone(),
            new_filtered_index: input.params.new_filtered_index.clone(),
        }),
        ..PromotionOptions::default()
    };
    let report = promote_table_with(&mut api, input.params.media_type, &options).await?;
    tracing::info!(
        rows = report.rows,
        foreign_keys_repointed = report.foreign_keys_repointed,
        orphans_deleted = report.orphans_deleted,
        foreign_keys_not_valid = report.foreign_keys_not_valid,
        "table promoted"
    );
    Ok(report)
}
