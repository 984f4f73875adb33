//! Planner phases: the ordered stages of a program's plan, each with
//! optional dates in order.

use chrono::{DateTime, Utc};
use foundry_domain::{Audited, Change, Patch, Record, Stamp};
use serde::{Deserialize, Serialize};

use super::*;

/// A stage of a program's plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = fields.program_id)]
pub struct PlannerPhase {
    pub id: PlannerPhaseId,
    pub fields: NewPlannerPhase<i32>,
    pub stamp: Stamp,
}

/// A planner phase's own fields: to create, as parsed at the edge (with an
/// `Option<i32>` position), or as held by a [`PlannerPhase`] (`i32`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewPlannerPhase<Position = Option<i32>> {
    pub program_id: ProgramId,
    pub name: String,
    pub description: String,
    /// Its place in the program (ties break by id); when created, `None`
    /// is after the program's last phase.
    pub position: Position,
    /// With `end_time`, before it ([`check_phase_dates`]).
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = PlannerPhasePath, fields = NewPlannerPhase<i32>, output_only = PROGRAM_CHILD_OUTPUT_ONLY)]
pub enum PlannerPhaseChange {
    Name(String),
    Description(String),
    Position(i32),
    /// `None` clears the date.
    StartTime(Option<DateTime<Utc>>),
    /// `None` clears the date.
    EndTime(Option<DateTime<Utc>>),
}

impl Patch for PlannerPhase {
    type Change = PlannerPhaseChange;

    fn check_fields(&self) -> Result<(), Error> {
        check_phase_dates(self.fields.start_time, self.fields.end_time)
    }
}

/// When both dates are set, the start is before the end; else invalid
/// `planner_phase.end_time`.
pub fn check_phase_dates(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    match (start, end) {
        (Some(a), Some(b)) if a >= b => Err(Error::invalid(
            "planner_phase.end_time",
            "must be after start_time",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_ends_after_it_starts() {
        let day = |d: i64| DateTime::from_timestamp(d * 86_400, 0);
        assert!(check_phase_dates(day(1), day(2)).is_ok());
        assert!(check_phase_dates(day(1), None).is_ok());
        assert!(check_phase_dates(None, day(1)).is_ok());
        for (a, b) in [(1, 1), (2, 1)] {
            let e = check_phase_dates(day(a), day(b)).expect_err("out of order");
            assert_eq!(e.field.as_deref(), Some("planner_phase.end_time"));
        }
    }
}
