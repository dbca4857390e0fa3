//! Step 2: one call of the resumable FDW copy (tags filtered inside the `SELECT`), over
//! `COPY_SESSIONS` connections to the API database, one key lane each.

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
    request.sessions = ctx.config.copy_sessions;
    // As many sessions as lanes are left to copy (one under a row limit), at most the setting.
    let lanes_left = match &input.cursor {
        Some(cursor) => cursor.lanes.saturating_sub(cursor.lanes_done),
        None => request.lane_count(),
    };
    let sessions = lanes_left.clamp(1, request.sessions);
    let mut more_sessions = Vec::with_capacity(sessions - 1);
    for _ in 1..sessions {
        more_sessions.push(api_db(&secrets).await?);
    }
    let progress = copy_data(
        &mut api,
        &mut more_sessions,
        &secrets.catalog_fdw,
        &request,
        input.cursor.as_ref(),
    )
    .await?;
    tracing::info!(media = %params.media_type, rows_copied = progress.rows_copied, rows_scanned = progress.rows_scanned, done = progress.done, finish_deferred = progress.finish_deferred, sessions, "copy progress");
    Ok(progress)
}
