//! Per-organization audit settings and retention. No I/O.

use chrono::{DateTime, Utc};
use foundry_domain::{AuditFields, Audited, Change, OwnFields, Patch};
use serde::{Deserialize, Serialize};

use super::Error;

/// An organization's stored audit settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Days events are kept; `None` forever.
    pub retention_days: Option<i32>,
    /// Row version (the etag); 0 for the defaults.
    pub version: i64,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = SettingsPath, fields = Settings, output_only = &["org_id", "etag", "update_time", "retained_after_sequence"])]
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

impl Audited for Settings {
    /// Written out rather than serialized: the wire's 0 for forever, not
    /// the stored null.
    fn audit_fields(&self) -> AuditFields {
        let Settings {
            retention_days,
            version: _,
            updated_at: _,
        } = self;
        // As on the wire: 0 is forever.
        AuditFields::new().field("retention_days", retention_days.unwrap_or(0))
    }
}

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

    #[test]
    fn a_retention_change_is_audited_as_on_the_wire() {
        let before = Settings {
            retention_days: None,
            version: 0,
            updated_at: Utc::now(),
        };
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
