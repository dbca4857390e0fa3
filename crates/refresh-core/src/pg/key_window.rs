//! Bounds each copy batch on the catalog by an identifier range as well as a row count.
//!
//! A batch reads `identifier > lower AND identifier <= upper ORDER BY identifier LIMIT n`.
//! `postgres_fdw` always ships the range to the catalog (it is a `WHERE` clause), but ships
//! the `LIMIT` only when its cost estimate favours it, so without the range a batch's remote
//! query would rest on the catalog planner choosing to stop early on an unbounded ordered
//! scan. The window's width is learned from the batches: the width that held the last full
//! batch, widened when a window came back short. Identifiers are v4 UUIDs, spread evenly over
//! the key space, so a learned width holds about one batch anywhere in the table.
//!
//! A copy over several sessions splits the key space into [`lanes`] of equal width; each lane
//! is copied like a whole table, its windows clamped to its range.

use uuid::Uuid;

/// How much a window may widen after coming back short: a sparse region is crossed in a few
/// batches without one batch ever spanning the rest of the table.
const MAX_GROWTH: u128 = 16;
/// The first window: 1/1024 of the key space (about 700 000 rows of a 700 M-row catalog,
/// cut to one batch by the `LIMIT`; a small catalog's first windows are short and widen).
pub const FIRST_WIDTH: u128 = u128::MAX >> 10;

/// The key range of one batch inside a copy lane's key range `first..=last` (the whole key
/// space for a single-session copy): after `lower` (from `first` itself when `None`) up to
/// and including `upper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyWindow {
    pub lower: Option<Uuid>,
    pub upper: Uuid,
    first: Uuid,
    last: Uuid,
}

impl KeyWindow {
    /// The window after `cursor` (the last key scanned) of `width` keys ([`FIRST_WIDTH`]
    /// before any batch) over the whole key space.
    pub fn after(cursor: Option<Uuid>, width: Option<u128>) -> KeyWindow {
        KeyWindow::within(Uuid::nil(), Uuid::max(), cursor, width)
    }

    /// The window after `cursor` of `width` keys inside `first..=last`; it ends at `last`
    /// when the width reaches past it.
    pub fn within(first: Uuid, last: Uuid, cursor: Option<Uuid>, width: Option<u128>) -> KeyWindow {
        let start = cursor.unwrap_or(first).as_u128();
        let upper = start
            .checked_add(width.unwrap_or(FIRST_WIDTH))
            .map_or(last, |end| Uuid::from_u128(end.min(last.as_u128())));
        KeyWindow {
            lower: cursor,
            upper,
            first,
            last,
        }
    }

    /// The first key of the window's range: the batch reads from it inclusively while
    /// `lower` is `None`.
    pub fn first(&self) -> Uuid {
        self.first
    }

    /// Whether the window reaches the end of its range.
    pub fn is_open_ended(&self) -> bool {
        self.upper == self.last
    }

    /// Where the copy stands after this window's batch returned `scanned` rows (`limit` at
    /// most), the last of them `last_scanned`: the new cursor, the next width, and whether
    /// the range has no row left.
    pub fn advance(&self, scanned: u64, limit: u64, last_scanned: Option<Uuid>) -> Advance {
        let start = self.lower.unwrap_or(self.first).as_u128();
        if scanned >= limit {
            // A full batch: rows may remain inside the window; continue after the last one,
            // with the width that held this batch.
            let last = last_scanned.unwrap_or(self.upper);
            return Advance {
                cursor: Some(last),
                width: Some(last.as_u128().saturating_sub(start).max(1)),
                exhausted: false,
            };
        }
        if self.is_open_ended() {
            return Advance {
                cursor: last_scanned.or(self.lower),
                width: None,
                exhausted: true,
            };
        }
        // A short batch read the whole window: continue after it, wider.
        let width = self.upper.as_u128() - start;
        let growth = (u128::from(limit) / u128::from(scanned.max(1))).clamp(2, MAX_GROWTH);
        Advance {
            cursor: Some(self.upper),
            width: Some(width.saturating_mul(growth)),
            exhausted: false,
        }
    }
}

/// Splits the key space into `lanes` contiguous ranges `(first, last)` of equal width, in
/// order: v4 identifiers are spread evenly, so each holds about the same share of the rows.
pub fn lanes(lanes: usize) -> Vec<(Uuid, Uuid)> {
    let count = lanes.max(1) as u128;
    if count == 1 {
        return vec![(Uuid::nil(), Uuid::max())];
    }
    // A power of two splits at round identifiers (4 lanes: 40000000-…, 80000000-…, c0000000-…).
    let step = u128::MAX / count + 1;
    (0..count)
        .map(|i| {
            let last = if i + 1 == count {
                u128::MAX
            } else {
                step * (i + 1) - 1
            };
            (Uuid::from_u128(step * i), Uuid::from_u128(last))
        })
        .collect()
}

/// See [`KeyWindow::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    pub cursor: Option<Uuid>,
    pub width: Option<u128>,
    pub exhausted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Copies `keys` batch by batch as the copy does; returns every key read and the windows.
    fn run(keys: &BTreeSet<u128>, limit: u64) -> (Vec<u128>, usize) {
        run_lane(keys, limit, (Uuid::nil(), Uuid::max()))
    }

    /// [`run`] over one lane's range only.
    fn run_lane(
        keys: &BTreeSet<u128>,
        limit: u64,
        (first, last): (Uuid, Uuid),
    ) -> (Vec<u128>, usize) {
        let mut cursor = None;
        let mut width = None;
        let mut read = Vec::new();
        for batches in 1..100_000 {
            let window = KeyWindow::within(first, last, cursor, width);
            let in_window = keys.iter().copied().filter(|k| {
                let after_lower = match window.lower {
                    None => *k >= window.first().as_u128(),
                    Some(lower) => *k > lower.as_u128(),
                };
                after_lower && *k <= window.upper.as_u128()
            });
            let batch: Vec<u128> = in_window.take(limit as usize).collect();
            read.extend(&batch);
            let advance = window.advance(
                batch.len() as u64,
                limit,
                batch.last().map(|k| Uuid::from_u128(*k)),
            );
            if advance.exhausted {
                return (read, batches);
            }
            assert!(advance.cursor >= window.lower, "the cursor went back");
            assert!(advance.cursor <= Some(last), "the cursor left the lane");
            cursor = advance.cursor;
            width = advance.width;
        }
        panic!("the copy did not finish");
    }

    #[test]
    fn lanes_cover_the_key_space_in_order_without_overlap() {
        for count in [1, 2, 3, 4, 7, 16] {
            let split = lanes(count);
            assert_eq!(split.len(), count);
            assert_eq!(split[0].0, Uuid::nil());
            assert_eq!(split[count - 1].1, Uuid::max());
            for pair in split.windows(2) {
                assert_eq!(pair[0].1.as_u128() + 1, pair[1].0.as_u128());
            }
            for (first, last) in &split {
                assert!(first < last);
            }
        }
        assert_eq!(lanes(0), lanes(1), "no lanes means one");
        assert_eq!(
            lanes(4)[2].0,
            Uuid::parse_str("80000000-0000-0000-0000-000000000000").unwrap()
        );
    }

    #[test]
    fn a_window_never_reaches_past_its_lane() {
        let (first, last) = lanes(4)[1];
        let window = KeyWindow::within(first, last, None, Some(u128::MAX));
        assert_eq!(window.upper, last);
        assert!(window.is_open_ended());
        let inside = KeyWindow::within(first, last, None, None);
        assert_eq!(inside.upper.as_u128(), first.as_u128() + FIRST_WIDTH);
        assert!(!inside.is_open_ended());
    }

    #[test]
    fn every_window_is_bounded_until_it_reaches_the_last_key() {
        let first = KeyWindow::after(None, None);
        assert!(!first.is_open_ended());
        assert_eq!(first.upper.as_u128(), FIRST_WIDTH);
        let full = first.advance(100, 100, Some(Uuid::from_u128(1_000)));
        assert_eq!(full.cursor, Some(Uuid::from_u128(1_000)));
        assert_eq!(full.width, Some(1_000));
        let next = KeyWindow::after(full.cursor, full.width);
        assert_eq!(next.upper, Uuid::from_u128(2_000));
        // Short: the whole window was read; the next one starts at its end, wider.
        let short = next.advance(10, 100, Some(Uuid::from_u128(1_500)));
        assert_eq!(short.cursor, Some(Uuid::from_u128(2_000)));
        assert_eq!(short.width, Some(10_000));
        assert!(!short.exhausted);
        // Only an open window that comes back short ends the copy.
        let end = KeyWindow::after(Some(Uuid::from_u128(5)), Some(u128::MAX)).advance(0, 100, None);
        assert!(end.exhausted);
    }

    proptest! {
        #[test]
        fn every_key_is_read_once_in_order(
            keys in prop::collection::btree_set(any::<u128>(), 0..400),
            limit in 1u64..50,
        ) {
            let (read, _) = run(&keys, limit);
            prop_assert_eq!(read, keys.iter().copied().collect::<Vec<_>>());
        }

        #[test]
        fn every_key_is_read_once_across_lanes(
            keys in prop::collection::btree_set(any::<u128>(), 0..300),
            limit in 1u64..40,
            count in 1usize..9,
        ) {
            let mut read = Vec::new();
            for lane in lanes(count) {
                read.extend(run_lane(&keys, limit, lane).0);
            }
            prop_assert_eq!(read, keys.iter().copied().collect::<Vec<_>>());
        }

        #[test]
        fn clustered_keys_are_read_once_too(
            base in any::<u64>(),
            offsets in prop::collection::btree_set(0u128..10_000, 0..300),
            limit in 1u64..40,
        ) {
            let keys: BTreeSet<u128> = offsets.iter().map(|o| (u128::from(base) << 64) + o).collect();
            let (read, _) = run(&keys, limit);
            prop_assert_eq!(read, keys.iter().copied().collect::<Vec<_>>());
        }
    }

    #[test]
    fn evenly_spread_keys_take_about_one_batch_per_window() {
        // v4 identifiers: a fixed pseudo-random spread over the key space.
        let mut state = 0x9E37_79B9_7F4A_7C15_u128;
        let keys: BTreeSet<u128> = (0..20_000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                state
            })
            .collect();
        let (read, batches) = run(&keys, 1_000);
        assert_eq!(read.len(), keys.len());
        assert!(
            batches <= 40,
            "{batches} batches for 20 windows' worth of rows"
        );
    }
}
