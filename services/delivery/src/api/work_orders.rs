//! `WorkOrderService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_domain::Id;
use foundry_domain::Record;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::{Tx, check_etag};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1::{
    self as pb, work_order_service_server::WorkOrderService,
};
use foundry_resource::{self as resource, Create, Delete, Resource, Update, WireStamp};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    Order, Paging, SERVICE, create_one, criteria, delete_one, get_one, hold, in_program, list_page,
    long_description, parse_changes, title, update_one, user_ids,
};
use crate::domain::{
    self, NewWorkOrder, UserId, WorkOrder, WorkOrderChange, WorkOrderId, WorkOrderPath,
    WorkOrderStatus,
};
use crate::domain::{Feature, PlannerPhase, Program, ProgramId};
use crate::store::{self, Lock, WorkOrderFilter};

/// Handlers of `WorkOrderService`.
#[derive(Clone, Debug)]
pub struct WorkOrders(pub Arc<State>);

const MAX_ASSIGNEES: usize = 32;
const MAX_CRITERIA: usize = 50;
const MAX_CRITERION: usize = 2_000;

pub fn work_order_to_proto(w: &WorkOrder) -> pb::WorkOrder {
    let wire = WireStamp::from(&w.stamp);
    pb::WorkOrder {
        id: w.id.to_string(),
        program_id: w.fields.program_id.to_string(),
        title: w.fields.title.clone(),
        description: w.fields.description.clone(),
        status: pb::WorkOrderStatus::from(w.fields.status) as i32,
        acceptance_criteria: w.fields.acceptance_criteria.clone(),
        implementation_plan: w.fields.implementation_plan.clone(),
        assignee_ids: w.fields.assignee_ids.iter().map(Id::to_string).collect(),
        phase_id: w.fields.phase_id.map(|x| x.to_string()).unwrap_or_default(),
        feature_id: w
            .fields
            .feature_id
            .map(|x| x.to_string())
            .unwrap_or_default(),
        created_by: wire.created_by,
        create_time: wire.create_time,
        update_time: wire.update_time,
        etag: wire.etag,
    }
}

/// A `CreateWorkOrderRequest` as a [`NewWorkOrder`] and its request id.
fn parse_create(req: &pb::CreateWorkOrderRequest) -> Result<(NewWorkOrder, Option<Uuid>), Error> {
    let empty = pb::WorkOrder::default();
    let w = req.work_order.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("work_order.program_id", &w.program_id);
    let title = title(&mut v, "work_order.title", &w.title);
    let description = long_description(&mut v, "work_order.description", &w.description);
    let status = match w.status {
        0 => Some(WorkOrderStatus::Backlog),
        s => match v.enum_value::<WorkOrderStatus>("work_order.status", s) {
            Some(s) if s.is_initial() => Some(s),
            Some(_) => {
                v.add("work_order.status", "a new work order is BACKLOG or READY");
                None
            }
            None => None,
        },
    };
    let acceptance_criteria = acceptance_criteria(&mut v, &w.acceptance_criteria);
    let implementation_plan = long_description(
        &mut v,
        "work_order.implementation_plan",
        &w.implementation_plan,
    );
    let assignee_ids = assignees(&mut v, &w.assignee_ids);
    let phase_id = v.maybe_id("work_order.phase_id", &w.phase_id);
    let feature_id = v.maybe_id("work_order.feature_id", &w.feature_id);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewWorkOrder {
                program_id: program_id?,
                title: title?,
                description: description?,
                status: status?,
                acceptance_criteria: acceptance_criteria?,
                implementation_plan: implementation_plan?,
                assignee_ids: assignee_ids?,
                phase_id: phase_id?,
                feature_id: feature_id?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateWorkOrderRequest` as the work order's id, etag and the
/// changes its mask names.
fn parse_update(
    req: &pb::UpdateWorkOrderRequest,
) -> Result<(WorkOrderId, String, Vec<WorkOrderChange>), Error> {
    let empty = pb::WorkOrder::default();
    let w = req.work_order.as_ref().unwrap_or(&empty);
    parse_changes(
        "work_order",
        (&w.id, &w.etag),
        req.update_mask.as_ref(),
        |v, path| match path {
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
        },
    )
}

fn acceptance_criteria(v: &mut Violations, items: &[String]) -> Option<Vec<String>> {
    criteria(
        v,
        "work_order.acceptance_criteria",
        items,
        MAX_CRITERIA,
        MAX_CRITERION,
    )
}

fn assignees(v: &mut Violations, ids: &[String]) -> Option<Vec<UserId>> {
    user_ids(v, "work_order.assignee_ids", ids, MAX_ASSIGNEES)
        .map(|ids| ids.into_iter().map(Id::from_uuid).collect())
}

#[async_trait]
impl Create for WorkOrder {
    /// The program, and the phase and feature if any, are visible, in that
    /// program, and held (`FOR KEY SHARE`) until commit.
    async fn check_new(new: &NewWorkOrder, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        let program_id = new.program_id;
        hold::<Program>(tx, call, program_id).await?;
        if let Some(p) = new.phase_id {
            in_program::<PlannerPhase>(tx, call, program_id, p, "planner phase").await?;
        }
        if let Some(f) = new.feature_id {
            in_program::<Feature>(tx, call, program_id, f, "feature").await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Update for WorkOrder {
    /// A new phase or feature must be visible and in the work order's
    /// program.
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
        Ok(())
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

#[tonic::async_trait]
impl WorkOrderService for WorkOrders {
    #[tracing::instrument(skip_all)]
    async fn create_work_order(
        &self,
        req: Request<pb::CreateWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        create_one(
            &self.0,
            &req,
            "CreateWorkOrder",
            parse_create,
            work_order_to_proto,
        )
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_work_order(
        &self,
        req: Request<pb::GetWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        get_one(&self.0, &req, &req.get_ref().id, work_order_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_work_orders(
        &self,
        req: Request<pb::ListWorkOrdersRequest>,
    ) -> Result<Response<pb::ListWorkOrdersResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id: Option<ProgramId> = v.id_of("program_id", &req.program_id);
        let status: Option<WorkOrderStatus> = v.opt_enum_value("status", req.status);
        let assignee_id = v.opt_id("assignee_id", &req.assignee_id);
        let phase_id = v.opt_id("phase_id", &req.phase_id);
        let feature_id = v.opt_id("feature_id", &req.feature_id);
        let program_id = v.finish_with(|| program_id)?;
        let filter = WorkOrderFilter {
            program_id: program_id.uuid(),
            status,
            assignee_id,
            phase_id,
            feature_id,
        };
        let paging =
            Paging::under("program", program_id, req.page_size, &req.page_token).and(&format!(
                "status={};assignee={};phase={};feature={}",
                req.status, req.assignee_id, req.phase_id, req.feature_id
            ));
        let (rows, next_page_token) =
            list_page(&self.0, &call, paging, Order::newest(), |tx, call, page| {
                Box::pin(async move {
                    resource::fetch::<Program>(tx, call, program_id, Lock::None).await?;
                    store::list_work_orders(tx, call.org_id, filter, page.after, page.limit()).await
                })
            })
            .await?;
        Ok(Response::new(pb::ListWorkOrdersResponse {
            work_orders: rows.iter().map(work_order_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_work_order(
        &self,
        req: Request<pb::UpdateWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        update_one(&self.0, &req, parse_update, work_order_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_work_order(
        &self,
        req: Request<pb::DeleteWorkOrderRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        delete_one::<WorkOrder, _, _>(&self.0, &req, &r.id, &r.etag).await
    }

    #[tracing::instrument(skip_all)]
    async fn change_work_order_status(
        &self,
        req: Request<pb::ChangeWorkOrderStatusRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let id = v.id_of("id", &req.id);
        let to: Option<WorkOrderStatus> = v.enum_value("status", req.status);
        let (id, to) = v.finish_with(|| Some((id?, to?)))?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let w: WorkOrder = resource::fetch(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
        check_etag(&req.etag, w.stamp.version, WorkOrder::NAME)?;
        if !domain::change_work_order_status(w.fields.status, to).map_err(Error::from)? {
            tx.commit().await.map_err(Error::from)?;
            return Ok(Response::new(work_order_to_proto(&w)));
        }
        let after = store::set_work_order_status(&mut tx, call.org_id, id, to).await?;
        call.actor
            .event("delivery.work_order.change_status", WorkOrder::KIND, id)
            .project(after.project())
            .diff(&w, &after)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(work_order_to_proto(&after)))
    }
}
