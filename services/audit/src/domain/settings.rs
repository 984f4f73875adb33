//! Per-organization audit settings and retention. No I/O.
//!
//! Retention removes history, so the operator bounds what a tenant may
//! ask: a floor ([`RetentionPolicy::min_days`]) below which no
//! organization's events are removed whatever it set, and a delay before a
//! shorter retention takes effect, during which an owner can revert it
//! (and during which the change is in the log for anyone to see).

use chrono::{DateTime, TimeDelta, Utc};
use foundry_domain::{AuditFields, Audited, Change, OwnFields, Patch};
use serde::{Deserialize, Serialize};

use super::Error;

/// The operator's bounds on retention (configuration, not a tenant's
/// setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// The shortest retention an organization may set, in days; events
    /// younger than this are never removed, whatever was set before.
    pub min_days: i32,
    /// How long a shorter retention waits before it takes effect (zero:
    /// at once).
    pub reduction_delay: TimeDelta,
}

impl Default for RetentionPolicy {
    /// 30 days at least; a reduction waits 7 days.
    fn default() -> Self {
        RetentionPolicy {
            min_days: 30,
            reduction_delay: TimeDelta::days(7),
        }
    }
}

impl RetentionPolicy {
    /// The policy with its floor within the days a retention may have.
    pub fn new(min_days: i32, reduction_delay: TimeDelta) -> Self {
        RetentionPolicy {
            min_days: min_days.clamp(MIN_RETENTION_DAYS, MAX_RETENTION_DAYS),
            reduction_delay: reduction_delay.max(TimeDelta::zero()),
        }
    }

    /// The days after which events go: the organization's retention, never
    /// below the floor (`None`: kept forever).
    pub fn effective_days(&self, retention_days: Option<i32>) -> Option<i32> {
        retention_days.map(|d| d.max(self.min_days))
    }

    /// A requested `retention_days` (0: forever), if it is allowed.
    pub fn retention_days(&self, days: i32) -> Result<Option<i32>, Error> {
        match days {
            0 => Ok(None),
            d if (self.min_days..=MAX_RETENTION_DAYS).contains(&d) => Ok(Some(d)),
            _ => Err(Error::invalid(
                "audit_settings.retention_days",
                format!(
                    "must be 0 (keep forever) or {} to {MAX_RETENTION_DAYS} days (this deployment keeps events at least {} days)",
                    self.min_days, self.min_days
                ),
            )),
        }
    }
}

/// Whether retention `a` keeps events at least as long as `b` (`None`:
/// forever).
fn keeps_as_long(a: Option<i32>, b: Option<i32>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a >= b,
    }
}

/// An organization's stored audit settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Days events are kept; `None` forever.
    pub retention_days: Option<i32>,
    /// A shorter retention asked for, waiting for `pending_effective_at`.
    pub pending_retention_days: Option<i32>,
    /// When the pending retention takes effect.
    pub pending_effective_at: Option<DateTime<Utc>>,
    /// Row version (the etag); 0 for the defaults.
    pub version: i64,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = SettingsPath, fields = Settings, output_only = &[
    "org_id",
    "etag",
    "update_time",
    "retained_after_sequence",
    "pending_retention_days",
    "pending_retention_effective_time",
])]
pub enum SettingsChange {
    /// `None`: keep events forever.
    RetentionDays(Option<i32>),
}

/// All of it is its own fields.
impl OwnFields for Settings {
    type Fields = Settings;

    fn fields_mut(&mut self) -> &mut Settings {
        self
    }
}

impl Patch for Settings {
    type Change = SettingsChange;
}

impl Settings {
    /// Asks for `requested` days (`None`: forever) at `now`. As long or
    /// longer than today's takes effect at once and drops a pending
    /// reduction (this is how an owner reverts one); shorter waits for the
    /// policy's delay as the pending retention (asking again for the same
    /// reduction keeps its time).
    pub fn request_retention(
        &mut self,
        requested: Option<i32>,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
    ) {
        if keeps_as_long(requested, self.retention_days)
            || policy.reduction_delay <= TimeDelta::zero()
        {
            self.retention_days = requested;
            self.pending_retention_days = None;
            self.pending_effective_at = None;
        } else if self.pending_retention_days != requested || self.pending_effective_at.is_none() {
            self.pending_retention_days = requested;
            self.pending_effective_at = Some(now + policy.reduction_delay);
        }
    }

    /// Makes a pending reduction whose time has come the retention;
    /// whether it did.
    pub fn promote_due(&mut self, now: DateTime<Utc>) -> bool {
        match (self.pending_retention_days, self.pending_effective_at) {
            (Some(days), Some(at)) if at <= now => {
                self.retention_days = Some(days);
                self.pending_retention_days = None;
                self.pending_effective_at = None;
                true
            }
            _ => false,
        }
    }
}

impl Audited for Settings {
    /// Written out rather than serialized: the wire's 0 for forever (and
    /// for no pending reduction), not the stored null.
    fn audit_fields(&self) -> AuditFields {
        let Settings {
            retention_days,
            pending_retention_days,
            pending_effective_at,
            version: _,
            updated_at: _,
        } = self;
        AuditFields::new()
            .field("retention_days", retention_days.unwrap_or(0))
            .field(
                "pending_retention_days",
                pending_retention_days.unwrap_or(0),
            )
            .field("pending_retention_effective_time", pending_effective_at)
    }
}

/// Shortest retention any policy allows, in days. Retention never removes
/// the events of the last day: the database function that removes a
/// prefix enforces it too.
pub const MIN_RETENTION_DAYS: i32 = 1;
/// Longest retention, in days (100 years).
pub const MAX_RETENTION_DAYS: i32 = 36_500;

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetentionPolicy {
        RetentionPolicy::new(30, TimeDelta::days(7))
    }

    fn forever() -> Settings {
        Settings {
            retention_days: None,
            pending_retention_days: None,
            pending_effective_at: None,
            version: 0,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn retention_is_forever_or_within_the_operators_bounds() {
        let p = policy();
        assert_eq!(p.retention_days(0), Ok(None));
        assert_eq!(p.retention_days(30), Ok(Some(30)));
        assert_eq!(p.retention_days(36_500), Ok(Some(36_500)));
        assert!(p.retention_days(29).is_err());
        assert!(p.retention_days(1).is_err());
        assert!(p.retention_days(-1).is_err());
        assert!(p.retention_days(36_501).is_err());
        assert_eq!(p.effective_days(Some(1)), Some(30), "the floor holds");
        assert_eq!(p.effective_days(None), None);
    }

    #[test]
    fn a_reduction_waits_and_can_be_reverted_a_longer_one_is_at_once() {
        let p = policy();
        let now = Utc::now();
        let mut s = forever();
        s.request_retention(Some(90), &p, now);
        assert_eq!(s.retention_days, None, "forever to 90 days is a reduction");
        assert_eq!(s.pending_retention_days, Some(90));
        assert_eq!(s.pending_effective_at, Some(now + TimeDelta::days(7)));
        // Asking again keeps the clock.
        s.request_retention(Some(90), &p, now + TimeDelta::days(1));
        assert_eq!(s.pending_effective_at, Some(now + TimeDelta::days(7)));
        assert!(!s.promote_due(now + TimeDelta::days(6)));
        // Reverting: today's retention again.
        s.request_retention(None, &p, now);
        assert_eq!((s.retention_days, s.pending_retention_days), (None, None));
        // Due: it takes effect.
        s.request_retention(Some(90), &p, now);
        assert!(s.promote_due(now + TimeDelta::days(7)));
        assert_eq!(
            (s.retention_days, s.pending_retention_days),
            (Some(90), None)
        );
        // Longer is at once.
        s.request_retention(Some(365), &p, now);
        assert_eq!(
            (s.retention_days, s.pending_retention_days),
            (Some(365), None)
        );
        // No delay configured: at once.
        let mut s = forever();
        s.request_retention(Some(30), &RetentionPolicy::new(1, TimeDelta::zero()), now);
        assert_eq!(s.retention_days, Some(30));
    }

    #[test]
    fn a_retention_change_is_audited_as_on_the_wire() {
        let before = forever();
        let mut after = before.clone();
        after
            .apply(vec![SettingsChange::RetentionDays(Some(30))])
            .expect("applies");
        let changes = foundry_domain::diff(&before, &after);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].field, &changes[0].old, &changes[0].new),
            ("retention_days", &0.into(), &30.into())
        );
    }
}
