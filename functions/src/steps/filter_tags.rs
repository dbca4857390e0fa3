//! Step 3 (with `skip_copy`): the standalone set-based tag filter over an existing temp table.

use super::params::ParamsInput;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::pg::connect::pool;
use refresh_core::pg::filter::{refilter_tags, RefilterRequest};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// filter_tags' output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagsFiltered {
    pub rows_changed: u64,
}

pub fn parse(payload: Value) -> StepResult<ParamsInput> {
    ParamsInput::parse(payload)
}

pub async fn handle(ctx: Arc<Context>, input: ParamsInput) -> StepResult<TagsFiltered> {
    let params = &input.params;
    let secrets = ctx.secrets(Some(params.environment)).await?;
    let request = RefilterRequest::new(params.media_type, ctx.tag_filter()?);
    let pool = pool(secrets.api_db_url.expose_secret(), request.parallelism)?;
    let rows_changed = refilter_tags(&pool, &request).await?;
    tracing::info!(media = %params.media_type, rows_changed, "tags re-filtered");
    Ok(TagsFiltered { rows_changed })
}
