//! Tasks: the workflow of a task's status and the subtask rule.

use super::*;

stored_enum! {
    /// The workflow status of a task.
    TaskStatus {
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
