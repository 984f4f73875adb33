//! `WorkOrderService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_domain::Id;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::Tx;
use foundry_platform::rpc::Served;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{Create, Delete, Update, stamped};
use uuid::Uuid;

use crate::State;
use crate::api::tasks::{initial_status, list_assigned, lock_at, moved, parse_move};
use crate::api::{
    In, PathOf, Reply, Wire, criteria, in_program, long_description, members, standard, title,
    user_ids,
};
use crate::domain::{
    self, NewWorkOrder, UserId, WorkOrder, WorkOrderChange, WorkOrderPath, WorkOrderStatus,
};
use crate::domain::{Feature, PlannerPhase};
use crate::store;

impl Wire for WorkOrder {
    type Message = pb::WorkOrder;

    fn to_proto(&self) -> pb::WorkOrder {
        let f = &self.fields;
        pb::WorkOrder {
            program_id: f.program_id.to_string(),
            title: f.title.clone(),
            description: f.description.clone(),
            status: pb::WorkOrderStatus::from(f.status) as i32,
            acceptance_criteria: f.acceptance_criteria.clone(),
            implementation_plan: f.implementation_plan.clone(),
            assignee_ids: f.assignee_ids.iter().map(Id::to_string).collect(),
            phase_id: f.phase_id.map(|x| x.to_string()).unwrap_or_default(),
            feature_id: f.feature_id.map(|x| x.to_string()).unwrap_or_default(),
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, w: &pb::WorkOrder) -> Option<NewWorkOrder> {
        let program_id = v.id_of("work_order.program_id", &w.program_id);
        let title = title(v, "work_order.title", &w.title);
        let description = long_description(v, "work_order.description", &w.description);
        let status = initial_status(
            v,
            ("work_order.status", w.status),
            (WorkOrderStatus::Backlog, WorkOrderStatus::is_initial),
            "a new work order is BACKLOG or READY",
        );
        let acceptance_criteria = acceptance_criteria(v, &w.acceptance_criteria);
        let implementation_plan =
            long_description(v, "work_order.implementation_plan", &w.implementation_plan);
        let assignee_ids = assignees(v, &w.assignee_ids);
        let phase_id = v.maybe_id("work_order.phase_id", &w.phase_id);
        let feature_id = v.maybe_id("work_order.feature_id", &w.feature_id);
        Some(NewWorkOrder {
            program_id: program_id?,
            title: title?,
            description: description?,
            status: status?,
            acceptance_criteria: acceptance_criteria?,
            implementation_plan: implementation_plan?,
            assignee_ids: assignee_ids?,
            phase_id: phase_id?,
            feature_id: feature_id?,
        })
    }

    fn change(v: &mut Violations, path: PathOf<Self>, w: &Self::Message) -> Option<Self::Change> {
        match path {
            WorkOrderPath::Title => {
                title(v, "work_order.title", &w.title).map(WorkOrderChange::Title)
            }
            WorkOrderPath::Description => {
                long_description(v, "work_order.description", &w.description)
                    .map(WorkOrderChange::Description)
            }
            WorkOrderPath::AcceptanceCriteria => acceptance_criteria(v, &w.acceptance_criteria)
                .map(WorkOrderChange::AcceptanceCriteria),
            WorkOrderPath::ImplementationPlan => {
                long_description(v, "work_order.implementation_plan", &w.implementation_plan)
                    .map(WorkOrderChange::ImplementationPlan)
            }
            WorkOrderPath::AssigneeIds => {
                assignees(v, &w.assignee_ids).map(WorkOrderChange::AssigneeIds)
            }
            // Empty unlinks.
            WorkOrderPath::PhaseId => v
                .maybe_id("work_order.phase_id", &w.phase_id)
                .map(WorkOrderChange::PhaseId),
            WorkOrderPath::FeatureId => v
                .maybe_id("work_order.feature_id", &w.feature_id)
                .map(WorkOrderChange::FeatureId),
        }
    }
}

const MAX_ASSIGNEES: usize = 32;
const MAX_CRITERIA: usize = 50;
const MAX_CRITERION: usize = 2_000;

fn acceptance_criteria(v: &mut Violations, items: &[String]) -> Option<Vec<String>> {
    criteria(
        v,
        "work_order.acceptance_criteria",
        items,
        MAX_CRITERIA,
        MAX_CRITERION,
    )
}

/// The assignees' field.
const ASSIGNEES: &str = "work_order.assignee_ids";

fn assignees(v: &mut Violations, ids: &[String]) -> Option<Vec<UserId>> {
    user_ids(v, ASSIGNEES, ids, MAX_ASSIGNEES)
        .map(|ids| ids.into_iter().map(Id::from_uuid).collect())
}

#[async_trait]
impl Create for WorkOrder {
    fn checks(new: &NewWorkOrder) -> bool {
        new.phase_id.is_some() || new.feature_id.is_some() || !new.assignee_ids.is_empty()
    }

    /// The phase and feature if any are visible, in the program (held:
    /// `Resource::WITHIN`), and held (`FOR KEY SHARE`) until commit; the
    /// assignees are members.
    async fn check_new(new: &NewWorkOrder, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        let program_id = new.program_id;
        if let Some(p) = new.phase_id {
            in_program::<PlannerPhase>(tx, call, program_id, p, "planner phase").await?;
        }
        if let Some(f) = new.feature_id {
            in_program::<Feature>(tx, call, program_id, f, "feature").await?;
        }
        let assignees = members::listed(ASSIGNEES, &new.assignee_ids, &[]);
        members::members_only(tx, call, assignees).await
    }
}

#[async_trait]
impl Update for WorkOrder {
    /// A new phase or feature must be visible and in the work order's
    /// program; a new assignee must be a member.
    async fn check(&self, before: &WorkOrder, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        if let Some(p) = self.fields.phase_id
            && self.fields.phase_id != before.fields.phase_id
        {
            in_program::<PlannerPhase>(tx, call, self.fields.program_id, p, "planner phase")
                .await?;
        }
        if let Some(f) = self.fields.feature_id
            && self.fields.feature_id != before.fields.feature_id
        {
            in_program::<Feature>(tx, call, self.fields.program_id, f, "feature").await?;
        }
        let held = &before.fields.assignee_ids;
        let added = members::listed(ASSIGNEES, &self.fields.assignee_ids, held);
        members::members_only(tx, call, added).await
    }
}

#[async_trait]
impl Delete for WorkOrder {
    /// Its assignee index goes with it.
    async fn remove(&self, tx: &mut Tx, org_id: Uuid) -> Result<Option<serde_json::Value>, Error> {
        store::delete_work_order(tx, org_id, self.id).await?;
        Ok(None)
    }
}

/// `WorkOrderService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::WorkOrderService> {
    standard::<WorkOrder, _>(state)
        .call(list_work_orders)
        .call(change_work_order_status)
        .complete()
}

async fn list_work_orders(c: In<pb::ListWorkOrdersRequest>) -> Reply<pb::ListWorkOrdersResponse> {
    let r = &c.req;
    let links = [("phase_id", &r.phase_id[..]), ("feature_id", &r.feature_id)];
    let at = (&r.program_id[..], r.status, &r.assignee_id[..]);
    list_assigned::<WorkOrder, WorkOrderStatus, _, _>(&c, at, links).await
}

async fn change_work_order_status(c: In<pb::ChangeWorkOrderStatusRequest>) -> Reply<pb::WorkOrder> {
    let In {
        state,
        call,
        req: r,
    } = &c;
    let (id, to) = parse_move::<_, WorkOrderStatus>(&r.id, r.status)?;
    let mut tx = state.db.tenant(call.org_id).await?;
    let w: WorkOrder = lock_at(&mut tx, call, id, &r.etag).await?;
    let after = if domain::change_work_order_status(w.fields.status, to).map_err(Error::from)? {
        Some(store::set_status(&mut tx, call.org_id, id, to).await?)
    } else {
        None
    };
    moved(tx, call, "change_status", (w, after), |e| e).await
}
