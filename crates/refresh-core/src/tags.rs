//! Tag filtering (DESIGN §1 step 3): the configuration, a pure Rust reference filter, and the
//! set-based SQL expression that does the same inside PostgreSQL.
//!
//! A tag is kept only when all of these hold:
//! - it is a JSON object whose `name` is a string;
//! - its `accuracy` is absent, null, or a number (or a decimal numeric string such as
//!   `"0.95"`, as the replaced system accepted) `>= min_accuracy`; any other `accuracy`
//!   (`"high"`, `true`, an object) cannot be trusted and the tag is removed;
//! - its `provider`, when a string, is not one of `denied_providers` (exact match);
//! - its name, lower-cased, is not one of `denied_names` and contains none of
//!   `denied_substrings`.
//!
//! Lower-casing folds ASCII letters only, in Rust and in SQL alike (`lower(x COLLATE "C")`),
//! so the result never depends on the database's locale; every shipped list entry is ASCII.
//! A non-array `tags` value holds no valid tag and becomes SQL NULL; `null` stays null; an
//! array whose tags are all removed becomes `[]`. Kept tags are unchanged and keep their order.

use crate::error::StepError;
use crate::pg::sql::quote_literal;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::OnceLock;
use tokio_postgres::types::ToSql;

/// The brief's defaults; operators override them with `TAG_FILTER_CONFIG` (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TagFilterConfig {
    /// Tags with a lower accuracy are removed.
    pub min_accuracy: f64,
    /// Tags from these providers (exact `provider` value) are removed.
    pub denied_providers: Vec<String>,
    /// Tags whose lower-cased name is exactly one of these are removed.
    pub denied_names: Vec<String>,
    /// Tags whose lower-cased name contains one of these are removed.
    pub denied_substrings: Vec<String>,
}

impl Default for TagFilterConfig {
    fn default() -> Self {
        let strings = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        TagFilterConfig {
            min_accuracy: 0.90,
            denied_providers: strings(&["rekognition"]),
            denied_names: strings(&[
                "no person",
                "squareformat",
                "uploaded:by=flickrmobile",
                "uploaded:by=instagram",
                "flickriosapp:filter=flamingo",
                "by",
            ]),
            denied_substrings: strings(&[
                "flickriosapp",
                "uploaded",
                ":",
                "=",
                "cc0",
                "by-nc",
                "by-nd",
                "by-sa",
                "by-nc-nd",
                "by-nc-sa",
                "pdm",
            ]),
        }
    }
}

impl TagFilterConfig {
    /// Parses `TAG_FILTER_CONFIG` JSON (missing fields take the defaults) and validates it.
    pub fn from_json(json: &str) -> Result<Self, StepError> {
        let config: TagFilterConfig = serde_json::from_str(json).map_err(|e| {
            StepError::new(
                crate::error::ErrorKind::Configuration,
                format!("TAG_FILTER_CONFIG: {e}"),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Rejects a threshold outside `[0, 1]` and empty list entries (an empty substring would
    /// remove every tag).
    pub fn validate(&self) -> Result<(), StepError> {
        let bad = |msg: String| Err(StepError::new(crate::error::ErrorKind::Configuration, msg));
        if !self.min_accuracy.is_finite() || !(0.0..=1.0).contains(&self.min_accuracy) {
            return bad(format!(
                "TAG_FILTER_CONFIG.min_accuracy must be between 0 and 1, got {}",
                self.min_accuracy
            ));
        }
        for (field, list) in [
            ("denied_providers", &self.denied_providers),
            ("denied_names", &self.denied_names),
            ("denied_substrings", &self.denied_substrings),
        ] {
            if list.iter().any(|s| s.is_empty()) {
                return bad(format!(
                    "TAG_FILTER_CONFIG.{field} must not contain an empty string"
                ));
            }
        }
        Ok(())
    }

    /// Whether one tag survives (the reference semantics, see the module docs).
    pub fn keeps(&self, tag: &Value) -> bool {
        let Some(obj) = tag.as_object() else {
            return false;
        };
        let Some(name) = obj.get("name").and_then(Value::as_str) else {
            return false;
        };
        let accuracy_ok = match tag_accuracy(obj.get("accuracy")) {
            TagAccuracy::Missing => true,
            TagAccuracy::Number(a) => a >= self.min_accuracy,
            TagAccuracy::Invalid => false,
        };
        if !accuracy_ok {
            return false;
        }
        if let Some(provider) = obj.get("provider").and_then(Value::as_str) {
            if self.denied_providers.iter().any(|p| p == provider) {
                return false;
            }
        }
        let lower = name.to_ascii_lowercase();
        if self
            .denied_names
            .iter()
            .any(|n| n.to_ascii_lowercase() == lower)
        {
            return false;
        }
        !self
            .denied_substrings
            .iter()
            .any(|s| lower.contains(&s.to_ascii_lowercase()))
    }

    /// The reference filter over a whole `tags` value; `None` is SQL NULL.
    pub fn filter(&self, tags: Option<&Value>) -> Option<Value> {
        match tags? {
            Value::Array(items) => Some(Value::Array(
                items.iter().filter(|t| self.keeps(t)).cloned().collect(),
            )),
            Value::Null => None,
            _ => None,
        }
    }

    /// The bound values for [`TagFilterSql::expression`], in parameter order.
    pub fn sql_params(&self) -> TagFilterSql {
        let lower = |xs: &[String]| xs.iter().map(|s| s.to_ascii_lowercase()).collect();
        TagFilterSql {
            // Shortest round-trip decimal, so PostgreSQL's numeric sees the same threshold.
            min_accuracy: format!("{}", self.min_accuracy),
            denied_providers: self.denied_providers.clone(),
            denied_names: lower(&self.denied_names),
            denied_substring_patterns: self
                .denied_substrings
                .iter()
                .map(|s| contains_pattern(&s.to_ascii_lowercase()))
                .collect(),
        }
    }
}

/// A `LIKE` pattern (escape character `\`, PostgreSQL's default) that matches any text
/// containing `needle`: `LIKE` is exact under the `"C"` collation, like `str::contains`.
fn contains_pattern(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A decimal number, as both sides accept it in a string `accuracy`. The exponent is capped
/// at three digits so PostgreSQL's `numeric` cast can never overflow.
pub const NUMERIC_STRING_PATTERN: &str =
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$";

fn numeric_string_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(NUMERIC_STRING_PATTERN).expect("constant pattern is valid"))
}

/// How a tag's `accuracy` value reads. The one reading, shared by the filter
/// ([`TagFilterConfig::keeps`]) and the document (`document::parse_tags`), so that a tag the
/// filter kept for its accuracy carries that same accuracy in the index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TagAccuracy {
    /// No `accuracy` key, or `null`.
    Missing,
    /// A JSON number, or a decimal numeric string ([`NUMERIC_STRING_PATTERN`], e.g. `"0.95"`)
    /// read as its number.
    Number(f64),
    /// Anything else (`"high"`, `" 0.95"`, `true`, an object): not to be trusted.
    Invalid,
}

/// Reads a tag's `accuracy` (see [`TagAccuracy`]). Allocation-free.
pub fn tag_accuracy(value: Option<&Value>) -> TagAccuracy {
    match value {
        None | Some(Value::Null) => TagAccuracy::Missing,
        Some(Value::Number(n)) => n.as_f64().map_or(TagAccuracy::Invalid, TagAccuracy::Number),
        // Every string the pattern accepts is valid `f64` syntax (it may round to ±inf or 0).
        Some(Value::String(s)) if numeric_string_re().is_match(s) => s
            .parse::<f64>()
            .map_or(TagAccuracy::Invalid, TagAccuracy::Number),
        Some(_) => TagAccuracy::Invalid,
    }
}

/// The filter's configuration as SQL parameters.
#[derive(Debug, Clone)]
pub struct TagFilterSql {
    min_accuracy: String,
    denied_providers: Vec<String>,
    denied_names: Vec<String>,
    /// `%<substring>%` with `\`, `%` and `_` escaped: one `LIKE ANY` per tag instead of a
    /// correlated `unnest` + `strpos` per tag and substring (a fifth of the expression's cost
    /// at the defaults, `BENCHMARKS.md`).
    denied_substring_patterns: Vec<String>,
}

/// How many parameters [`TagFilterSql::expression`] takes.
pub const TAG_FILTER_PARAM_COUNT: usize = 4;

impl TagFilterSql {
    /// The four bound values, in the order the expression numbers them.
    pub fn params(&self) -> [&(dyn ToSql + Sync); TAG_FILTER_PARAM_COUNT] {
        [
            &self.min_accuracy,
            &self.denied_providers,
            &self.denied_names,
            &self.denied_substring_patterns,
        ]
    }

    /// A jsonb expression filtering `column` (a fixed SQL expression, never caller input),
    /// taking its configuration from parameters `$first .. $first+3`. One scalar subquery per
    /// row, no round trips; usable in a `SELECT` list and in `UPDATE ... SET`.
    pub fn expression(column: &str, first: usize) -> String {
        let min = format!("${first}::text::numeric");
        let providers = format!("${}::text[]", first + 1);
        let names = format!("${}::text[]", first + 2);
        let substring_patterns = format!("${}::text[]", first + 3);
        let pattern = quote_literal(NUMERIC_STRING_PATTERN);
        format!(
            "(CASE WHEN jsonb_typeof({column}) = 'array' THEN COALESCE((\
               SELECT jsonb_agg(t.e ORDER BY t.ord) \
               FROM jsonb_array_elements({column}) WITH ORDINALITY AS t(e, ord) \
               CROSS JOIN LATERAL (SELECT lower((t.e ->> 'name') COLLATE \"C\") AS name) AS n \
               WHERE jsonb_typeof(t.e) = 'object' \
                 AND jsonb_typeof(t.e -> 'name') = 'string' \
                 AND (CASE COALESCE(jsonb_typeof(t.e -> 'accuracy'), 'null') \
                        WHEN 'null' THEN true \
                        WHEN 'number' THEN (t.e -> 'accuracy')::numeric >= {min} \
                        WHEN 'string' THEN CASE WHEN (t.e ->> 'accuracy') ~ {pattern} \
                          THEN (t.e ->> 'accuracy')::numeric >= {min} ELSE false END \
                        ELSE false END) \
                 AND (jsonb_typeof(t.e -> 'provider') = 'string' \
                      AND (t.e ->> 'provider') = ANY({providers})) IS NOT TRUE \
                 AND (n.name = ANY({names})) IS NOT TRUE \
                 AND (n.name LIKE ANY({substring_patterns})) IS NOT TRUE\
             ), '[]'::jsonb) END)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_the_briefs() {
        let c = TagFilterConfig::default();
        assert_eq!(c.min_accuracy, 0.90);
        assert_eq!(c.denied_providers, vec!["rekognition"]);
        assert_eq!(c.denied_names.len(), 6);
        assert_eq!(c.denied_substrings.len(), 11);
        c.validate().unwrap();
    }

    #[test]
    fn config_json_overrides_and_defaults() {
        let c = TagFilterConfig::from_json(r#"{"min_accuracy": 0.5}"#).unwrap();
        assert_eq!(c.min_accuracy, 0.5);
        assert_eq!(c.denied_providers, vec!["rekognition"]);
        let e = TagFilterConfig::from_json(r#"{"min_accuracy": 2}"#).unwrap_err();
        assert!(e.message.contains("min_accuracy"), "{e}");
        let e = TagFilterConfig::from_json(r#"{"denied_substrings": ["a", ""]}"#).unwrap_err();
        assert!(e.message.contains("denied_substrings"), "{e}");
        let e = TagFilterConfig::from_json(r#"{"min_acuracy": 0.5}"#).unwrap_err();
        assert!(e.message.contains("min_acuracy"), "{e}");
    }

    #[test]
    fn reference_filter_rules() {
        let c = TagFilterConfig::default();
        let keep = |t: Value| c.keeps(&t);
        assert!(keep(json!({"name": "cat"})));
        assert!(keep(json!({"name": "cat", "accuracy": 0.9})));
        assert!(keep(json!({"name": "cat", "accuracy": null})));
        assert!(keep(json!({"name": "cat", "accuracy": "0.95"})));
        assert!(!keep(json!({"name": "cat", "accuracy": 0.89})));
        assert!(!keep(json!({"name": "cat", "accuracy": "0.5"})));
        assert!(!keep(json!({"name": "cat", "accuracy": "high"})));
        assert!(!keep(json!({"name": "cat", "accuracy": true})));
        assert!(!keep(json!({"name": "cat", "provider": "rekognition"})));
        assert!(keep(json!({"name": "cat", "provider": "Rekognition"})));
        assert!(keep(json!({"name": "cat", "provider": 5})));
        assert!(!keep(json!({"name": "BY"})));
        assert!(keep(json!({"name": "bycycle"})));
        assert!(!keep(json!({"name": "Uploaded from phone"})));
        assert!(!keep(json!({"name": "a:b"})));
        assert!(!keep(json!({"accuracy": 0.99})));
        assert!(!keep(json!({"name": 3})));
        assert!(!keep(json!("cat")));
        assert!(!keep(json!(null)));
    }

    #[test]
    fn accuracy_reads_numbers_and_decimal_strings_alike() {
        let read = |v: Value| tag_accuracy(Some(&v));
        assert_eq!(tag_accuracy(None), TagAccuracy::Missing);
        assert_eq!(read(json!(null)), TagAccuracy::Missing);
        assert_eq!(read(json!(0.95)), TagAccuracy::Number(0.95));
        assert_eq!(read(json!(1)), TagAccuracy::Number(1.0));
        assert_eq!(read(json!("0.95")), TagAccuracy::Number(0.95));
        assert_eq!(read(json!("+.5")), TagAccuracy::Number(0.5));
        assert_eq!(read(json!("1.")), TagAccuracy::Number(1.0));
        assert_eq!(read(json!("95e-2")), TagAccuracy::Number(0.95));
        for invalid in [
            json!("high"),
            json!(" 0.95"),
            json!("0.95 "),
            json!("1e1000"),
            json!("inf"),
            json!("NaN"),
            json!("0x1"),
            json!(""),
            json!(true),
            json!({"value": 1}),
            json!([0.95]),
        ] {
            assert_eq!(read(invalid.clone()), TagAccuracy::Invalid, "{invalid}");
        }
        // The filter keeps a numeric-string accuracy by its number, as the document reads it.
        let c = TagFilterConfig::default();
        assert!(c.keeps(&json!({"name": "cat", "accuracy": "0.95"})));
        assert!(c.keeps(&json!({"name": "cat", "accuracy": "9E-1"})));
        assert!(!c.keeps(&json!({"name": "cat", "accuracy": "0.85"})));
    }

    #[test]
    fn whole_value_filter() {
        let c = TagFilterConfig::default();
        assert_eq!(c.filter(None), None);
        assert_eq!(c.filter(Some(&json!(null))), None);
        assert_eq!(c.filter(Some(&json!({"name": "x"}))), None);
        assert_eq!(c.filter(Some(&json!([{"name": "by"}]))), Some(json!([])));
        assert_eq!(
            c.filter(Some(
                &json!([{"name": "a"}, {"name": "pdm"}, {"name": "b", "accuracy": 1}])
            )),
            Some(json!([{"name": "a"}, {"name": "b", "accuracy": 1}]))
        );
    }

    #[test]
    fn substring_patterns_escape_like_wildcards() {
        assert_eq!(contains_pattern("by-nc"), "%by-nc%");
        assert_eq!(contains_pattern(r"a%b_c\d"), r"%a\%b\_c\\d%");
        let c = TagFilterConfig {
            denied_substrings: vec!["CC0".into(), "50%".into()],
            ..TagFilterConfig::default()
        };
        assert_eq!(
            c.sql_params().denied_substring_patterns,
            vec!["%cc0%".to_string(), r"%50\%%".to_string()]
        );
    }

    #[test]
    fn expression_numbers_its_parameters() {
        let sql = TagFilterSql::expression("x.tags", 3);
        for p in [
            "$3::text::numeric",
            "$4::text[]",
            "$5::text[]",
            "$6::text[]",
        ] {
            assert!(sql.contains(p), "{p} missing");
        }
        assert!(!sql.contains("$7") && !sql.contains("$2"));
    }
}
