//! Sprints: status, capacity unit, start and completion.

use chrono::{DateTime, Utc};
use foundry_domain::{Audited, Change, Patch, Record, Stamp};
use serde::{Deserialize, Serialize};

use super::*;

/// A time box of a program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = fields.program_id)]
pub struct Sprint {
    pub id: SprintId,
    pub fields: NewSprint,
    /// Changed only through [`start_sprint`] and [`complete_sprint`].
    pub status: SprintStatus,
    pub stamp: Stamp,
}

/// A sprint's own fields, held by a [`Sprint`]: to create, as parsed at the
/// edge (it starts [`SprintStatus::Planned`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewSprint {
    pub program_id: ProgramId,
    pub name: String,
    pub goal: String,
    /// Before `end_time` ([`check_sprint_dates`]).
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub capacity: f64,
    pub capacity_unit: CapacityUnit,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = SprintPath, fields = NewSprint, output_only = PROGRAM_CHILD_OUTPUT_ONLY, elsewhere(status = "changes through StartSprint and CompleteSprint"))]
pub enum SprintChange {
    Name(String),
    Goal(String),
    StartTime(DateTime<Utc>),
    EndTime(DateTime<Utc>),
    Capacity(f64),
    CapacityUnit(CapacityUnit),
}

impl Patch for Sprint {
    type Change = SprintChange;

    fn check_fields(&self) -> Result<(), Error> {
        check_sprint_dates(self.fields.start_time, self.fields.end_time)
    }
}

/// A sprint ends after it starts (a violation on `sprint.end_time`).
pub fn check_sprint_dates(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), Error> {
    if start < end {
        Ok(())
    } else {
        Err(Error::invalid(
            "sprint.end_time",
            "must be after start_time",
        ))
    }
}

foundry_domain::stored_enum! {
    /// The life of a sprint, in order.
    SprintStatus {
        /// Not started.
        Planned = "planned",
        /// Running (at most one per program).
        Active = "active",
        /// Finished.
        Completed = "completed",
    }
}

foundry_domain::stored_enum! {
    /// What a sprint's capacity counts.
    CapacityUnit {
        /// Hours of work.
        Hours = "hours",
        /// Story points.
        Points = "points",
    }
}

/// Checks that a sprint in `from` may start: only a PLANNED one.
pub fn start_sprint(from: SprintStatus) -> Result<(), Error> {
    sprint_in(
        SprintStatus::Planned,
        from,
        "SPRINT_NOT_PLANNED",
        "only a planned sprint starts",
    )
}

/// Checks that a sprint in `from` may complete: only an ACTIVE one.
pub fn complete_sprint(from: SprintStatus) -> Result<(), Error> {
    sprint_in(
        SprintStatus::Active,
        from,
        "SPRINT_NOT_ACTIVE",
        "only an active sprint completes",
    )
}

/// Refuses a sprint in `from` unless it is in `wanted`: `reason`, with
/// `rule` and where the sprint is.
fn sprint_in(
    wanted: SprintStatus,
    from: SprintStatus,
    reason: &'static str,
    rule: &str,
) -> Result<(), Error> {
    refuse_if(
        from != wanted,
        reason,
        format!("{rule}; this one is {}", from.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sprints_start_when_planned_and_complete_when_active() {
        use SprintStatus::*;
        let reason = |r: Result<(), Error>| r.err().map(|e| e.reason());
        for (from, start, complete) in [
            (Planned, None, Some("SPRINT_NOT_ACTIVE")),
            (Active, Some("SPRINT_NOT_PLANNED"), None),
            (
                Completed,
                Some("SPRINT_NOT_PLANNED"),
                Some("SPRINT_NOT_ACTIVE"),
            ),
        ] {
            assert_eq!(reason(start_sprint(from)), start, "start from {from:?}");
            assert_eq!(
                reason(complete_sprint(from)),
                complete,
                "complete from {from:?}"
            );
        }
    }
}
