//! `WorkOrderService`.

use std::sync::Arc;

use foundry_domain::Id;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Tx, check_etag, etag};
use foundry_platform::idempotency::{self, Begun};
use foundry_platform::validate::{Violations, mask};
use foundry_proto::foundry::delivery::v1::{
    self as pb, work_order_service_server::WorkOrderService,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::features::feature_in;
use crate::api::planner_phases::phase_in;
use crate::api::{
    LONG_DESCRIPTION, SERVICE, criteria, found, long_text, program, user_ids, work_order_not_found,
};
use crate::domain::{
    self, NewWorkOrder, UserId, WorkOrder, WorkOrderChange, WorkOrderId, WorkOrderPath,
    WorkOrderStatus,
};
use crate::store::{self, Lock, WorkOrderFilter};

/// Handlers of `WorkOrderService`.
#[derive(Clone, Debug)]
pub struct WorkOrders(pub Arc<State>);

const RESOURCE: &str = "delivery.work_order";
const MAX_ASSIGNEES: usize = 32;
const MAX_CRITERIA: usize = 50;
const MAX_CRITERION: usize = 2_000;

pub fn work_order_to_proto(w: &WorkOrder) -> pb::WorkOrder {
    pb::WorkOrder {
        id: w.id.to_string(),
        program_id: w.program_id.to_string(),
        title: w.title.clone(),
        description: w.description.clone(),
        status: pb::WorkOrderStatus::from(w.status) as i32,
        acceptance_criteria: w.acceptance_criteria.clone(),
        implementation_plan: w.implementation_plan.clone(),
        assignee_ids: w.assignee_ids.iter().map(Id::to_string).collect(),
        phase_id: w.phase_id.map(|x| x.to_string()).unwrap_or_default(),
        feature_id: w.feature_id.map(|x| x.to_string()).unwrap_or_default(),
        created_by: w.created_by.to_string(),
        create_time: Some(timestamp(w.created_at)),
        update_time: Some(timestamp(w.updated_at)),
        etag: etag(w.version),
    }
}

/// A `CreateWorkOrderRequest` as a [`NewWorkOrder`] and its request id.
fn parse_create(req: &pb::CreateWorkOrderRequest) -> Result<(NewWorkOrder, Option<Uuid>), Error> {
    let empty = pb::WorkOrder::default();
    let w = req.work_order.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("work_order.program_id", &w.program_id);
    let title = title(&mut v, &w.title);
    let description = long(&mut v, "work_order.description", &w.description);
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
    let implementation_plan = long(
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

/// An `UpdateWorkOrderRequest` as the work order's id and the changes its
/// mask names.
fn parse_update(
    req: &pb::UpdateWorkOrderRequest,
) -> Result<(WorkOrderId, Vec<WorkOrderChange>), Error> {
    let empty = pb::WorkOrder::default();
    let w = req.work_order.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let id = v.id_of("work_order.id", &w.id);
    let mut changes = Vec::new();
    for path in mask::<WorkOrderPath>(&mut v, req.update_mask.as_ref()) {
        changes.push(match path {
            WorkOrderPath::Title => title(&mut v, &w.title).map(WorkOrderChange::Title),
            WorkOrderPath::Description => long(&mut v, "work_order.description", &w.description)
                .map(WorkOrderChange::Description),
            WorkOrderPath::AcceptanceCriteria => {
                acceptance_criteria(&mut v, &w.acceptance_criteria)
                    .map(WorkOrderChange::AcceptanceCriteria)
            }
            WorkOrderPath::ImplementationPlan => long(
                &mut v,
                "work_order.implementation_plan",
                &w.implementation_plan,
            )
            .map(WorkOrderChange::ImplementationPlan),
            WorkOrderPath::AssigneeIds => {
                assignees(&mut v, &w.assignee_ids).map(WorkOrderChange::AssigneeIds)
            }
            // Empty unlinks.
            WorkOrderPath::PhaseId => v
                .maybe_id("work_order.phase_id", &w.phase_id)
                .map(WorkOrderChange::PhaseId),
            WorkOrderPath::FeatureId => v
                .maybe_id("work_order.feature_id", &w.feature_id)
                .map(WorkOrderChange::FeatureId),
        });
    }
    v.finish_with(|| Some((id?, changes.into_iter().collect::<Option<Vec<_>>>()?)))
}

fn title(v: &mut Violations, title: &str) -> Option<String> {
    v.text("work_order.title", title, 1, 500)
}

/// A description or an implementation plan: long text, may be empty.
fn long(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    long_text(v, field, value, 0, LONG_DESCRIPTION)
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

/// A work order the caller may see, with `lock`.
async fn visible_work_order(
    tx: &mut Tx,
    call: &Call,
    id: WorkOrderId,
    lock: Lock,
) -> Result<WorkOrder, Error> {
    found(
        store::get_work_order(tx, call.org_id, id, lock).await?,
        &call.caller,
        |w| w.program_id.uuid(),
        work_order_not_found,
    )
}

#[tonic::async_trait]
impl WorkOrderService for WorkOrders {
    #[tracing::instrument(skip_all)]
    async fn create_work_order(
        &self,
        req: Request<pb::CreateWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (new, request_id) = parse_create(req.get_ref())?;
        let key = idempotency::Key::of(call.org_id, "CreateWorkOrder", request_id, req.get_ref());
        let mut tx = match idempotency::begin(self.0.db.tenant(call.org_id).await?, key).await? {
            Begun::Replay(previous) => return Ok(Response::new(previous)),
            Begun::New(tx) => tx,
        };
        program(
            &mut tx,
            &call.caller,
            call.org_id,
            new.program_id.uuid(),
            Lock::KeyShare,
        )
        .await?;
        if let Some(p) = new.phase_id {
            phase_in(&mut tx, &call, new.program_id, p).await?;
        }
        if let Some(f) = new.feature_id {
            feature_in(&mut tx, &call, new.program_id, f, "feature").await?;
        }
        let w = store::insert_work_order(&mut tx, call.org_id, &new, call.principal_id()).await?;
        call.actor
            .event("delivery.work_order.create", RESOURCE, w.id)
            .project(Some(w.program_id.uuid()))
            .created(&w)
            .record(&mut tx)
            .await?;
        let out = work_order_to_proto(&w);
        tx.finish(&out).await?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_work_order(
        &self,
        req: Request<pb::GetWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let w = visible_work_order(&mut tx, &call, id, Lock::None).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(work_order_to_proto(&w)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_work_orders(
        &self,
        req: Request<pb::ListWorkOrdersRequest>,
    ) -> Result<Response<pb::ListWorkOrdersResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.id("program_id", &req.program_id);
        let status: Option<WorkOrderStatus> = v.opt_enum_value("status", req.status);
        let assignee_id = v.opt_id("assignee_id", &req.assignee_id);
        let phase_id = v.opt_id("phase_id", &req.phase_id);
        let feature_id = v.opt_id("feature_id", &req.feature_id);
        let program_id = v.finish_with(|| program_id)?;
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!(
                "program={program_id};status={};assignee={};phase={};feature={}",
                req.status, req.assignee_id, req.phase_id, req.feature_id
            ),
        )?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        program(&mut tx, &call.caller, call.org_id, program_id, Lock::None).await?;
        let mut work_orders = store::list_work_orders(
            &mut tx,
            call.org_id,
            WorkOrderFilter {
                program_id,
                status,
                assignee_id,
                phase_id,
                feature_id,
            },
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self
            .0
            .pages
            .finish(&page, &mut work_orders, |w| w.id.uuid());
        Ok(Response::new(pb::ListWorkOrdersResponse {
            work_orders: work_orders.iter().map(work_order_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_work_order(
        &self,
        req: Request<pb::UpdateWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, changes) = parse_update(req.get_ref())?;
        let etag = req
            .get_ref()
            .work_order
            .as_ref()
            .map_or("", |w| w.etag.as_str());
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let before = visible_work_order(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
        check_etag(etag, before.version, "work order")?;
        let mut w = before.clone();
        w.apply(changes);
        // New links must be visible and in the work order's program.
        if let Some(p) = w.phase_id
            && w.phase_id != before.phase_id
        {
            phase_in(&mut tx, &call, w.program_id, p).await?;
        }
        if let Some(f) = w.feature_id
            && w.feature_id != before.feature_id
        {
            feature_in(&mut tx, &call, w.program_id, f, "feature").await?;
        }
        let w = store::update_work_order(&mut tx, call.org_id, &w).await?;
        call.actor
            .event("delivery.work_order.update", RESOURCE, id)
            .project(Some(w.program_id.uuid()))
            .diff(&before, &w)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(work_order_to_proto(&w)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_work_order(
        &self,
        req: Request<pb::DeleteWorkOrderRequest>,
    ) -> Result<Response<()>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let w = visible_work_order(&mut tx, &call, id, Lock::Update).await?;
        check_etag(&req.get_ref().etag, w.version, "work order")?;
        store::delete_work_order(&mut tx, call.org_id, id).await?;
        call.actor
            .event("delivery.work_order.delete", RESOURCE, id)
            .project(Some(w.program_id.uuid()))
            .removed(&w)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
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
        let w = visible_work_order(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
        check_etag(&req.etag, w.version, "work order")?;
        if !domain::change_work_order_status(w.status, to).map_err(Error::from)? {
            tx.commit().await.map_err(Error::from)?;
            return Ok(Response::new(work_order_to_proto(&w)));
        }
        let after = store::set_work_order_status(&mut tx, call.org_id, id, to).await?;
        call.actor
            .event("delivery.work_order.change_status", RESOURCE, id)
            .project(Some(after.program_id.uuid()))
            .diff(&w, &after)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(work_order_to_proto(&after)))
    }
}
