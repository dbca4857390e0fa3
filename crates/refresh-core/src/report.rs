//! The refresh report: totals and per-source deltas between the document counts behind the
//! live alias (before) and in the new index (after).
//!
//! A state's input and output are capped at 256 KiB by Step Functions, and a catalog can have
//! thousands of sources (5 000 × a row each is far more). So what goes into the state keeps
//! every total but only as many per-source rows as fit [`SOURCES_BUDGET_BYTES`], the largest
//! changes first, and says how many (and how much) it left out; [`RefreshReport::new`] also
//! returns the full table, for the log.

use crate::es::DocumentCounts;
use crate::es::{PreflightReport, SearchGuardReport};
use crate::guard::DropReport;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Serialised bytes of per-source rows a report or a count keeps in the state. With every
/// other field of the data refresh state this leaves the state well under 256 KiB
/// (`functions/tests/payload_limits.rs`).
pub const SOURCES_BUDGET_BYTES: usize = 48 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDelta {
    pub before: u64,
    pub after: u64,
    pub delta: i64,
}

impl SourceDelta {
    fn new(before: u64, after: u64) -> SourceDelta {
        SourceDelta {
            before,
            after,
            delta: delta(before, after),
        }
    }
}

/// The checks that ran before promotion, with their figures (absent: that check did not run).
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

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RefreshReport {
    pub media_type: String,
    pub environment: String,
    pub new_index: String,
    pub total_before: u64,
    pub total_after: u64,
    pub delta: i64,
    /// Sources seen before or after.
    pub sources: usize,
    /// Per-source rows (a source that vanished shows `after: 0`): every source when they fit
    /// [`SOURCES_BUDGET_BYTES`], else those that changed most.
    pub by_source: BTreeMap<String, SourceDelta>,
    /// How many sources `by_source` leaves out (0: none), and their sums.
    pub omitted_sources: usize,
    pub omitted: SourceDelta,
    /// Set by the report step from what the state machine passes.
    pub guards: GuardChecks,
}

/// Counts reduced to what fits the state: the total, how many sources, the largest sources
/// within [`SOURCES_BUDGET_BYTES`], and how many were left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundedCounts {
    pub total: u64,
    pub sources: usize,
    pub by_source: BTreeMap<String, u64>,
    pub omitted_sources: usize,
}

fn delta(before: u64, after: u64) -> i64 {
    i64::try_from(i128::from(after) - i128::from(before)).unwrap_or(i64::MAX)
}

/// Every source of either side with its before, after and delta.
pub fn compare(before: &DocumentCounts, after: &DocumentCounts) -> BTreeMap<String, SourceDelta> {
    let sources: BTreeSet<&String> = before
        .by_source
        .keys()
        .chain(after.by_source.keys())
        .collect();
    sources
        .into_iter()
        .map(|source| {
            let b = before.by_source.get(source).copied().unwrap_or(0);
            let a = after.by_source.get(source).copied().unwrap_or(0);
            (source.clone(), SourceDelta::new(b, a))
        })
        .collect()
}

/// Bytes a `"name": value` member takes in a JSON object (with its separator).
fn member_bytes<T: Serialize>(name: &str, value: &T) -> usize {
    let name = serde_json::to_string(name).map_or(name.len() + 2, |s| s.len());
    let value = serde_json::to_string(value).map_or(64, |s| s.len());
    name + 1 + value + 1
}

/// The rows to keep, in `order` (most important first), while they fit `budget` bytes.
fn within_budget<'a, T: Serialize + 'a>(
    order: impl IntoIterator<Item = (&'a String, &'a T)>,
    budget: usize,
) -> BTreeSet<&'a String> {
    let mut used = 0;
    let mut kept = BTreeSet::new();
    for (name, value) in order {
        let bytes = member_bytes(name, value);
        if used + bytes > budget {
            break;
        }
        used += bytes;
        kept.insert(name);
    }
    kept
}

impl RefreshReport {
    /// The report of a refresh whose live alias held `before` and whose new index holds
    /// `after`, with at most `budget` bytes of per-source rows. Returns it and the full table.
    pub fn new(
        media_type: &str,
        environment: &str,
        new_index: &str,
        before: &DocumentCounts,
        after: &DocumentCounts,
        budget: usize,
    ) -> (RefreshReport, BTreeMap<String, SourceDelta>) {
        let all = compare(before, after);
        let mut order: Vec<(&String, &SourceDelta)> = all.iter().collect();
        // Largest changes first (then the larger source); names break ties for a stable report.
        order.sort_by(|(a_name, a), (b_name, b)| {
            b.delta
                .unsigned_abs()
                .cmp(&a.delta.unsigned_abs())
                .then(b.before.max(b.after).cmp(&a.before.max(a.after)))
                .then(a_name.cmp(b_name))
        });
        let kept = within_budget(order, budget);
        let mut by_source = BTreeMap::new();
        let (mut omitted_before, mut omitted_after) = (0u64, 0u64);
        for (name, row) in &all {
            if kept.contains(name) {
                by_source.insert(name.clone(), *row);
            } else {
                omitted_before = omitted_before.saturating_add(row.before);
                omitted_after = omitted_after.saturating_add(row.after);
            }
        }
        let report = RefreshReport {
            media_type: media_type.to_string(),
            environment: environment.to_string(),
            new_index: new_index.to_string(),
            total_before: before.total,
            total_after: after.total,
            delta: delta(before.total, after.total),
            sources: all.len(),
            omitted_sources: all.len() - by_source.len(),
            by_source,
            omitted: SourceDelta::new(omitted_before, omitted_after),
            guards: GuardChecks::default(),
        };
        (report, all)
    }
}

impl BoundedCounts {
    /// `counts` with at most `budget` bytes of per-source counts, the largest sources first.
    pub fn new(counts: &DocumentCounts, budget: usize) -> BoundedCounts {
        let mut order: Vec<(&String, &u64)> = counts.by_source.iter().collect();
        order.sort_by(|(a_name, a), (b_name, b)| b.cmp(a).then(a_name.cmp(b_name)));
        let kept = within_budget(order, budget);
        let by_source: BTreeMap<String, u64> = counts
            .by_source
            .iter()
            .filter(|(name, _)| kept.contains(name))
            .map(|(name, n)| (name.clone(), *n))
            .collect();
        BoundedCounts {
            total: counts.total,
            sources: counts.by_source.len(),
            omitted_sources: counts.by_source.len() - by_source.len(),
            by_source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: u64, pairs: &[(&str, u64)]) -> DocumentCounts {
        DocumentCounts {
            total,
            by_source: pairs.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn every_source_of_either_side_is_reported_when_they_fit() {
        let (report, all) = RefreshReport::new(
            "image",
            "staging",
            "image-init",
            &counts(30, &[("flickr", 20), ("met", 10)]),
            &counts(25, &[("flickr", 22), ("smithsonian", 3)]),
            SOURCES_BUDGET_BYTES,
        );
        assert_eq!(report.delta, -5);
        assert_eq!(report.by_source, all);
        assert_eq!((report.sources, report.omitted_sources), (3, 0));
        assert_eq!(report.omitted, SourceDelta::default());
        assert_eq!(
            report.by_source["flickr"],
            SourceDelta {
                before: 20,
                after: 22,
                delta: 2
            }
        );
        assert_eq!(
            report.by_source["met"],
            SourceDelta {
                before: 10,
                after: 0,
                delta: -10
            }
        );
        assert_eq!(
            report.by_source["smithsonian"],
            SourceDelta {
                before: 0,
                after: 3,
                delta: 3
            }
        );
    }

    #[test]
    fn over_the_budget_the_largest_changes_stay_and_the_rest_is_summed() {
        let before = counts(
            1_000,
            &[("a", 100), ("b", 200), ("c", 300), ("d", 400), ("gone", 0)],
        );
        let after = counts(970, &[("a", 100), ("b", 150), ("c", 310), ("d", 400)]);
        let row = member_bytes("b", &SourceDelta::new(200, 150));
        let (report, all) =
            RefreshReport::new("image", "production", "image-x", &before, &after, 2 * row);
        assert_eq!(all.len(), 5);
        // b changed by 50, c by 10: the two largest changes.
        assert_eq!(report.by_source.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!((report.sources, report.omitted_sources), (5, 3));
        assert_eq!(report.omitted, SourceDelta::new(500, 500));
        // Totals are always whole.
        assert_eq!((report.total_before, report.total_after), (1_000, 970));
        let kept = serde_json::to_string(&report.by_source).unwrap().len();
        assert!(kept <= 2 * row + 2, "{kept}");
    }

    #[test]
    fn bounded_counts_keep_the_largest_sources() {
        let all = counts(60, &[("small", 1), ("large", 50), ("mid", 9)]);
        assert_eq!(
            BoundedCounts::new(&all, SOURCES_BUDGET_BYTES).by_source,
            all.by_source
        );
        let one = BoundedCounts::new(&all, member_bytes("large", &50u64));
        assert_eq!(one.by_source.keys().collect::<Vec<_>>(), ["large"]);
        assert_eq!((one.total, one.sources, one.omitted_sources), (60, 3, 2));
        let none = BoundedCounts::new(&all, 0);
        assert!(none.by_source.is_empty());
        assert_eq!(none.omitted_sources, 3);
    }
}
