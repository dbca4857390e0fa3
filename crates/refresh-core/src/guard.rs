//! The guards before promotion. The drop guard stops it when the new data set is much smaller
//! than the live one; the search guard (run by [`crate::es::search_guard`], configured here)
//! when representative queries find much less in the new index: it catches a broken index (a
//! wrong analyzer, a field that lost its values) that the count alone would let through.

use crate::error::{ErrorKind, StepError, StepResult};
use crate::media::MediaType;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// What `check_record_drop` returns when promotion may go ahead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropReport {
    pub before: u64,
    pub after: u64,
    /// How far `after` is below `before`, in percent of `before`; 0 when it grew.
    pub drop_pct: f64,
    /// True when the drop exceeded the limit and the input's override let it through.
    pub overridden: bool,
}

/// The percentage `after` is below `before` (0 when `after >= before` or `before == 0`).
pub fn drop_percent(before: u64, after: u64) -> f64 {
    if before == 0 || after >= before {
        0.0
    } else {
        (before - after) as f64 * 100.0 / before as f64
    }
}

/// Refuses (`RecordDropTooLarge`) when `after_total` is more than `max_drop_pct` percent
/// below `before_total`, unless `override_drop` is set. A drop of exactly the limit passes.
pub fn check_record_drop(
    before_total: u64,
    after_total: u64,
    max_drop_pct: f64,
    override_drop: bool,
) -> Result<DropReport, StepError> {
    if !(max_drop_pct.is_finite() && (0.0..=100.0).contains(&max_drop_pct)) {
        return Err(StepError::invalid_input(format!(
            "max_record_drop_pct: {max_drop_pct} is not a percentage between 0 and 100"
        )));
    }
    let drop_pct = drop_percent(before_total, after_total);
    let too_large = drop_pct > max_drop_pct;
    if too_large && !override_drop {
        return Err(StepError::new(
            ErrorKind::RecordDropTooLarge,
            format!(
                "new data set has {after_total} records, {drop_pct:.2}% fewer than the live {before_total} \
                 (allowed: {max_drop_pct}%); set override_record_drop to promote anyway"
            ),
        ));
    }
    if too_large {
        tracing::warn!(
            before_total,
            after_total,
            drop_pct,
            max_drop_pct,
            "record drop over the limit, overridden by input"
        );
    }
    Ok(DropReport {
        before: before_total,
        after: after_total,
        drop_pct,
        overridden: too_large,
    })
}

/// The built-in set, used unless `SEARCH_GUARD_CONFIG` gives another.
pub const BUILTIN_SEARCH_GUARD: &str = include_str!("../es/search-guard.json");

/// The guard's configuration: the queries and the band a new index must stay in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchGuardConfig {
    /// Operators' notes; ignored.
    #[serde(default)]
    pub comment: Option<String>,
    /// The least share of the live index's hits the new index must find, per query.
    pub min_ratio: f64,
    pub queries: Vec<GuardQuery>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardQuery {
    pub name: String,
    /// The media it runs for; every media when absent.
    #[serde(default)]
    pub media: Option<Vec<MediaType>>,
    /// An Elasticsearch query (the `query` of a search body).
    pub query: Value,
}

impl SearchGuardConfig {
    pub fn builtin() -> StepResult<SearchGuardConfig> {
        SearchGuardConfig::parse(BUILTIN_SEARCH_GUARD)
    }

    /// Parses and checks a configuration; errors name what is wrong.
    pub fn parse(text: &str) -> StepResult<SearchGuardConfig> {
        let config: SearchGuardConfig = serde_json::from_str(text).map_err(|e| {
            StepError::new(
                ErrorKind::Configuration,
                format!("search guard configuration: {e}"),
            )
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> StepResult<()> {
        let bad = |message: String| {
            Err(StepError::new(
                ErrorKind::Configuration,
                format!("search guard configuration: {message}"),
            ))
        };
        if !(self.min_ratio > 0.0 && self.min_ratio <= 1.0) {
            return bad(format!(
                "min_ratio must be above 0 and at most 1, got {}",
                self.min_ratio
            ));
        }
        if self.queries.is_empty() {
            return bad("queries is empty: the guard would check nothing".into());
        }
        let mut names = BTreeSet::new();
        for query in &self.queries {
            if query.name.trim().is_empty() {
                return bad("a query has an empty name".into());
            }
            if !names.insert(query.name.as_str()) {
                return bad(format!("two queries are named {:?}", query.name));
            }
            if !query.query.is_object() {
                return bad(format!("query {:?}: query must be an object", query.name));
            }
            if query.media.as_ref().is_some_and(Vec::is_empty) {
                return bad(format!("query {:?}: media is empty", query.name));
            }
        }
        Ok(())
    }

    /// The queries that run for `media`.
    pub fn queries_for(&self, media: MediaType) -> impl Iterator<Item = &GuardQuery> {
        self.queries.iter().filter(move |query| {
            query
                .media
                .as_ref()
                .is_none_or(|only| only.contains(&media))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn within_limit_passes() {
        let report = check_record_drop(1000, 950, 10.0, false).unwrap();
        assert_eq!(report.drop_pct, 5.0);
        assert!(!report.overridden);
        assert_eq!(
            check_record_drop(1000, 900, 10.0, false).unwrap().drop_pct,
            10.0
        );
        assert_eq!(
            check_record_drop(1000, 2000, 0.0, false).unwrap().drop_pct,
            0.0
        );
        // Nothing live yet (first refresh): nothing to lose.
        assert_eq!(check_record_drop(0, 0, 0.0, false).unwrap().drop_pct, 0.0);
    }

    #[test]
    fn over_limit_is_refused_with_both_counts_and_the_percent() {
        let err = check_record_drop(1000, 899, 10.0, false).unwrap_err();
        assert_eq!(err.kind, ErrorKind::RecordDropTooLarge);
        assert_eq!(err.kind.name(), "RecordDropTooLarge");
        for part in ["1000", "899", "10.10%", "10%"] {
            assert!(
                err.message.contains(part),
                "{part} missing in {}",
                err.message
            );
        }
        assert!(check_record_drop(5, 0, 99.9, false).is_err());
    }

    #[test]
    fn override_lets_it_through_and_says_so() {
        let report = check_record_drop(1000, 0, 10.0, true).unwrap();
        assert_eq!(report.drop_pct, 100.0);
        assert!(report.overridden);
    }

    #[test]
    fn bad_limit_is_invalid_input() {
        assert_eq!(
            check_record_drop(1, 1, f64::NAN, false).unwrap_err().kind,
            ErrorKind::InvalidInput
        );
        assert_eq!(
            check_record_drop(1, 1, 100.5, false).unwrap_err().kind,
            ErrorKind::InvalidInput
        );
    }

    proptest! {
        #[test]
        fn refused_exactly_when_the_drop_exceeds_the_limit(
            before in 0u64..10_000_000_000, after in 0u64..10_000_000_000, max in 0.0f64..=100.0, over in any::<bool>()
        ) {
            let result = check_record_drop(before, after, max, over);
            // Integer cross-multiplication as an independent oracle (no division).
            let exceeds = before > after && ((before - after) as f64) * 100.0 > max * before as f64 * (1.0 + 1e-12);
            let within = after >= before || ((before - after) as f64) * 100.0 < max * before as f64 * (1.0 - 1e-12);
            if exceeds && !over {
                prop_assert_eq!(result.unwrap_err().kind, ErrorKind::RecordDropTooLarge);
            } else if within || over {
                let report = result.unwrap();
                prop_assert_eq!(report.before, before);
                prop_assert_eq!(report.after, after);
                prop_assert!((0.0..=100.0).contains(&report.drop_pct));
                prop_assert_eq!(report.overridden, exceeds && over);
            }
        }

        #[test]
        fn growth_never_trips(before in 0u64..u32::MAX as u64, growth in 0u64..1000, max in 0.0f64..=100.0) {
            prop_assert_eq!(check_record_drop(before, before + growth, max, false).unwrap().drop_pct, 0.0);
        }
    }

    #[test]
    fn the_builtin_configuration_parses_and_covers_both_media() {
        let config = SearchGuardConfig::builtin().unwrap();
        assert_eq!(config.min_ratio, 0.9);
        for media in [MediaType::Image, MediaType::Audio] {
            let names: Vec<&str> = config.queries_for(media).map(|q| q.name.as_str()).collect();
            assert!(names.len() >= 5, "{media}: {names:?}");
            assert!(names.iter().any(|n| n.starts_with("source")), "{names:?}");
        }
    }

    #[test]
    fn bad_configurations_are_refused_by_what_is_wrong() {
        let cases = [
            (
                r#"{"min_ratio": 0, "queries": [{"name": "a", "query": {}}]}"#,
                "min_ratio",
            ),
            (
                r#"{"min_ratio": 1.5, "queries": [{"name": "a", "query": {}}]}"#,
                "min_ratio",
            ),
            (r#"{"min_ratio": 0.9, "queries": []}"#, "queries is empty"),
            (
                r#"{"min_ratio": 0.9, "queries": [{"name": " ", "query": {}}]}"#,
                "empty name",
            ),
            (
                r#"{"min_ratio": 0.9, "queries": [{"name": "a", "query": {}}, {"name": "a", "query": {}}]}"#,
                "two queries",
            ),
            (
                r#"{"min_ratio": 0.9, "queries": [{"name": "a", "query": "x"}]}"#,
                "object",
            ),
            (
                r#"{"min_ratio": 0.9, "queries": [{"name": "a", "media": [], "query": {}}]}"#,
                "media is empty",
            ),
            (
                r#"{"min_ratio": 0.9, "queries": [{"name": "a", "media": ["video"], "query": {}}]}"#,
                "video",
            ),
            (r#"{"min_ratio": 0.9, "queries": [], "extra": 1}"#, "extra"),
            ("not json", "search guard configuration"),
        ];
        for (text, expected) in cases {
            let err = SearchGuardConfig::parse(text).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Configuration, "{text}");
            assert!(err.message.contains(expected), "{text}: {}", err.message);
        }
    }

    #[test]
    fn media_restricts_where_a_query_runs() {
        let config = SearchGuardConfig::parse(
            r#"{"min_ratio": 0.5, "queries": [
                {"name": "both", "query": {"match_all": {}}},
                {"name": "audio only", "media": ["audio"], "query": {"match_all": {}}}]}"#,
        )
        .unwrap();
        let image: Vec<&str> = config
            .queries_for(MediaType::Image)
            .map(|q| q.name.as_str())
            .collect();
        let audio: Vec<&str> = config
            .queries_for(MediaType::Audio)
            .map(|q| q.name.as_str())
            .collect();
        assert_eq!(image, ["both"]);
        assert_eq!(audio, ["both", "audio only"]);
    }
}
