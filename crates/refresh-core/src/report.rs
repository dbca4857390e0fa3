//! The refresh report: totals and per-source deltas between the document counts behind the
//! live alias before the refresh and in the new index after it.

use crate::es::{PreflightReport, SearchGuardReport};
use crate::guard::DropReport;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The checks that ran before promotion, with their figures (absent: that check did not run,
/// e.g. the run failed before it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardChecks {
    #[serde(default)]
    pub record_drop: Option<DropReport>,
    #[serde(default)]
    pub search: Option<SearchGuardReport>,
    #[serde(default)]
    pub preflight: Option<PreflightReport>,
}

/// Document counts as the count step reports them (every source, not a top 10).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub total: u64,
    #[serde(default)]
    pub by_source: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceDelta {
    pub before: u64,
    pub after: u64,
    pub delta: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefreshReport {
    pub media_type: String,
    pub environment: String,
    pub new_index: String,
    pub total_before: u64,
    pub total_after: u64,
    pub delta: i64,
    /// Every source seen before or after (a source that vanished shows `after: 0`).
    pub by_source: BTreeMap<String, SourceDelta>,
    pub guards: GuardChecks,
}

fn delta(before: u64, after: u64) -> i64 {
    i64::try_from(i128::from(after) - i128::from(before)).unwrap_or(i64::MAX)
}

pub fn compare(before: &Counts, after: &Counts) -> (i64, BTreeMap<String, SourceDelta>) {
    let sources: BTreeSet<&String> = before
        .by_source
        .keys()
        .chain(after.by_source.keys())
        .collect();
    let by_source = sources
        .into_iter()
        .map(|source| {
            let b = before.by_source.get(source).copied().unwrap_or(0);
            let a = after.by_source.get(source).copied().unwrap_or(0);
            (
                source.clone(),
                SourceDelta {
                    before: b,
                    after: a,
                    delta: delta(b, a),
                },
            )
        })
        .collect();
    (delta(before.total, after.total), by_source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: u64, pairs: &[(&str, u64)]) -> Counts {
        Counts {
            total,
            by_source: pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn every_source_of_either_side_is_reported() {
        let (total, by_source) = compare(
            &counts(30, &[("flickr", 20), ("met", 10)]),
            &counts(25, &[("flickr", 22), ("smithsonian", 3)]),
        );
        assert_eq!(total, -5);
        assert_eq!(
            by_source["flickr"],
            SourceDelta {
                before: 20,
                after: 22,
                delta: 2
            }
        );
        assert_eq!(
            by_source["met"],
            SourceDelta {
                before: 10,
                after: 0,
                delta: -10
            }
        );
        assert_eq!(
            by_source["smithsonian"],
            SourceDelta {
                before: 0,
                after: 3,
                delta: 3
            }
        );
        assert_eq!(by_source.len(), 3);
    }
}
