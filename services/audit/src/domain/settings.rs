//! Per-organization audit settings and retention. No I/O.

use super::Error;

/// Shortest retention, in days. Retention never removes the events of the
/// last day: the database function that removes a prefix enforces it too.
pub const MIN_RETENTION_DAYS: i32 = 1;
/// Longest retention, in days (100 years).
pub const MAX_RETENTION_DAYS: i32 = 36_500;

/// A requested `retention_days` (0: forever), if it is allowed.
pub fn retention_days(days: i32) -> Result<Option<i32>, Error> {
    match days {
        0 => Ok(None),
        d if (MIN_RETENTION_DAYS..=MAX_RETENTION_DAYS).contains(&d) => Ok(Some(d)),
        _ => Err(Error::invalid(
            "audit_settings.retention_days",
            format!(
                "must be 0 (keep forever) or {MIN_RETENTION_DAYS} to {MAX_RETENTION_DAYS} days"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_forever_or_within_bounds() {
        assert_eq!(retention_days(0), Ok(None));
        assert_eq!(retention_days(1), Ok(Some(1)));
        assert_eq!(retention_days(36_500), Ok(Some(36_500)));
        assert!(retention_days(-1).is_err());
        assert!(retention_days(36_501).is_err());
    }
}
