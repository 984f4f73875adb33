//! Work orders: status and its workflow.

use super::*;

stored_enum! {
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
    if from.successors().contains(&to) {
        return Ok(true);
    }
    let allowed: Vec<&str> = from.successors().iter().map(|s| s.as_str()).collect();
    Err(Error::failed_precondition(
        "WORK_ORDER_TRANSITION_NOT_ALLOWED",
        format!(
            "a work order cannot move from {} to {}; allowed: {}",
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
