//! The execution input and the validated parameters (`P`) every later step receives.
//!
//! Parsing is strict: unknown fields, wrong types and bad values are `InvalidInput` errors
//! naming the field. Table and index names in [`RefreshParams`] are derived from the
//! [`MediaType`] enum and a suffix restricted to characters Elasticsearch and SQL both take
//! literally, so nothing from the input can reach SQL as an identifier.

use crate::config::RefreshDefaults;
use crate::environment::Environment;
use crate::error::{shorten, ErrorKind, StepError};
use crate::media::MediaType;
use crate::names::{filtered_index_name, generated_suffix, index_name, validate_index_suffix};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The state machine's execution input (docs/ARCHITECTURE.md "Execution input").
/// Optional fields also accept `null`, which Step Functions produces for absent paths.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshInput {
    pub media_type: MediaType,
    pub environment: Environment,
    #[serde(default)]
    pub index_suffix: Option<String>,
    #[serde(default)]
    pub skip_copy: Option<bool>,
    #[serde(default)]
    pub allow_concurrent: Option<bool>,
    /// Wait (bounded by the stack's ConflictMaxWaits) while another run holds the
    /// environment, instead of being refused at once. The weekly schedules set it.
    #[serde(default)]
    pub wait_if_busy: Option<bool>,
    #[serde(default)]
    pub max_record_drop_pct: Option<f64>,
    #[serde(default)]
    pub override_record_drop: Option<bool>,
    #[serde(default)]
    pub override_search_guard: Option<bool>,
    #[serde(default)]
    pub row_limit: Option<u64>,
    /// How `<media>-<suffix>-filtered` is built; default [`FilteredIndexMode::DualWrite`].
    #[serde(default)]
    pub filtered_index: Option<FilteredIndexMode>,
}

/// How a data refresh builds the filtered index (`filtered_index` of the input and of `P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilteredIndexMode {
    /// The workers write both indices in the reindex's one pass (documents without a
    /// sensitive term also go to the filtered index); a verification gate checks it before
    /// promotion.
    #[default]
    DualWrite,
    /// After the main reindex, a throttled Elasticsearch `_reindex` copies the clean
    /// documents; the filtered-index machine always builds it this way.
    Reindex,
}

impl FilteredIndexMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FilteredIndexMode::DualWrite => "dual_write",
            FilteredIndexMode::Reindex => "reindex",
        }
    }

    /// What a `P` written before the field existed meant: the definitions of that time
    /// built the filtered index with `_reindex` only.
    fn before_the_field() -> Self {
        FilteredIndexMode::Reindex
    }
}

/// `P`: what `validate_input` returns and the state machine keeps at `$.params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshParams {
    pub media_type: MediaType,
    pub environment: Environment,
    pub index_suffix: String,
    pub new_index: String,
    pub new_filtered_index: String,
    pub temp_table: String,
    pub skip_copy: bool,
    pub allow_concurrent: bool,
    /// Absent in a `P` written before the field existed: refuse, as then.
    #[serde(default)]
    pub wait_if_busy: bool,
    pub max_record_drop_pct: f64,
    pub override_record_drop: bool,
    /// Promote even when the search guard's queries find too little. Absent in a `P` written
    /// before the field existed: the guard applies.
    #[serde(default)]
    pub override_search_guard: bool,
    /// `None`: no limit (always in production).
    pub row_limit: Option<u64>,
    pub worker_count: u32,
    pub launch_template: String,
    #[serde(default = "FilteredIndexMode::before_the_field")]
    pub filtered_index: FilteredIndexMode,
}

/// Parses the execution input from JSON. Errors name the offending field.
pub fn parse_refresh_input(value: &Value) -> Result<RefreshInput, StepError> {
    if !value.is_object() {
        return Err(StepError::invalid_input(format!(
            "execution input must be a JSON object, got {}",
            json_kind(value)
        )));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let detail = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            StepError::invalid_input(format!("execution input: {}", shorten(&detail)))
        } else {
            StepError::invalid_input(format!("{path}: {}", shorten(&detail)))
        }
    })
}

impl RefreshInput {
    /// Checks every value and fills in defaults. `execution_start` names the index when the
    /// input gives no suffix, so a retried validation produces the same names.
    pub fn validate(
        self,
        defaults: &RefreshDefaults,
        execution_start: DateTime<Utc>,
    ) -> Result<RefreshParams, StepError> {
        let media = self.media_type;
        let environment = self.environment;
        if let Some(pinned) = defaults.deployment_environment {
            if pinned != environment {
                return Err(StepError::invalid_input(format!(
                    "environment: this deployment serves {pinned}, not {environment}"
                )));
            }
        }

        let index_suffix = match self.index_suffix {
            Some(suffix) => suffix,
            None => generated_suffix(execution_start),
        };
        validate_index_suffix(media, &index_suffix)?;

        let max_record_drop_pct = self
            .max_record_drop_pct
            .unwrap_or(defaults.max_record_drop_pct);
        if !(max_record_drop_pct.is_finite() && (0.0..=100.0).contains(&max_record_drop_pct)) {
            return Err(StepError::invalid_input(format!(
                "max_record_drop_pct: {max_record_drop_pct} is not a percentage between 0 and 100"
            )));
        }

        let row_limit = match (environment, self.row_limit) {
            (_, Some(0)) => {
                return Err(StepError::invalid_input("row_limit: must be at least 1"));
            }
            (Environment::Production, Some(ignored)) => {
                tracing::warn!(
                    row_limit = ignored,
                    "row_limit is ignored in production: copying every row"
                );
                None
            }
            (Environment::Production, None) => None,
            (Environment::Staging, limit) => {
                Some(limit.unwrap_or(defaults.row_limit_non_production))
            }
        };

        let launch_template = defaults.launch_template(environment)?.to_string();

        Ok(RefreshParams {
            media_type: media,
            environment,
            new_index: index_name(media, &index_suffix),
            new_filtered_index: filtered_index_name(media, &index_suffix),
            index_suffix,
            temp_table: media.temp_table().to_string(),
            skip_copy: self.skip_copy.unwrap_or(false),
            allow_concurrent: self.allow_concurrent.unwrap_or(false),
            wait_if_busy: self.wait_if_busy.unwrap_or(false),
            max_record_drop_pct,
            override_record_drop: self.override_record_drop.unwrap_or(false),
            override_search_guard: self.override_search_guard.unwrap_or(false),
            row_limit,
            worker_count: defaults.worker_count(environment),
            launch_template,
            filtered_index: self.filtered_index.unwrap_or_default(),
        })
    }
}

impl RefreshParams {
    /// Re-checks `P` as a later step receives it back from the state machine: the derived
    /// names must be exactly what the media type and suffix produce, so a hand-edited `P`
    /// cannot point a step at another table or index.
    pub fn check(&self) -> Result<(), StepError> {
        validate_index_suffix(self.media_type, &self.index_suffix)?;
        let expect = |field: &str, actual: &str, expected: &str| {
            if actual == expected {
                Ok(())
            } else {
                Err(StepError::invalid_input(format!(
                    "params.{field}: {:?} does not match media type and suffix (expected {expected:?})",
                    shorten(actual)
                )))
            }
        };
        expect(
            "new_index",
            &self.new_index,
            &index_name(self.media_type, &self.index_suffix),
        )?;
        expect(
            "new_filtered_index",
            &self.new_filtered_index,
            &filtered_index_name(self.media_type, &self.index_suffix),
        )?;
        expect("temp_table", &self.temp_table, self.media_type.temp_table())?;
        if !(self.max_record_drop_pct.is_finite()
            && (0.0..=100.0).contains(&self.max_record_drop_pct))
        {
            return Err(StepError::invalid_input(
                "params.max_record_drop_pct: not between 0 and 100",
            ));
        }
        if self.row_limit == Some(0) {
            return Err(StepError::invalid_input(
                "params.row_limit: must be at least 1",
            ));
        }
        if self.environment == Environment::Production && self.row_limit.is_some() {
            return Err(StepError::invalid_input(
                "params.row_limit: must be null in production",
            ));
        }
        if self.worker_count == 0 {
            return Err(StepError::invalid_input(
                "params.worker_count: must be at least 1",
            ));
        }
        Ok(())
    }

    /// `P` on the filtered-index machine, which has no workers to write with: it always
    /// rebuilds with `_reindex`, and an input asking for `dual_write` there is refused.
    pub fn for_filtered_index_machine(
        mut self,
        requested: Option<FilteredIndexMode>,
    ) -> Result<RefreshParams, StepError> {
        if requested == Some(FilteredIndexMode::DualWrite) {
            return Err(StepError::invalid_input(
                "filtered_index: \"dual_write\" needs the data refresh's workers; the filtered-index machine rebuilds with \"reindex\" only (leave the field out)",
            ));
        }
        self.filtered_index = FilteredIndexMode::Reindex;
        Ok(self)
    }

    /// Parses and checks `P` from a step's input.
    pub fn from_value(value: &Value) -> Result<RefreshParams, StepError> {
        let params: RefreshParams = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            StepError::new(
                ErrorKind::InvalidInput,
                format!("params.{path}: {}", shorten(&e.into_inner().to_string())),
            )
        })?;
        params.check()?;
        Ok(params)
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn defaults() -> RefreshDefaults {
        RefreshDefaults {
            launch_template_staging: Some("lt-staging".into()),
            launch_template_production: Some("lt-production".into()),
            ..RefreshDefaults::default()
        }
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 4, 5).unwrap()
    }

    fn validate(value: Value) -> Result<RefreshParams, StepError> {
        parse_refresh_input(&value)?.validate(&defaults(), start())
    }

    #[test]
    fn minimal_input_gets_defaults_and_generated_names() {
        let params = validate(json!({"media_type": "image", "environment": "staging"})).unwrap();
        assert_eq!(params.index_suffix, "20260302000405");
        assert_eq!(params.new_index, "image-20260302000405");
        assert_eq!(params.new_filtered_index, "image-20260302000405-filtered");
        assert_eq!(params.temp_table, "temp_import_image");
        assert!(!params.skip_copy && !params.allow_concurrent && !params.override_record_drop);
        assert!(!params.override_search_guard);
        assert!(
            !params.wait_if_busy,
            "an operator's run is refused, not queued"
        );
        assert_eq!(params.max_record_drop_pct, 10.0);
        assert_eq!(params.row_limit, Some(100_000));
        assert_eq!(params.worker_count, 2);
        assert_eq!(params.launch_template, "lt-staging");
        assert_eq!(params.filtered_index, FilteredIndexMode::DualWrite);
        params.check().unwrap();
    }

    #[test]
    fn the_filtered_index_mode_is_read_and_checked() {
        let base = json!({"media_type": "image", "environment": "staging"});
        let with = |mode: Value| {
            let mut input = base.clone();
            input["filtered_index"] = mode;
            validate(input)
        };
        assert_eq!(
            with(json!("reindex")).unwrap().filtered_index,
            FilteredIndexMode::Reindex
        );
        assert_eq!(
            with(json!("dual_write")).unwrap().filtered_index,
            FilteredIndexMode::DualWrite
        );
        assert_eq!(
            with(Value::Null).unwrap().filtered_index,
            FilteredIndexMode::DualWrite
        );
        for bad in [json!("both"), json!("DUAL_WRITE"), json!(true), json!(1)] {
            let err = with(bad.clone()).unwrap_err();
            assert!(
                err.message.starts_with("filtered_index: "),
                "{bad}: {}",
                err.message
            );
        }
        // A P written before the field: its definitions built the filtered index by _reindex.
        let mut params = serde_json::to_value(with(json!("dual_write")).unwrap()).unwrap();
        params.as_object_mut().unwrap().remove("filtered_index");
        assert_eq!(
            RefreshParams::from_value(&params).unwrap().filtered_index,
            FilteredIndexMode::Reindex
        );
    }

    #[test]
    fn the_filtered_index_machine_builds_by_reindex_only() {
        let params = validate(json!({"media_type": "audio", "environment": "staging"})).unwrap();
        let on_filtered = params.clone().for_filtered_index_machine(None).unwrap();
        assert_eq!(on_filtered.filtered_index, FilteredIndexMode::Reindex);
        assert!(params
            .clone()
            .for_filtered_index_machine(Some(FilteredIndexMode::Reindex))
            .is_ok());
        let err = params
            .for_filtered_index_machine(Some(FilteredIndexMode::DualWrite))
            .unwrap_err();
        assert!(
            err.message.starts_with("filtered_index: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn full_input_round_trips_through_json() {
        let params = validate(json!({
            "media_type": "audio", "environment": "staging", "index_suffix": "init",
            "skip_copy": true, "allow_concurrent": true, "max_record_drop_pct": 2.5,
            "override_record_drop": true, "row_limit": 7, "wait_if_busy": true,
            "override_search_guard": true
        }))
        .unwrap();
        assert!(params.wait_if_busy);
        assert!(params.override_search_guard);
        assert_eq!(params.new_index, "audio-init");
        assert_eq!(params.new_filtered_index, "audio-init-filtered");
        assert!(params.skip_copy && params.allow_concurrent && params.override_record_drop);
        assert_eq!(params.max_record_drop_pct, 2.5);
        assert_eq!(params.row_limit, Some(7));
        let value = serde_json::to_value(&params).unwrap();
        assert_eq!(value["row_limit"], json!(7));
        assert_eq!(value["media_type"], json!("audio"));
        assert_eq!(RefreshParams::from_value(&value).unwrap(), params);
    }

    #[test]
    fn production_has_no_row_limit_and_its_own_workers() {
        let params =
            validate(json!({"media_type": "audio", "environment": "production", "row_limit": 5}))
                .unwrap();
        assert_eq!(params.row_limit, None);
        assert_eq!(params.worker_count, 6);
        assert_eq!(params.launch_template, "lt-production");
        assert_eq!(
            serde_json::to_value(&params).unwrap()["row_limit"],
            Value::Null
        );
    }

    #[test]
    fn nulls_count_as_absent() {
        let params = validate(json!({
            "media_type": "image", "environment": "staging", "index_suffix": null,
            "skip_copy": null, "row_limit": null, "max_record_drop_pct": null
        }))
        .unwrap();
        assert_eq!(params.index_suffix, "20260302000405");
        assert_eq!(params.row_limit, Some(100_000));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"media_type": "video", "environment": "staging"}),
                "media_type",
            ),
            (
                json!({"media_type": "Image", "environment": "staging"}),
                "media_type",
            ),
            (json!({"environment": "staging"}), "media_type"),
            (
                json!({"media_type": "image", "environment": "prod"}),
                "environment",
            ),
            (json!({"media_type": "image"}), "environment"),
            // serde's externally tagged form of a unit variant: not a string, refused.
            (
                json!({"media_type": {"audio": null}, "environment": "staging"}),
                "media_type",
            ),
            (
                json!({"media_type": {"image": []}, "environment": "staging"}),
                "media_type",
            ),
            (
                json!({"media_type": "image", "environment": {"staging": null}}),
                "environment",
            ),
            (
                json!({"media_type": "image", "environment": {"production": {}}}),
                "environment",
            ),
            (
                json!({"media_type": ["image"], "environment": "staging"}),
                "media_type",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "skip_copy": "yes"}),
                "skip_copy",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "allow_concurrent": 1}),
                "allow_concurrent",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "wait_if_busy": "no"}),
                "wait_if_busy",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "row_limit": -1}),
                "row_limit",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "row_limit": 1.5}),
                "row_limit",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "row_limit": 0}),
                "row_limit",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "max_record_drop_pct": 101}),
                "max_record_drop_pct",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "max_record_drop_pct": -0.1}),
                "max_record_drop_pct",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "max_record_drop_pct": "5"}),
                "max_record_drop_pct",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "index_suffix": 5}),
                "index_suffix",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "index_suffix": "Init"}),
                "index_suffix",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "indexsuffix": "init"}),
                "indexsuffix",
            ),
            (
                json!({"media_type": "image", "environment": "staging", "table": "image; drop table x"}),
                "table",
            ),
        ];
        for (input, field) in cases {
            let err = validate(input.clone()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{input}");
            assert!(err.message.contains(field), "{input}: {}", err.message);
        }
        let err = parse_refresh_input(&json!(["image"])).unwrap_err();
        assert!(err.message.contains("JSON object"), "{}", err.message);
    }

    #[test]
    fn missing_launch_template_is_configuration_not_input() {
        let input =
            parse_refresh_input(&json!({"media_type": "image", "environment": "production"}))
                .unwrap();
        let err = input
            .validate(&RefreshDefaults::default(), start())
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration);
        assert!(err.message.contains("LAUNCH_TEMPLATE_PRODUCTION"));
    }

    #[test]
    fn pinned_deployment_refuses_the_other_environment() {
        let pinned = RefreshDefaults {
            deployment_environment: Some(Environment::Staging),
            ..defaults()
        };
        let input =
            parse_refresh_input(&json!({"media_type": "image", "environment": "production"}))
                .unwrap();
        let err = input.validate(&pinned, start()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(err.message.contains("environment"));
    }

    #[test]
    fn tampered_params_are_refused() {
        let params =
            validate(json!({"media_type": "image", "environment": "staging", "index_suffix": "x"}))
                .unwrap();
        let mut value = serde_json::to_value(&params).unwrap();
        value["temp_table"] = json!("image");
        assert!(RefreshParams::from_value(&value)
            .unwrap_err()
            .message
            .contains("temp_table"));
        let mut value = serde_json::to_value(&params).unwrap();
        value["new_index"] = json!("image");
        assert!(RefreshParams::from_value(&value)
            .unwrap_err()
            .message
            .contains("new_index"));
        for (field, object) in [
            ("media_type", json!({"image": null})),
            ("environment", json!({"staging": null})),
        ] {
            let mut value = serde_json::to_value(&params).unwrap();
            value[field] = object;
            let err = RefreshParams::from_value(&value).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput);
            assert!(err.message.contains(field), "{}", err.message);
        }
        let mut value = serde_json::to_value(&params).unwrap();
        value["extra"] = json!(1);
        assert!(RefreshParams::from_value(&value)
            .unwrap_err()
            .message
            .contains("extra"));
    }

    use crate::names::tests::es_accepts_index_name;

    proptest! {
        #[test]
        fn any_json_object_either_validates_or_names_a_problem(
            suffix in proptest::option::of("\\PC{0,40}"),
            pct in proptest::option::of(-50.0f64..150.0),
            limit in proptest::option::of(0u64..1000),
        ) {
            let mut input = json!({"media_type": "image", "environment": "staging"});
            if let Some(s) = &suffix { input["index_suffix"] = json!(s); }
            if let Some(p) = pct { input["max_record_drop_pct"] = json!(p); }
            if let Some(l) = limit { input["row_limit"] = json!(l); }
            match validate(input) {
                Ok(params) => {
                    prop_assert!(params.check().is_ok());
                    prop_assert!(es_accepts_index_name(&params.new_filtered_index));
                }
                Err(e) => prop_assert_eq!(e.kind, ErrorKind::InvalidInput),
            }
        }
    }
}
