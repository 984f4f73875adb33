//! Goals: status and its workflow.

use super::*;

stored_enum! {
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
    if from == to || from.successors().contains(&to) {
        return Ok(());
    }
    let allowed: Vec<&str> = from.successors().iter().map(|s| s.as_str()).collect();
    Err(Error::failed_precondition(
        "GOAL_TRANSITION_NOT_ALLOWED",
        format!(
            "a goal cannot move from {} to {}; allowed: {}",
            from.as_str(),
            to.as_str(),
            allowed.join(", ")
        ),
    ))
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
