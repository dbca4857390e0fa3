//! Input shapes several steps share: `P` as a later step receives it, and `{index}`.

use crate::runtime::parse_input;
use refresh_core::environment::Environment;
use refresh_core::error::StepResult;
use refresh_core::input::RefreshParams;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `P` as a later step receives it: parsed strictly and re-checked, so a hand-edited `P`
/// cannot point a step at another table or index.
pub fn checked_params<'de, D: Deserializer<'de>>(d: D) -> Result<RefreshParams, D::Error> {
    let params = RefreshParams::deserialize(d)?;
    params.check().map_err(serde::de::Error::custom)?;
    Ok(params)
}

/// An optional `P`, checked when present.
pub fn optional_checked_params<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<RefreshParams>, D::Error> {
    match Option::<RefreshParams>::deserialize(d)? {
        Some(params) => {
            params.check().map_err(serde::de::Error::custom)?;
            Ok(Some(params))
        }
        None => Ok(None),
    }
}

/// The environment of an optional `P` (`None`: the deployment's secret is used).
pub fn environment_of(params: &Option<RefreshParams>) -> Option<Environment> {
    params.as_ref().map(|p| p.environment)
}

/// `{params: P}`: filter_tags, plan_ranges, promote_table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
}

impl ParamsInput {
    pub fn parse(payload: Value) -> StepResult<ParamsInput> {
        parse_input(payload)
    }
}

/// `{index, params?}`: finish_index and check_index_health.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexInput {
    pub index: String,
    #[serde(default, deserialize_with = "optional_checked_params")]
    pub params: Option<RefreshParams>,
}

impl IndexInput {
    pub fn parse(payload: Value) -> StepResult<IndexInput> {
        parse_input(payload)
    }
}
