//! Work orders: status and its workflow.

use foundry_domain::{Audited, Change, Patch, Record, Stamp};
use serde::{Deserialize, Serialize};

use super::*;

/// A unit of implementation work in a program, with its plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = fields.program_id)]
pub struct WorkOrder {
    pub id: WorkOrderId,
    pub fields: NewWorkOrder,
    pub stamp: Stamp,
}

/// A work order's own fields, held by a [`WorkOrder`]: to create, as parsed at
/// the edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewWorkOrder {
    pub program_id: ProgramId,
    pub title: String,
    pub description: String,
    /// [`WorkOrderStatus::is_initial`] when created; then changed only
    /// through [`change_work_order_status`].
    pub status: WorkOrderStatus,
    pub acceptance_criteria: Vec<String>,
    pub implementation_plan: String,
    /// Each once, in the given order.
    pub assignee_ids: Vec<UserId>,
    /// The planner phase it is planned in, if any (same program).
    pub phase_id: Option<PlannerPhaseId>,
    /// The feature it delivers, if any (same program).
    pub feature_id: Option<FeatureId>,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = WorkOrderPath, fields = NewWorkOrder, output_only = PROGRAM_CHILD_OUTPUT_ONLY, elsewhere(status = "changes through ChangeWorkOrderStatus"))]
pub enum WorkOrderChange {
    Title(String),
    Description(String),
    AcceptanceCriteria(Vec<String>),
    ImplementationPlan(String),
    AssigneeIds(Vec<UserId>),
    /// `None` takes the work order out of its phase.
    PhaseId(Option<PlannerPhaseId>),
    /// `None` detaches the work order from its feature.
    FeatureId(Option<FeatureId>),
}

impl Patch for WorkOrder {
    type Change = WorkOrderChange;
}

foundry_domain::stored_enum! {
    /// The workflow of a work order.
    WorkOrderStatus {
        /// Not yet ready to start; where a work order starts by default.
        Backlog = "backlog",
        /// Specified and ready to be picked up.
        Ready = "ready",
        /// Being implemented.
        InProgress = "in_progress",
        /// Implemented, under review.
        InReview = "in_review",
        /// Accepted.
        Done = "done",
    }
}

impl WorkOrderStatus {
    /// The statuses a work order may move to from this one: one step
    /// forward or back, and DONE reopens to IN_PROGRESS.
    pub fn successors(self) -> &'static [WorkOrderStatus] {
        use WorkOrderStatus::*;
        match self {
            Backlog => &[Ready],
            Ready => &[Backlog, InProgress],
            InProgress => &[Ready, InReview],
            InReview => &[InProgress, Done],
            Done => &[InProgress],
        }
    }

    /// Statuses a work order may be created in.
    pub fn is_initial(self) -> bool {
        matches!(self, WorkOrderStatus::Backlog | WorkOrderStatus::Ready)
    }
}

/// Checks a work order status change against the workflow; `Ok(false)`
/// when it is already there (nothing to do).
pub fn change_work_order_status(from: WorkOrderStatus, to: WorkOrderStatus) -> Result<bool, Error> {
    if from == to {
        return Ok(false);
    }
    check_move(
        "a work order",
        "WORK_ORDER_TRANSITION_NOT_ALLOWED",
        from,
        to,
        from.successors(),
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_orders_move_one_step_at_a_time() {
        use WorkOrderStatus::*;
        for (from, to) in [
            (Backlog, Ready),
            (Ready, InProgress),
            (Ready, Backlog),
            (InProgress, InReview),
            (InProgress, Ready),
            (InReview, Done),
            (InReview, InProgress),
            (Done, InProgress),
        ] {
            assert!(
                change_work_order_status(from, to).expect("allowed"),
                "{from:?} -> {to:?}"
            );
        }
        assert!(!change_work_order_status(Done, Done).expect("unchanged"));
        for (from, to) in [
            (Backlog, InProgress),
            (Backlog, Done),
            (Ready, InReview),
            (InProgress, Done),
            (Done, Backlog),
            (Done, Ready),
        ] {
            assert_eq!(
                change_work_order_status(from, to)
                    .expect_err("refused")
                    .reason(),
                "WORK_ORDER_TRANSITION_NOT_ALLOWED",
                "{from:?} -> {to:?}"
            );
        }
        assert!(Backlog.is_initial() && Ready.is_initial());
        assert!(!InProgress.is_initial() && !Done.is_initial());
    }
}
