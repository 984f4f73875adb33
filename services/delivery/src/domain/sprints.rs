//! Sprints: status, capacity unit, start and completion.

use super::*;

stored_enum! {
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

stored_enum! {
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
    match from {
        SprintStatus::Planned => Ok(()),
        other => Err(Error::failed_precondition(
            "SPRINT_NOT_PLANNED",
            format!(
                "only a planned sprint starts; this one is {}",
                other.as_str()
            ),
        )),
    }
}

/// Checks that a sprint in `from` may complete: only an ACTIVE one.
pub fn complete_sprint(from: SprintStatus) -> Result<(), Error> {
    match from {
        SprintStatus::Active => Ok(()),
        other => Err(Error::failed_precondition(
            "SPRINT_NOT_ACTIVE",
            format!(
                "only an active sprint completes; this one is {}",
                other.as_str()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sprints_start_when_planned_and_complete_when_active() {
        use SprintStatus::*;
        assert!(start_sprint(Planned).is_ok());
        assert_eq!(
            start_sprint(Active).expect_err("active").reason(),
            "SPRINT_NOT_PLANNED"
        );
        assert_eq!(
            start_sprint(Completed).expect_err("completed").reason(),
            "SPRINT_NOT_PLANNED"
        );
        assert!(complete_sprint(Active).is_ok());
        assert_eq!(
            complete_sprint(Planned).expect_err("planned").reason(),
            "SPRINT_NOT_ACTIVE"
        );
        assert_eq!(
            complete_sprint(Completed).expect_err("completed").reason(),
            "SPRINT_NOT_ACTIVE"
        );
    }
}
