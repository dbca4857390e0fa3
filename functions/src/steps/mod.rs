//! Per-step input and output shapes, exactly as the state machines send and read them
//! (`statemachine/*.asl.json`), plus the few helpers every step binary shares.
//!
//! The binaries in `src/bin/` only parse one of these inputs, call `refresh_core` and return
//! its result; keeping the shapes here lets `tests/asl_contract.rs` check them against the
//! definitions.

pub mod cleanup;
pub mod concurrency;
pub mod report;
pub mod runner;
pub mod validate;

use crate::Context;
use refresh_core::error::{ErrorKind, StepError, StepResult};
use refresh_core::es::SearchClient;
use refresh_core::input::{Environment, RefreshParams};
use refresh_core::media::MediaType;
use refresh_core::pg::copy::CopyCursor;
use refresh_core::settings::Secrets;
use refresh_core::tags::TagFilterConfig;
use secrecy::ExposeSecret;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// `P` as a later step receives it: parsed strictly and re-checked, so a hand-edited `P`
/// cannot point a step at another table or index.
pub fn checked_params<'de, D: Deserializer<'de>>(d: D) -> Result<RefreshParams, D::Error> {
    let params = RefreshParams::deserialize(d)?;
    params.check().map_err(serde::de::Error::custom)?;
    Ok(params)
}

fn optional_checked_params<'de, D: Deserializer<'de>>(
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

/// `{params: P}`: filter_tags, plan_ranges, reapply_constraints, promote_table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamsInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
}

/// Steps the state machines call without `params` (so without the environment) today. They
/// accept an optional `params` so the definitions can pass it; until then they read the
/// deployment-wide `REFRESH_SECRET_ID`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionalParams {
    #[serde(default, deserialize_with = "optional_checked_params")]
    pub params: Option<RefreshParams>,
}

impl OptionalParams {
    pub fn environment(&self) -> Option<Environment> {
        self.params.as_ref().map(|p| p.environment)
    }
}

/// count_documents: `{alias_or_index}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountDocumentsInput {
    pub alias_or_index: String,
    #[serde(default, deserialize_with = "optional_checked_params")]
    pub params: Option<RefreshParams>,
}

/// copy_data: `{params, cursor}` (`cursor` null on the first call).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyDataInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub cursor: Option<CopyCursor>,
}

/// create_index: `{params, filtered}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIndexInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub filtered: bool,
}

/// One item of `plan_ranges`' `ranges`, as the Map state hands it to each iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedRange {
    pub start_id: i64,
    pub end_id: i64,
    pub range_index: u32,
}

/// plan_ranges' output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangePlan {
    pub min_id: Option<i64>,
    pub max_id: Option<i64>,
    pub rows: u64,
    pub ranges: Vec<PlannedRange>,
}

/// Numbers the ranges of `[min, max]` split `workers` ways; no ranges for an empty table.
pub fn plan_ranges(span: Option<(i64, i64)>, rows: u64, workers: u32) -> StepResult<RangePlan> {
    let Some((min, max)) = span else {
        return Ok(RangePlan {
            min_id: None,
            max_id: None,
            rows,
            ranges: Vec::new(),
        });
    };
    let ranges = refresh_core::ranges::split_even(min, max, workers)?
        .into_iter()
        .zip(0u32..)
        .map(|(r, range_index)| PlannedRange {
            start_id: r.start_id,
            end_id: r.end_id,
            range_index,
        })
        .collect();
    Ok(RangePlan {
        min_id: Some(min),
        max_id: Some(max),
        rows,
        ranges,
    })
}

/// check_worker's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerHealth {
    pub healthy: bool,
}

/// start_reindex_task's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedTask {
    pub task_id: String,
}

/// filter_tags' output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagsFiltered {
    pub rows_changed: u64,
}

/// check_worker: `{ip}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckWorkerInput {
    pub ip: IpAddr,
}

/// start_reindex_task: `{ip, params, range}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartReindexTaskInput {
    pub ip: IpAddr,
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub range: PlannedRange,
}

/// get_reindex_task: `{ip, task_id, params}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetReindexTaskInput {
    pub ip: IpAddr,
    pub task_id: String,
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
}

/// finish_index and check_index_health: `{index}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexInput {
    pub index: String,
    #[serde(default, deserialize_with = "optional_checked_params")]
    pub params: Option<RefreshParams>,
}

/// start_filtered_reindex: `{params, source_index}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartFilteredReindexInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub source_index: String,
}

/// get_es_task: `{task_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetEsTaskInput {
    pub task_id: String,
    #[serde(default, deserialize_with = "optional_checked_params")]
    pub params: Option<RefreshParams>,
}

/// check_record_drop: `{params, before: {total}, new_index}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRecordDropInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub before: BeforeTotal,
    pub new_index: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeforeTotal {
    pub total: u64,
}

/// promote_alias: `{alias, index}`.
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
        let media = MediaType::ALL
            .into_iter()
            .find(|m| m.alias() == self.alias || m.filtered_alias() == self.alias)
            .ok_or_else(|| {
                StepError::invalid_input(format!(
                    "alias {:?} is not one of the media aliases (image, audio, image-filtered, audio-filtered)",
                    self.alias
                ))
            })?;
        check_media_index(media, &self.index, "index")?;
        Ok(media)
    }
}

/// delete_indices: `{indices: [...]}`.
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
            let media = MediaType::ALL
                .into_iter()
                .find(|m| name.starts_with(&format!("{}-", m.as_str())))
                .ok_or_else(|| {
                    StepError::invalid_input(format!(
                        "indices: {name:?} is not an image-… or audio-… index"
                    ))
                })?;
            check_media_index(media, name, "indices")?;
        }
        Ok(())
    }
}

fn check_media_index(media: MediaType, index: &str, field: &str) -> StepResult<()> {
    let prefix = format!("{}-", media.as_str());
    if !index.starts_with(&prefix) || index.len() == prefix.len() || index == media.filtered_alias()
    {
        return Err(StepError::invalid_input(format!(
            "{field}: {index:?} is not a {media} index (<{media}>-<suffix>[-filtered])"
        )));
    }
    refresh_core::es::validate_index_name(index)
}

/// count_documents' output as report and check_record_drop receive it back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub total: u64,
    #[serde(default)]
    pub by_source: BTreeMap<String, u64>,
}

/// report: `{params, before, after}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub before: Counts,
    pub after: Counts,
}

/// The credentials of `environment`, or of the deployment when the input does not say.
pub async fn secrets(ctx: &Context, environment: Option<Environment>) -> StepResult<Secrets> {
    match environment {
        Some(environment) => ctx.secrets_for(environment).await,
        None => ctx.secrets().await.map_err(|e| {
            StepError::new(
                e.kind,
                format!(
                    "{} (this step's input carries no params, so it cannot pick the \
                     per-environment secret)",
                    e.message
                ),
            )
        }),
    }
}

/// An Elasticsearch client for the environment's cluster.
pub async fn search(ctx: &Context, environment: Option<Environment>) -> StepResult<SearchClient> {
    SearchClient::from_secrets(&secrets(ctx, environment).await?)
}

/// A connection to the environment's API database.
pub async fn api_db(secrets: &Secrets) -> StepResult<tokio_postgres::Client> {
    refresh_core::pg::connect::connect(secrets.api_db_url.expose_secret()).await
}

/// The tag filter from `TAG_FILTER_CONFIG`, else the brief's defaults.
pub fn tag_filter(ctx: &Context) -> StepResult<TagFilterConfig> {
    match &ctx.config.tag_filter_config {
        Some(json) => TagFilterConfig::from_json(json),
        None => Ok(TagFilterConfig::default()),
    }
}

/// Primary shards of a media's index (`IMAGE_SHARDS` / `AUDIO_SHARDS`).
pub fn shards(ctx: &Context, media: MediaType) -> u32 {
    match media {
        MediaType::Image => ctx.config.search.image_shards,
        MediaType::Audio => ctx.config.search.audio_shards,
    }
}

/// The location of the sensitive-terms list; a filtered index without it would filter nothing.
pub fn sensitive_terms_url(ctx: &Context) -> StepResult<&str> {
    ctx.config
        .search
        .sensitive_terms_url
        .as_deref()
        .ok_or_else(|| {
            StepError::new(
                ErrorKind::Configuration,
                format!(
                    "{} is not set: no sensitive-terms list to build the filtered index with",
                    refresh_core::config::vars::SENSITIVE_TERMS_URL
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_numbered_and_cover_the_span() {
        let plan = plan_ranges(Some((1, 10)), 10, 3).unwrap();
        assert_eq!(
            plan.ranges,
            [
                PlannedRange {
                    start_id: 1,
                    end_id: 4,
                    range_index: 0
                },
                PlannedRange {
                    start_id: 5,
                    end_id: 7,
                    range_index: 1
                },
                PlannedRange {
                    start_id: 8,
                    end_id: 10,
                    range_index: 2
                },
            ]
        );
        assert_eq!(
            (plan.min_id, plan.max_id, plan.rows),
            (Some(1), Some(10), 10)
        );
    }

    #[test]
    fn empty_table_plans_no_range() {
        let plan = plan_ranges(None, 0, 6).unwrap();
        assert!(plan.ranges.is_empty());
        assert_eq!(
            serde_json::to_value(&plan).unwrap(),
            serde_json::json!({"min_id": null, "max_id": null, "rows": 0, "ranges": []})
        );
    }

    #[test]
    fn alias_promotion_is_limited_to_media_aliases_and_their_indices() {
        let input = |alias: &str, index: &str| PromoteAliasInput {
            alias: alias.into(),
            index: index.into(),
            params: None,
        };
        assert_eq!(
            input("image", "image-init").check().unwrap(),
            MediaType::Image
        );
        assert_eq!(
            input("audio-filtered", "audio-init-filtered")
                .check()
                .unwrap(),
            MediaType::Audio
        );
        for (alias, index) in [
            ("image", "audio-init"),
            ("images", "image-init"),
            ("image", "image-filtered"),
            ("image", "image-"),
            ("image", "image-a*"),
            ("_all", "image-init"),
        ] {
            let err = input(alias, index).check().unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{alias} {index}");
        }
    }

    #[test]
    fn only_media_indices_may_be_deleted() {
        let input = |names: &[&str]| DeleteIndicesInput {
            indices: names.iter().map(|s| s.to_string()).collect(),
            params: None,
        };
        input(&["image-20260302000405", "audio-init-filtered"])
            .check()
            .unwrap();
        input(&[]).check().unwrap();
        for bad in ["image", "image-filtered", "*", "_all", "logs-1", "image-*"] {
            assert!(input(&[bad]).check().is_err(), "{bad}");
        }
    }
}
