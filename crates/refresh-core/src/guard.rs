//! The drop guard: stop promotion when the new data set is much smaller than the live one.

use crate::error::{ErrorKind, StepError};
use serde::{Deserialize, Serialize};

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
}
