//! Step 10: after the table is promoted, moves both media aliases onto the new indices in one
//! `_aliases` call. Also the operator's finish command after a run that promoted its table
//! but ran out of alias retries: it takes only the names, and refuses unless that run's
//! table promotion is on record (aliases must never move onto indices the table does not match).

use crate::context::api_db;
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::environment::Environment;
use refresh_core::error::{StepError, StepResult};
use refresh_core::es::{promote_aliases, AliasesPromotion};
use refresh_core::media::MediaType;
use refresh_core::names::{check_media_index, FILTERED_SUFFIX};
use refresh_core::pg::promote::table_promoted_by;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `{media_type, environment, index, filtered_index}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteAliasesInput {
    pub media_type: MediaType,
    pub environment: Environment,
    pub index: String,
    pub filtered_index: String,
}

pub fn parse(payload: Value) -> StepResult<PromoteAliasesInput> {
    let input: PromoteAliasesInput = parse_input(payload)?;
    check_media_index(input.media_type, &input.index, "index")?;
    // `<media>-<suffix>` names `<media>-<suffix>-filtered`: one run's pair, never a mix.
    let expected = format!("{}{FILTERED_SUFFIX}", input.index);
    if input.filtered_index != expected {
        return Err(StepError::invalid_input(format!(
            "filtered_index: {:?} is not the filtered index of {:?} (expected {expected:?})",
            input.filtered_index, input.index
        )));
    }
    Ok(input)
}

pub async fn handle(ctx: Arc<Context>, input: PromoteAliasesInput) -> StepResult<AliasesPromotion> {
    let secrets = ctx.secrets(Some(input.environment)).await?;
    let api = api_db(&secrets).await?;
    if !table_promoted_by(&api, &input.index).await? {
        return Err(StepError::invalid_state(format!(
            "no table promotion of {} is on record for {}: the aliases stay where they are",
            input.media_type, input.index
        )));
    }
    let client = ctx.search(Some(input.environment)).await?;
    let promoted = promote_aliases(
        &client,
        &[
            (input.media_type.alias(), &input.index),
            (input.media_type.filtered_alias(), &input.filtered_index),
        ],
    )
    .await?;
    tracing::info!(promoted = ?promoted, "aliases promoted");
    Ok(promoted)
}
