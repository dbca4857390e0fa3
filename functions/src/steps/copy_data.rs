//! Step 2: one call of the resumable FDW copy (tags filtered inside the `SELECT`).

use super::params::checked_params;
use crate::context::api_db;
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::input::RefreshParams;
use refresh_core::pg::copy::{copy_data, CopyCursor, CopyProgress, CopyRequest};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `{params, cursor, defer_finish?}` (`cursor` null on the first call). With `defer_finish`
/// the call that copies the last rows reports `done` and `finish_deferred` without adding the
/// primary key or copying audioset: the worker's `finish_copy` SQL job does that, off the
/// Lambda clock.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyDataInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub cursor: Option<CopyCursor>,
    #[serde(default)]
    pub defer_finish: bool,
}

pub fn parse(payload: Value) -> StepResult<CopyDataInput> {
    parse_input(payload)
}

pub async fn handle(ctx: Arc<Context>, input: CopyDataInput) -> StepResult<CopyProgress> {
    let params = &input.params;
    let secrets = ctx.secrets(Some(params.environment)).await?;
    let mut api = api_db(&secrets).await?;
    let mut request = CopyRequest::new(params.media_type, params.environment, params.row_limit);
    request.tag_filter = ctx.tag_filter()?;
    request.defer_finish = input.defer_finish;
    request.time_budget = crate::runtime::time_budget(request.time_budget);
    let progress =
        copy_data(&mut api, &secrets.catalog_fdw, &request, input.cursor.as_ref()).await?;
    tracing::info!(media = %params.media_type, rows_copied = progress.rows_copied, rows_scanned = progress.rows_scanned, done = progress.done, finish_deferred = progress.finish_deferred, "copy progress");
    Ok(progress)
}
