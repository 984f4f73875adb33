//! Delivery rules: the states of programs, requirements, tasks and subtasks
//! and which moves between them are allowed, and the requirement graph
//! (cycle detection, planning order) in [`graph`]. No I/O.

pub mod graph;

use foundry_platform::Error;
use foundry_proto::foundry::delivery::v1 as pb;

/// An enum stored as lowercase text (CHECK-constrained in the schema) and
/// sent as a proto enum whose `*_UNSPECIFIED` maps to nothing.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident => $pb:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Database spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses the database spelling.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// Parses a stored value the schema's CHECK constraint admitted.
            pub fn from_db(s: &str) -> $name {
                Self::parse(s).unwrap_or(Self::ALL[0])
            }
        }

        impl From<$name> for pb::$pb {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => pb::$pb::$variant),+
                }
            }
        }

        impl TryFrom<i32> for $name {
            type Error = ();
            fn try_from(v: i32) -> Result<Self, ()> {
                match pb::$pb::try_from(v).map_err(|_| ())? {
                    $(pb::$pb::$variant => Ok($name::$variant),)+
                    pb::$pb::Unspecified => Err(()),
                }
            }
        }
    };
}

text_enum! {
    /// The delivery phase of a program, in order.
    Phase => DeliveryPhase {
        /// Understanding the current system; where every program starts.
        Discovery = "discovery",
        /// Building.
        Build = "build",
        /// Testing.
        Test = "test",
        /// Deploying.
        Deploy = "deploy",
        /// Delivered.
        Complete = "complete",
    }
}

text_enum! {
    /// How much a requirement matters (declared most important first, so
    /// the derived order is planning order).
    Priority => RequirementPriority {
        /// Blocks the delivery.
        Critical = "critical",
        /// Must have.
        High = "high",
        /// Should have.
        Medium = "medium",
        /// Nice to have.
        Low = "low",
    }
}

text_enum! {
    /// Where a requirement stands.
    RequirementStatus => RequirementStatus {
        /// Being written.
        Draft = "draft",
        /// Agreed.
        Approved = "approved",
        /// Being built.
        InProgress = "in_progress",
        /// Delivered.
        Done = "done",
        /// Postponed.
        Deferred = "deferred",
    }
}

text_enum! {
    /// The workflow status of a task.
    TaskStatus => TaskStatus {
        /// Not planned yet.
        Backlog = "backlog",
        /// Planned.
        Todo = "todo",
        /// Being worked on.
        InProgress = "in_progress",
        /// Waiting for review.
        InReview = "in_review",
        /// Finished.
        Done = "done",
        /// Cannot proceed.
        Blocked = "blocked",
    }
}

text_enum! {
    /// Where a subtask stands.
    SubtaskStatus => SubtaskStatus {
        /// Not started.
        Todo = "todo",
        /// Being worked on.
        InProgress = "in_progress",
        /// Finished.
        Done = "done",
    }
}

impl SubtaskStatus {
    /// Whether the subtask still holds its task back from DONE.
    pub fn is_open(self) -> bool {
        self != SubtaskStatus::Done
    }
}

/// How a phase change relates to the phase order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseMove {
    /// Already there: nothing to do.
    Unchanged,
    /// The next phase: always allowed.
    Next,
    /// Further ahead than the next phase: forced only.
    Skip,
    /// An earlier phase: forced only.
    Back,
}

impl PhaseMove {
    /// Classifies a move from `from` to `to`.
    pub fn of(from: Phase, to: Phase) -> PhaseMove {
        let (a, b) = (from as i32, to as i32);
        if b == a {
            PhaseMove::Unchanged
        } else if b == a + 1 {
            PhaseMove::Next
        } else if b > a {
            PhaseMove::Skip
        } else {
            PhaseMove::Back
        }
    }

    /// The audit spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseMove::Unchanged => "unchanged",
            PhaseMove::Next => "next",
            PhaseMove::Skip => "skip",
            PhaseMove::Back => "back",
        }
    }
}

/// Checks a phase change. Moving to the next phase is always allowed;
/// skipping ahead or going back only when forced (the caller checked that
/// the forcer may). Returns what kind of move it is.
pub fn advance_phase(from: Phase, to: Phase, force: bool) -> Result<PhaseMove, Error> {
    let step = PhaseMove::of(from, to);
    match step {
        PhaseMove::Skip if !force => Err(Error::failed_precondition(
            "PHASE_SKIP_NOT_ALLOWED",
            format!(
                "a program in phase {} moves to {} next; skipping to {} needs force",
                from.as_str(),
                next_phase(from).map_or("nothing", Phase::as_str),
                to.as_str()
            ),
        )),
        PhaseMove::Back if !force => Err(Error::failed_precondition(
            "PHASE_BACKWARDS_NOT_ALLOWED",
            format!(
                "a program in phase {} cannot go back to {} without force",
                from.as_str(),
                to.as_str()
            ),
        )),
        _ => Ok(step),
    }
}

/// The phase after `p`, if any.
pub fn next_phase(p: Phase) -> Option<Phase> {
    Phase::ALL.get(p as usize + 1).copied()
}

impl TaskStatus {
    /// The statuses the workflow allows moving to from this one.
    pub fn successors(self) -> &'static [TaskStatus] {
        use TaskStatus::*;
        match self {
            Backlog => &[Todo, InProgress, Blocked],
            Todo => &[Backlog, InProgress, Blocked],
            InProgress => &[Todo, InReview, Done, Blocked],
            InReview => &[InProgress, Done, Blocked],
            Done => &[Todo, InProgress],
            Blocked => &[Backlog, Todo, InProgress],
        }
    }

    /// Statuses a task may be created in.
    pub fn is_initial(self) -> bool {
        matches!(self, TaskStatus::Backlog | TaskStatus::Todo)
    }
}

/// What a status change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskMove {
    /// Already there: nothing to do.
    Unchanged,
    /// An allowed move.
    Allowed,
    /// DONE with open subtasks, allowed because forced.
    Forced,
}

/// Checks a task status change against the workflow and the subtask rule:
/// DONE needs every subtask closed, unless forced. `open_subtasks` is how
/// many are open (the caller counts them only for moves to DONE).
pub fn change_task_status(
    from: TaskStatus,
    to: TaskStatus,
    open_subtasks: i64,
    force: bool,
) -> Result<TaskMove, Error> {
    if from == to {
        return Ok(TaskMove::Unchanged);
    }
    if !from.successors().contains(&to) {
        let allowed: Vec<&str> = from.successors().iter().map(|s| s.as_str()).collect();
        return Err(Error::failed_precondition(
            "TASK_TRANSITION_NOT_ALLOWED",
            format!(
                "a task cannot move from {} to {}; allowed: {}",
                from.as_str(),
                to.as_str(),
                allowed.join(", ")
            ),
        ));
    }
    if to == TaskStatus::Done && open_subtasks > 0 {
        if !force {
            return Err(Error::failed_precondition(
                "SUBTASKS_OPEN",
                format!("{open_subtasks} subtask(s) still open; close them or force"),
            )
            .with_metadata("open_subtasks", open_subtasks.to_string()));
        }
        return Ok(TaskMove::Forced);
    }
    Ok(TaskMove::Allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_advance_one_step_at_a_time_unless_forced() {
        use Phase::*;
        assert_eq!(
            advance_phase(Discovery, Build, false).ok(),
            Some(PhaseMove::Next)
        );
        assert_eq!(
            advance_phase(Deploy, Complete, false).ok(),
            Some(PhaseMove::Next)
        );
        assert_eq!(
            advance_phase(Build, Build, false).ok(),
            Some(PhaseMove::Unchanged)
        );
        let skip = advance_phase(Discovery, Test, false).expect_err("skip");
        assert_eq!(skip.reason(), "PHASE_SKIP_NOT_ALLOWED");
        assert!(skip.message().contains("build"), "{}", skip.message());
        let back = advance_phase(Test, Build, false).expect_err("back");
        assert_eq!(back.reason(), "PHASE_BACKWARDS_NOT_ALLOWED");
        assert_eq!(
            advance_phase(Discovery, Complete, true).ok(),
            Some(PhaseMove::Skip)
        );
        assert_eq!(
            advance_phase(Complete, Discovery, true).ok(),
            Some(PhaseMove::Back)
        );
        assert_eq!(next_phase(Complete), None);
        assert_eq!(next_phase(Discovery), Some(Build));
    }

    #[test]
    fn enums_round_trip_through_text_and_proto() {
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(*p));
            assert_eq!(Phase::try_from(pb::DeliveryPhase::from(*p) as i32), Ok(*p));
        }
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(*s));
            assert_eq!(
                TaskStatus::try_from(pb::TaskStatus::from(*s) as i32),
                Ok(*s)
            );
        }
        assert!(TaskStatus::try_from(0).is_err());
        assert!(TaskStatus::try_from(99).is_err());
        assert!(
            Priority::Critical < Priority::Low,
            "declared most important first"
        );
    }

    #[test]
    fn the_task_workflow_allows_only_its_moves() {
        use TaskStatus::*;
        assert_eq!(
            change_task_status(Backlog, Todo, 0, false).ok(),
            Some(TaskMove::Allowed)
        );
        assert_eq!(
            change_task_status(InReview, Done, 0, false).ok(),
            Some(TaskMove::Allowed)
        );
        assert_eq!(
            change_task_status(Done, InProgress, 0, false).ok(),
            Some(TaskMove::Allowed)
        );
        assert_eq!(
            change_task_status(Todo, Todo, 3, false).ok(),
            Some(TaskMove::Unchanged)
        );
        for (from, to) in [
            (Backlog, Done),
            (Todo, InReview),
            (Done, Blocked),
            (Blocked, Done),
        ] {
            let e = change_task_status(from, to, 0, true).expect_err("not in the workflow");
            assert_eq!(
                e.reason(),
                "TASK_TRANSITION_NOT_ALLOWED",
                "{from:?} -> {to:?}"
            );
        }
        // Every status is reachable and none is a dead end.
        for s in TaskStatus::ALL {
            assert!(!s.successors().is_empty());
            assert!(TaskStatus::ALL.iter().any(|f| f.successors().contains(s)));
        }
    }

    #[test]
    fn a_task_with_open_subtasks_is_done_only_when_forced() {
        use TaskStatus::*;
        let e = change_task_status(InReview, Done, 2, false).expect_err("open subtasks");
        assert_eq!(e.reason(), "SUBTASKS_OPEN");
        assert_eq!(
            change_task_status(InReview, Done, 2, true).ok(),
            Some(TaskMove::Forced)
        );
        assert_eq!(
            change_task_status(InProgress, InReview, 2, false).ok(),
            Some(TaskMove::Allowed)
        );
        assert!(SubtaskStatus::Todo.is_open() && !SubtaskStatus::Done.is_open());
    }
}
