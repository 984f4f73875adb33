//! Risks: the likelihood and impact scale, severity, status, and the
//! fields an update may change.

use foundry_domain::{Audited, Change, FieldChange, Patch, Record, Stamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::*;

/// A risk to a program, scored by likelihood and impact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = fields.program_id)]
pub struct Risk {
    pub id: RiskId,
    pub fields: NewRisk,
    /// Derived: [`severity`] of likelihood and impact (kept by `Patch::apply`).
    pub severity: RiskSeverity,
    pub stamp: Stamp,
}

/// A risk's own fields, held by a [`Risk`]: to create, as parsed at the edge
/// (its severity is derived).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewRisk {
    pub program_id: ProgramId,
    pub title: String,
    pub description: String,
    pub likelihood: RiskLevel,
    pub impact: RiskLevel,
    pub mitigation: String,
    pub owner_user_id: Option<UserId>,
    pub status: RiskStatus,
}

impl NewRisk {
    /// Its severity.
    pub fn severity(&self) -> RiskSeverity {
        severity(self.likelihood, self.impact)
    }
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = RiskPath, fields = NewRisk, output_only = &program_child_output_only_and::<7>(&["severity"]))]
pub enum RiskChange {
    Title(String),
    Description(String),
    Likelihood(RiskLevel),
    Impact(RiskLevel),
    Mitigation(String),
    /// `None` leaves the risk unowned.
    OwnerUserId(Option<UserId>),
    Status(RiskStatus),
}

impl Patch for Risk {
    type Change = RiskChange;

    /// Applies an update's changes, then derives the severity again.
    fn apply_one(&mut self, change: RiskChange) -> Result<(), Error> {
        change.set(&mut self.fields);
        self.severity = self.fields.severity();
        Ok(())
    }
}

foundry_domain::stored_enum! {
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

foundry_domain::stored_enum! {
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
}

/// As its number (audit events, the stored `smallint`).
impl Serialize for RiskLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i16(self.value())
    }
}

/// From its number, loudly: one off the scale is an error, never a step.
impl<'de> Deserialize<'de> for RiskLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i16::deserialize(d)?;
        u8::try_from(n)
            .ok()
            .and_then(RiskLevel::new)
            .ok_or_else(|| serde::de::Error::custom(format_args!("{n} is no risk level (1..=5)")))
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
        let read = |n: i16| serde_json::from_value::<RiskLevel>(n.into());
        assert_eq!(read(3).ok(), Some(level(3)));
        let e = read(9).expect_err("out of the scale");
        assert_eq!(e.to_string(), "9 is no risk level (1..=5)");
        assert_eq!(serde_json::to_value(level(4)).ok(), Some(4.into()));
    }
}
