//! Steps 4 and 7: creates the new (or new filtered) index with the media's settings.

use super::params::checked_params;
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::StepResult;
use refresh_core::es::CreatedIndex;
use refresh_core::input::RefreshParams;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `{params, filtered}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIndexInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub filtered: bool,
}

pub fn parse(payload: Value) -> StepResult<CreateIndexInput> {
    parse_input(payload)
}

pub async fn handle(ctx: Arc<Context>, input: CreateIndexInput) -> StepResult<CreatedIndex> {
    let params = &input.params;
    let name = if input.filtered {
        &params.new_filtered_index
    } else {
        &params.new_index
    };
    let client = ctx.search(Some(params.environment)).await?;
    refresh_core::es::create_index(&client, params.media_type, name, ctx.shards(params.media_type))
        .await
}
