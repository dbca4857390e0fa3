//! Step 11: deletes the indices the aliases pointed at before (never one an alias still
//! points at).

use super::params::{environment_of, optional_checked_params};
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::{StepError, StepResult};
use refresh_core::es::DeletedIndices;
use refresh_core::input::RefreshParams;
use refresh_core::names::{check_media_index, media_of_index};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `{indices: [...], params?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteIndicesInput {
    pub indices: Vec<String>,
    #[serde(default, deserialize_with = "optional_checked_params")]
    pub params: Option<RefreshParams>,
}

impl DeleteIndicesInput {
    /// Every name must be a media index (`<media>-…`), never an alias name.
    pub fn check(&self) -> StepResult<()> {
        for name in &self.indices {
            let media = media_of_index(name).ok_or_else(|| {
                StepError::invalid_input(format!(
                    "indices: {name:?} is not an image-… or audio-… index"
                ))
            })?;
            check_media_index(media, name, "indices")?;
        }
        Ok(())
    }
}

pub fn parse(payload: Value) -> StepResult<DeleteIndicesInput> {
    let input: DeleteIndicesInput = parse_input(payload)?;
    input.check()?;
    Ok(input)
}

pub async fn handle(ctx: Arc<Context>, input: DeleteIndicesInput) -> StepResult<DeletedIndices> {
    let client = ctx.search(environment_of(&input.params)).await?;
    let deleted = refresh_core::es::delete_indices(&client, &input.indices).await?;
    tracing::info!(deleted = ?deleted.deleted, missing = ?deleted.missing, "old indices deleted");
    Ok(deleted)
}
