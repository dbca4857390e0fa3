//! Step 10: moves a media alias onto the new index in one `_aliases` call.

use super::params::{environment_of, optional_checked_params};
use crate::runtime::parse_input;
use crate::Context;
use refresh_core::error::{StepError, StepResult};
use refresh_core::es::AliasPromotion;
use refresh_core::input::RefreshParams;
use refresh_core::media::MediaType;
use refresh_core::names::check_media_index;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `{alias, index, params?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteAliasInput {
    pub alias: String,
    pub index: String,
    #[serde(default, deserialize_with = "optional_checked_params")]
    pub params: Option<RefreshParams>,
}

impl PromoteAliasInput {
    /// Only the media aliases may be moved, and only onto an index of that media.
    pub fn check(&self) -> StepResult<MediaType> {
        let media = MediaType::of_alias(&self.alias).ok_or_else(|| {
            StepError::invalid_input(format!(
                "alias {:?} is not one of the media aliases (image, audio, image-filtered, audio-filtered)",
                self.alias
            ))
        })?;
        check_media_index(media, &self.index, "index")?;
        Ok(media)
    }
}

pub fn parse(payload: Value) -> StepResult<PromoteAliasInput> {
    let input: PromoteAliasInput = parse_input(payload)?;
    input.check()?;
    Ok(input)
}

pub async fn handle(ctx: Arc<Context>, input: PromoteAliasInput) -> StepResult<AliasPromotion> {
    let client = ctx.search(environment_of(&input.params)).await?;
    refresh_core::es::promote_alias(&client, &input.alias, &input.index).await
}
