//! Splitting an id span into inclusive ranges: N worker ranges and fixed-size batches.
//!
//! The replaced system's ranges overlapped by one row, lost up to N−2 rows at the top, and its
//! batches missed the last id when the span was a multiple of the batch size (DESIGN §7).
//! Here every id of `[min, max]` lies in exactly one range; the arithmetic is done in
//! `i128`, so it holds up to the ends of `i64`.

use crate::error::StepError;
use serde::{Deserialize, Serialize};

/// The ids `start_id..=end_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub start_id: i64,
    pub end_id: i64,
}

impl IdRange {
    /// How many ids the range holds.
    pub fn len(&self) -> u64 {
        (i128::from(self.end_id) - i128::from(self.start_id) + 1) as u64
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, id: i64) -> bool {
        self.start_id <= id && id <= self.end_id
    }
}

/// One worker's range as the reindex Map hands it to an iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedRange {
    pub start_id: i64,
    pub end_id: i64,
    pub range_index: u32,
}

/// The reindex plan of a temp table: its id span, row count and numbered worker ranges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangePlan {
    pub min_id: Option<i64>,
    pub max_id: Option<i64>,
    pub rows: u64,
    pub ranges: Vec<PlannedRange>,
}

/// Numbers the ranges of `[min, max]` split `workers` ways; no ranges for an empty table.
pub fn plan_ranges(
    span: Option<(i64, i64)>,
    rows: u64,
    workers: u32,
) -> Result<RangePlan, StepError> {
    let Some((min, max)) = span else {
        return Ok(RangePlan {
            min_id: None,
            max_id: None,
            rows,
            ranges: Vec::new(),
        });
    };
    let ranges = split_even(min, max, workers)?
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

/// `[min, max]` in at most `parts` contiguous ranges of near-equal size (sizes differ by at
/// most one, larger first). Fewer ranges when the span has fewer ids than `parts`; none when
/// `min > max` (an empty table).
pub fn split_even(min: i64, max: i64, parts: u32) -> Result<Vec<IdRange>, StepError> {
    if parts == 0 {
        return Err(StepError::invalid_input(
            "the number of ranges must be at least 1",
        ));
    }
    if min > max {
        return Ok(Vec::new());
    }
    let span = i128::from(max) - i128::from(min) + 1;
    let parts = span.min(i128::from(parts));
    let base = span / parts;
    let extra = span % parts;
    let mut ranges = Vec::with_capacity(parts as usize);
    let mut start = i128::from(min);
    for k in 0..parts {
        let len = base + i128::from(k < extra);
        let end = start + len - 1;
        ranges.push(IdRange {
            start_id: start as i64,
            end_id: end as i64,
        });
        start = end + 1;
    }
    Ok(ranges)
}

/// Consecutive batches of `size` ids covering `range` (the last may be shorter).
pub fn batches(range: IdRange, size: u64) -> Result<Batches, StepError> {
    if size == 0 {
        return Err(StepError::invalid_input(
            "the batch size must be at least 1",
        ));
    }
    Ok(Batches {
        next_start: (range.start_id <= range.end_id).then_some(i128::from(range.start_id)),
        end: i128::from(range.end_id),
        size: i128::from(size),
    })
}

/// Iterator returned by [`batches`].
#[derive(Debug, Clone)]
pub struct Batches {
    next_start: Option<i128>,
    end: i128,
    size: i128,
}

impl Iterator for Batches {
    type Item = IdRange;

    fn next(&mut self) -> Option<IdRange> {
        let start = self.next_start?;
        let end = (start + self.size - 1).min(self.end);
        self.next_start = (end < self.end).then_some(end + 1);
        Some(IdRange {
            start_id: start as i64,
            end_id: end as i64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_ranges_are_numbered_and_cover_the_span() {
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
    use proptest::prelude::*;

    fn assert_exact_cover(ranges: &[IdRange], min: i64, max: i64) {
        assert_eq!(ranges.first().map(|r| r.start_id), Some(min));
        assert_eq!(ranges.last().map(|r| r.end_id), Some(max));
        for r in ranges {
            assert!(r.start_id <= r.end_id, "inverted range {r:?}");
        }
        for pair in ranges.windows(2) {
            assert_eq!(
                i128::from(pair[0].end_id) + 1,
                i128::from(pair[1].start_id),
                "gap or overlap between {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
        let total: u128 = ranges.iter().map(|r| u128::from(r.len())).sum();
        assert_eq!(total, (i128::from(max) - i128::from(min) + 1) as u128);
    }

    #[test]
    fn known_cases() {
        assert_eq!(
            split_even(1, 10, 3).unwrap(),
            vec![
                IdRange {
                    start_id: 1,
                    end_id: 4
                },
                IdRange {
                    start_id: 5,
                    end_id: 7
                },
                IdRange {
                    start_id: 8,
                    end_id: 10
                }
            ]
        );
        assert_eq!(
            split_even(5, 5, 6).unwrap(),
            vec![IdRange {
                start_id: 5,
                end_id: 5
            }]
        );
        assert_eq!(split_even(1, 3, 6).unwrap().len(), 3);
        assert!(split_even(2, 1, 2).unwrap().is_empty());
        assert!(split_even(1, 2, 0).is_err());
        let b: Vec<_> = batches(
            IdRange {
                start_id: 1,
                end_id: 20,
            },
            10,
        )
        .unwrap()
        .collect();
        assert_eq!(
            b,
            vec![
                IdRange {
                    start_id: 1,
                    end_id: 10
                },
                IdRange {
                    start_id: 11,
                    end_id: 20
                }
            ]
        );
        let b: Vec<_> = batches(
            IdRange {
                start_id: 1,
                end_id: 21,
            },
            10,
        )
        .unwrap()
        .collect();
        assert_eq!(
            b.last(),
            Some(&IdRange {
                start_id: 21,
                end_id: 21
            })
        );
        assert!(batches(
            IdRange {
                start_id: 1,
                end_id: 2
            },
            0
        )
        .is_err());
        let b: Vec<_> = batches(
            IdRange {
                start_id: i64::MAX - 2,
                end_id: i64::MAX,
            },
            2,
        )
        .unwrap()
        .collect();
        assert_eq!(b.len(), 2);
        assert_exact_cover(
            &split_even(i64::MIN, i64::MAX, 6).unwrap(),
            i64::MIN,
            i64::MAX,
        );
    }

    fn span() -> impl Strategy<Value = (i64, i64)> {
        prop_oneof![
            (-1000i64..1000, 0i64..500).prop_map(|(a, w)| (a, a + w)),
            (any::<i64>(), any::<i64>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
            (0i64..3).prop_map(|w| (i64::MAX - w, i64::MAX)),
            (0i64..3).prop_map(|w| (i64::MIN, i64::MIN + w)),
        ]
    }

    proptest! {
        #[test]
        fn worker_ranges_cover_every_id_exactly_once((min, max) in span(), parts in 1u32..40) {
            let ranges = split_even(min, max, parts).unwrap();
            prop_assert!(ranges.len() as u32 <= parts);
            prop_assert_eq!(ranges.len() as i128, (i128::from(max) - i128::from(min) + 1).min(i128::from(parts)));
            assert_exact_cover(&ranges, min, max);
            let sizes: Vec<u64> = ranges.iter().map(IdRange::len).collect();
            prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        }

        #[test]
        fn small_spans_checked_id_by_id(min in -50i64..50, width in 0i64..120, parts in 1u32..10, size in 1u64..25) {
            let max = min + width;
            let ranges = split_even(min, max, parts).unwrap();
            let mut batches_of_all: Vec<IdRange> = Vec::new();
            for r in &ranges {
                batches_of_all.extend(batches(*r, size).unwrap());
            }
            for id in min..=max {
                prop_assert_eq!(ranges.iter().filter(|r| r.contains(id)).count(), 1, "id {} in ranges", id);
                prop_assert_eq!(batches_of_all.iter().filter(|r| r.contains(id)).count(), 1, "id {} in batches", id);
            }
            prop_assert!(!ranges.iter().any(|r| r.contains(min - 1) || r.contains(max + 1)));
        }

        #[test]
        fn batches_cover_every_id_exactly_once((min, max) in span(), size in prop_oneof![1u64..100, Just(u64::MAX), Just(1u64 << 62)]) {
            let range = IdRange { start_id: min, end_id: max };
            let b: Vec<IdRange> = batches(range, size).unwrap().take(200).collect();
            // Wide spans with small batches are too long to enumerate; check the first ones.
            let complete = b.last().map(|r| r.end_id) == Some(max);
            if complete {
                assert_exact_cover(&b, min, max);
            }
            for r in &b[..b.len().saturating_sub(1)] {
                prop_assert_eq!(u128::from(r.len()), u128::from(size));
            }
        }

        #[test]
        fn multiples_of_the_batch_size_keep_the_last_id(start in -1000i64..1000, size in 1u64..50, count in 1u64..20) {
            let end = start + (size * count) as i64 - 1;
            let b: Vec<IdRange> = batches(IdRange { start_id: start, end_id: end }, size).unwrap().collect();
            prop_assert_eq!(b.len() as u64, count);
            assert_exact_cover(&b, start, end);
        }
    }
}
