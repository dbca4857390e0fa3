//! Step 11: deletes the indices the aliases pointed at before (never one an alias still
//! points at).

use super::params::{environment_of, optional_checked_params};
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::{StepError, StepResult};
use refresh_core::es::DeletedIndices;
use refresh_core::input::RefreshParams;
use refresh_core::names::{check_media_index, media_of_index};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// `{indices: [...], params?, failed_execution?}`. The filtered-index machine's failure path
/// passes its own execution as `failed_execution`, and the output then names the state that
/// failed (read from its history) for the failure notice.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteIndicesInput {
    pub indices: Vec<String>,
    #[serde(default, deserialize_with = "optional_checked_params")]
    pub params: Option<RefreshParams>,
    #[serde(default)]
    pub failed_execution: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DeleteIndicesOutput {
    #[serde(flatten)]
    pub indices: DeletedIndices,
    /// Always present (null when not asked for or not found): the notice reads the path.
    pub failed_state: Option<String>,
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

pub async fn handle(
    ctx: Arc<Context>,
    input: DeleteIndicesInput,
) -> StepResult<DeleteIndicesOutput> {
    let failed_state = match &input.failed_execution {
        Some(execution) => {
            crate::sfn::failed_state_of(&aws_sdk_sfn::Client::new(&ctx.aws), execution).await
        }
        None => None,
    };
    let client = ctx.search(environment_of(&input.params)).await?;
    let deleted = refresh_core::es::delete_indices(&client, &input.indices).await?;
    tracing::info!(deleted = ?deleted.deleted, missing = ?deleted.missing, "indices deleted");
    Ok(DeleteIndicesOutput {
        indices: deleted,
        failed_state,
    })
}
