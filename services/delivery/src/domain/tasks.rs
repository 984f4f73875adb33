//! Tasks: the workflow of a task's status and the subtask rule.

use chrono::{DateTime, Utc};
use foundry_domain::{Audited, Change, Patch, Record, Stamp};
use serde::{Deserialize, Serialize};

use super::*;

/// A unit of work in a program.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = fields.program_id)]
pub struct Task {
    pub id: TaskId,
    pub fields: NewTask,
    pub stamp: Stamp,
}

/// A task's own fields, held by a [`Task`]: to create, as parsed at the edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    pub program_id: ProgramId,
    /// The requirement it delivers, if any (same program).
    pub requirement_id: Option<RequirementId>,
    pub title: String,
    pub description: String,
    /// [`TaskStatus::is_initial`] when created; then changed only through
    /// [`change_task_status`].
    pub status: TaskStatus,
    /// Each once, in the given order.
    pub assignee_ids: Vec<UserId>,
    pub estimate_hours: Option<f64>,
    pub due_time: Option<DateTime<Utc>>,
    /// Each once, in the given order.
    pub labels: Vec<String>,
    /// The sprint it is planned in, if any (same program).
    pub sprint_id: Option<SprintId>,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = TaskPath, fields = NewTask, output_only = PROGRAM_CHILD_OUTPUT_ONLY, elsewhere(status = "changes through ChangeTaskStatus"))]
pub enum TaskChange {
    /// `None` detaches the task from its requirement.
    RequirementId(Option<RequirementId>),
    Title(String),
    Description(String),
    AssigneeIds(Vec<UserId>),
    EstimateHours(Option<f64>),
    DueTime(Option<DateTime<Utc>>),
    Labels(Vec<String>),
    /// `None` takes the task out of its sprint.
    SprintId(Option<SprintId>),
}

impl Patch for Task {
    type Change = TaskChange;
}

foundry_domain::stored_enum! {
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
    check_move(
        "a task",
        "TASK_TRANSITION_NOT_ALLOWED",
        from,
        to,
        from.successors(),
    )?;
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
        for (from, to, open, step) in [
            (Backlog, Todo, 0, TaskMove::Allowed),
            (InReview, Done, 0, TaskMove::Allowed),
            (Done, InProgress, 0, TaskMove::Allowed),
            (Todo, Todo, 3, TaskMove::Unchanged),
        ] {
            let got = change_task_status(from, to, open, false).ok();
            assert_eq!(got, Some(step), "{from:?} -> {to:?}");
        }
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
