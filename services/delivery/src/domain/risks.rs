//! Risks: the likelihood and impact scale, severity, status.

use super::*;

stored_enum! {
    /// How serious a risk is (least first), derived by [`severity`].
    RiskSeverity {
        /// Score 1..4.
        Low = "low",
        /// Score 5..9.
        Medium = "medium",
        /// Score 10..15.
        High = "high",
        /// Score 16..25.
        Critical = "critical",
    }
}

stored_enum! {
    /// Where a risk stands.
    RiskStatus {
        /// Identified, nothing done yet.
        Open = "open",
        /// Being mitigated.
        Mitigating = "mitigating",
        /// Accepted as it is.
        Accepted = "accepted",
        /// No longer a risk.
        Closed = "closed",
    }
}

/// A step of the five-step likelihood and impact scale: 1 (very low) to 5
/// (very high), the proto enum's numbers and the stored `smallint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RiskLevel(u8);

impl RiskLevel {
    /// The lowest step.
    pub const MIN: RiskLevel = RiskLevel(1);
    /// The highest step.
    pub const MAX: RiskLevel = RiskLevel(5);

    /// The step `n` (1..=5).
    pub fn new(n: u8) -> Option<RiskLevel> {
        (1..=5).contains(&n).then_some(RiskLevel(n))
    }

    /// The stored value.
    pub fn value(self) -> i16 {
        i16::from(self.0)
    }

    /// Parses a stored value the schema's CHECK constraint admitted.
    pub fn from_db(v: i16) -> RiskLevel {
        u8::try_from(v)
            .ok()
            .and_then(RiskLevel::new)
            .unwrap_or(RiskLevel::MIN)
    }
}

impl TryFrom<i32> for RiskLevel {
    type Error = ();
    fn try_from(v: i32) -> Result<Self, ()> {
        u8::try_from(v).ok().and_then(RiskLevel::new).ok_or(())
    }
}

/// A risk's severity from its likelihood and impact: the score
/// likelihood × impact (1..25) is LOW up to 4, MEDIUM up to 9, HIGH up to
/// 15, CRITICAL from 16 (the schema checks the same rule).
pub fn severity(likelihood: RiskLevel, impact: RiskLevel) -> RiskSeverity {
    match likelihood.0 * impact.0 {
        16.. => RiskSeverity::Critical,
        10.. => RiskSeverity::High,
        5.. => RiskSeverity::Medium,
        _ => RiskSeverity::Low,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(n: u8) -> RiskLevel {
        RiskLevel::new(n).expect("1..=5")
    }

    #[test]
    fn severity_follows_likelihood_times_impact() {
        use RiskSeverity::*;
        for (l, i, want) in [
            (1, 1, Low),
            (2, 2, Low),
            (4, 1, Low),
            (5, 1, Medium),
            (3, 3, Medium),
            (2, 5, High),
            (3, 4, High),
            (5, 3, High),
            (4, 4, Critical),
            (5, 5, Critical),
        ] {
            assert_eq!(severity(level(l), level(i)), want, "{l} x {i}");
            assert_eq!(severity(level(i), level(l)), want, "symmetric");
        }
        // Monotonic: raising either never lowers the severity.
        for l in 1..=5 {
            for i in 1..5 {
                assert!(severity(level(l), level(i)) <= severity(level(l), level(i + 1)));
            }
        }
        assert_eq!(RiskLevel::try_from(0), Err(()));
        assert_eq!(RiskLevel::try_from(6), Err(()));
        assert_eq!(RiskLevel::from_db(3), level(3));
    }
}
