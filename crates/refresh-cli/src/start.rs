//! `refresh start`: the execution input from the flags, checked with the very parse and
//! validation the `validate_input` Lambda runs (`refresh_core::input`), before any AWS call.

use crate::error::CliError;
use chrono::{DateTime, Utc};
use refresh_core::config::RefreshDefaults;
use refresh_core::error::ErrorKind;
use refresh_core::input::{parse_refresh_input, RefreshParams};
use serde_json::{Map, Value};

/// What `start` was asked for, flag by flag (only what was given is sent: the deployment's
/// own defaults apply to the rest).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartRequest {
    pub environment: String,
    pub suffix: Option<String>,
    pub skip_copy: bool,
    pub wait_if_busy: bool,
    pub allow_concurrent: bool,
    pub row_limit: Option<u64>,
    pub max_drop_pct: Option<f64>,
    pub override_drop: bool,
    pub override_search_guard: bool,
    pub filtered_index: Option<String>,
}

/// Execution input field → the flag that sets it, so an error names what the operator typed.
const FLAGS: [(&str, &str); 11] = [
    ("media_type", "--media"),
    ("environment", "--environment"),
    ("index_suffix", "--suffix"),
    ("skip_copy", "--skip-copy"),
    ("allow_concurrent", "--allow-concurrent"),
    ("wait_if_busy", "--wait-if-busy"),
    ("max_record_drop_pct", "--max-drop-pct"),
    ("override_record_drop", "--override-drop"),
    ("override_search_guard", "--override-search-guard"),
    ("row_limit", "--row-limit"),
    ("filtered_index", "--filtered-index"),
];

/// The launch template is the deployment's business; validation needs one to be named.
const TEMPLATE_CHECKED_BY_DEPLOYMENT: &str = "(resolved by the deployment)";

/// The execution input for one media type.
pub fn build_input(media: &str, request: &StartRequest) -> Value {
    let mut input = Map::new();
    input.insert("media_type".into(), Value::from(media));
    input.insert(
        "environment".into(),
        Value::from(request.environment.as_str()),
    );
    if let Some(suffix) = &request.suffix {
        input.insert("index_suffix".into(), Value::from(suffix.as_str()));
    }
    for (key, set) in [
        ("skip_copy", request.skip_copy),
        ("allow_concurrent", request.allow_concurrent),
        ("wait_if_busy", request.wait_if_busy),
        ("override_record_drop", request.override_drop),
        ("override_search_guard", request.override_search_guard),
    ] {
        if set {
            input.insert(key.into(), Value::Bool(true));
        }
    }
    if let Some(mode) = &request.filtered_index {
        input.insert("filtered_index".into(), Value::from(mode.as_str()));
    }
    if let Some(limit) = request.row_limit {
        input.insert("row_limit".into(), Value::from(limit));
    }
    if let Some(pct) = request.max_drop_pct {
        // JSON has no NaN or infinity (`Value::from` would send null, read as "not given"):
        // such a value goes as text, which the shared validation refuses naming the field.
        let value = serde_json::Number::from_f64(pct)
            .map(Value::Number)
            .unwrap_or_else(|| Value::from(pct.to_string()));
        input.insert("max_record_drop_pct".into(), value);
    }
    Value::Object(input)
}

/// Checks the input exactly as `validate_input` will. `now` stands in for the execution's
/// start time (it only names the index when no suffix is given).
pub fn validate(input: &Value, now: DateTime<Utc>) -> Result<RefreshParams, CliError> {
    let defaults = RefreshDefaults {
        launch_template_staging: Some(TEMPLATE_CHECKED_BY_DEPLOYMENT.into()),
        launch_template_production: Some(TEMPLATE_CHECKED_BY_DEPLOYMENT.into()),
        ..RefreshDefaults::default()
    };
    parse_refresh_input(input)
        .and_then(|parsed| parsed.validate(&defaults, now))
        .map_err(|e| match e.kind {
            ErrorKind::InvalidInput => CliError::Refused(name_flag(&e.message)),
            _ => CliError::Refused(e.message),
        })
}

/// `index_suffix: bad` → `--suffix: bad`.
fn name_flag(message: &str) -> String {
    let message = crate::interpret::one_line(message, 400);
    for (field, flag) in FLAGS {
        if let Some(rest) = message.strip_prefix(field) {
            if rest.starts_with(':') || rest.starts_with(' ') {
                return format!("{flag}{rest}");
            }
        }
    }
    message
}

/// What the operator should know before the run starts (nothing is refused here).
pub fn warnings(request: &StartRequest) -> Vec<String> {
    let mut out = Vec::new();
    if request.environment == "production" && request.row_limit.is_some() {
        out.push("--row-limit is ignored in production: every row is copied".to_string());
    }
    if request.override_drop {
        out.push("--override-drop: the drop guard will not stop promotion".to_string());
    }
    if request.override_search_guard {
        out.push("--override-search-guard: the search guard will not stop promotion".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 4, 5)
            .single()
            .expect("valid time")
    }

    fn staging() -> StartRequest {
        StartRequest {
            environment: "staging".into(),
            ..StartRequest::default()
        }
    }

    #[test]
    fn only_given_flags_are_sent() {
        assert_eq!(
            build_input("image", &staging()),
            json!({"media_type": "image", "environment": "staging"})
        );
        let full = StartRequest {
            environment: "staging".into(),
            suffix: Some("init".into()),
            skip_copy: true,
            wait_if_busy: true,
            allow_concurrent: false,
            row_limit: Some(500),
            max_drop_pct: Some(2.5),
            override_drop: false,
            override_search_guard: true,
            filtered_index: Some("reindex".into()),
        };
        assert_eq!(
            build_input("audio", &full),
            json!({"media_type": "audio", "environment": "staging", "index_suffix": "init",
                   "skip_copy": true, "wait_if_busy": true, "row_limit": 500,
                   "max_record_drop_pct": 2.5, "override_search_guard": true,
                   "filtered_index": "reindex"})
        );
        let params = validate(&build_input("audio", &full), now()).expect("valid");
        assert!(params.override_search_guard, "the Lambda's rule reads it");
        assert_eq!(params.filtered_index.as_str(), "reindex");
        assert!(warnings(&full)[0].starts_with("--override-search-guard"));
    }

    #[test]
    fn a_valid_request_yields_the_lambdas_params() {
        let mut request = staging();
        request.suffix = Some("init".into());
        let params = validate(&build_input("audio", &request), now()).expect("valid");
        assert_eq!(params.new_index, "audio-init");
        assert_eq!(params.new_filtered_index, "audio-init-filtered");
        let generated = validate(&build_input("image", &staging()), now()).expect("valid");
        assert_eq!(generated.new_index, "image-20260302000405");
    }

    /// Each bad value is refused by the shared rules, with the flag named first.
    #[test]
    fn bad_values_are_refused_naming_the_flag() {
        let cases: Vec<(StartRequest, &str)> = vec![
            (
                StartRequest {
                    filtered_index: Some("both".into()),
                    ..staging()
                },
                "--filtered-index",
            ),
            (
                StartRequest {
                    suffix: Some("Init".into()),
                    ..staging()
                },
                "--suffix",
            ),
            (
                StartRequest {
                    suffix: Some("-x".into()),
                    ..staging()
                },
                "--suffix",
            ),
            (
                StartRequest {
                    suffix: Some("x".repeat(300)),
                    ..staging()
                },
                "--suffix",
            ),
            (
                StartRequest {
                    row_limit: Some(0),
                    ..staging()
                },
                "--row-limit",
            ),
            (
                StartRequest {
                    max_drop_pct: Some(150.0),
                    ..staging()
                },
                "--max-drop-pct",
            ),
            (
                StartRequest {
                    max_drop_pct: Some(-1.0),
                    ..staging()
                },
                "--max-drop-pct",
            ),
            (
                StartRequest {
                    max_drop_pct: Some(f64::NAN),
                    ..staging()
                },
                "--max-drop-pct",
            ),
            (
                StartRequest {
                    max_drop_pct: Some(f64::INFINITY),
                    ..staging()
                },
                "--max-drop-pct",
            ),
            (
                StartRequest {
                    environment: "prod".into(),
                    ..StartRequest::default()
                },
                "--environment",
            ),
        ];
        for (request, flag) in cases {
            let err = validate(&build_input("image", &request), now()).expect_err("refused");
            assert_eq!(err.exit_code(), crate::error::EXIT_REFUSED, "{request:?}");
            let text = err.to_string();
            let rest = text.strip_prefix(flag).unwrap_or_default();
            assert!(
                rest.starts_with(':') || rest.starts_with(' '),
                "{request:?}: {text}"
            );
            assert!(!text.contains('\n'), "one line: {text}");
        }
        let err = validate(&build_input("video", &staging()), now()).expect_err("refused");
        assert!(err.to_string().starts_with("--media:"), "{err}");
    }

    #[test]
    fn production_row_limit_is_warned_about() {
        let request = StartRequest {
            environment: "production".into(),
            row_limit: Some(10),
            ..StartRequest::default()
        };
        assert!(warnings(&request)[0].contains("--row-limit"));
        assert!(warnings(&staging()).is_empty());
        let params = validate(&build_input("image", &request), now()).expect("valid");
        assert_eq!(params.row_limit, None);
    }
}
