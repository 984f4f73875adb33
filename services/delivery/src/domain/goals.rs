//! Goals: status and its workflow, and the fields an update may change.

use chrono::{DateTime, Utc};
use foundry_domain::{Audited, Change, FieldChange, Patch, Record, Stamp};
use serde::{Deserialize, Serialize};

use super::*;

/// An outcome a program aims for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = fields.program_id)]
pub struct Goal {
    pub id: GoalId,
    /// Its status moves only along [`GoalStatus::successors`] (checked by
    /// `Patch::apply`).
    pub fields: NewGoal,
    pub stamp: Stamp,
}

/// A goal's own fields, held by a [`Goal`]: to create, as parsed at the edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewGoal {
    pub program_id: ProgramId,
    pub title: String,
    pub description: String,
    pub target_metric: String,
    pub target_time: Option<DateTime<Utc>>,
    /// [`GoalStatus::is_initial`] when created.
    pub status: GoalStatus,
    pub owner_user_id: Option<UserId>,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = GoalPath, fields = NewGoal, output_only = PROGRAM_CHILD_OUTPUT_ONLY)]
pub enum GoalChange {
    Title(String),
    Description(String),
    TargetMetric(String),
    /// `None` clears the target date.
    TargetTime(Option<DateTime<Utc>>),
    /// Checked against the workflow ([`change_goal_status`]).
    Status(GoalStatus),
    /// `None` leaves the goal unowned.
    OwnerUserId(Option<UserId>),
}

impl Patch for Goal {
    type Change = GoalChange;

    /// Applies an update's changes; a status change the workflow does not
    /// allow is refused (and `self` is then partly changed: apply to a
    /// copy).
    /// A status change must be one the workflow allows.
    fn apply_one(&mut self, change: GoalChange) -> Result<(), Error> {
        if let GoalChange::Status(to) = change {
            change_goal_status(self.fields.status, to)?;
        }
        change.set(&mut self.fields);
        Ok(())
    }
}

foundry_domain::stored_enum! {
    /// Where a goal stands.
    GoalStatus {
        /// Suggested, not yet pursued.
        Proposed = "proposed",
        /// Being pursued.
        Active = "active",
        /// Reached.
        Achieved = "achieved",
        /// Given up.
        Abandoned = "abandoned",
    }
}

impl GoalStatus {
    /// The statuses a goal may move to from this one.
    pub fn successors(self) -> &'static [GoalStatus] {
        use GoalStatus::*;
        match self {
            Proposed => &[Active, Abandoned],
            Active => &[Achieved, Abandoned],
            Achieved => &[Active],
            Abandoned => &[Proposed],
        }
    }

    /// Statuses a goal may be created in.
    pub fn is_initial(self) -> bool {
        matches!(self, GoalStatus::Proposed | GoalStatus::Active)
    }
}

/// Checks a goal status change; staying put is allowed.
pub fn change_goal_status(from: GoalStatus, to: GoalStatus) -> Result<(), Error> {
    if from == to {
        return Ok(());
    }
    check_move(
        "a goal",
        "GOAL_TRANSITION_NOT_ALLOWED",
        from,
        to,
        from.successors(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_move_along_their_workflow() {
        use GoalStatus::*;
        for (from, to) in [
            (Proposed, Active),
            (Proposed, Abandoned),
            (Active, Achieved),
            (Active, Abandoned),
            (Achieved, Active),
            (Abandoned, Proposed),
            (Active, Active),
        ] {
            assert!(change_goal_status(from, to).is_ok(), "{from:?} -> {to:?}");
        }
        for (from, to) in [
            (Proposed, Achieved),
            (Achieved, Abandoned),
            (Achieved, Proposed),
            (Abandoned, Active),
            (Abandoned, Achieved),
            (Active, Proposed),
        ] {
            assert_eq!(
                change_goal_status(from, to).expect_err("refused").reason(),
                "GOAL_TRANSITION_NOT_ALLOWED",
                "{from:?} -> {to:?}"
            );
        }
        assert!(Proposed.is_initial() && Active.is_initial());
        assert!(!Achieved.is_initial() && !Abandoned.is_initial());
    }
}
