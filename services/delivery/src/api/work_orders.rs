//! `WorkOrderService`.

use std::sync::Arc;

use chrono::Utc;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Tx, check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{
    self as pb, work_order_service_server::WorkOrderService,
};
use foundry_tenancy::{Caller, caller};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    LONG_DESCRIPTION, actor, criteria, feature_not_found, found, long_text, other_program,
    planner_phase_not_found, program, user_ids, work_order_not_found,
};
use crate::domain::{self, WorkOrderStatus};
use crate::store::{self, Lock, WorkOrderFilter, WorkOrderRow};

/// Handlers of `WorkOrderService`.
#[derive(Clone, Debug)]
pub struct WorkOrders(pub Arc<State>);

const RESOURCE: &str = "delivery.work_order";
const MAX_ASSIGNEES: usize = 32;
const MAX_CRITERIA: usize = 50;
const MAX_CRITERION: usize = 2_000;

pub fn work_order_to_proto(w: WorkOrderRow) -> pb::WorkOrder {
    pb::WorkOrder {
        id: w.id.to_string(),
        program_id: w.program_id.to_string(),
        title: w.title,
        description: w.description,
        status: pb::WorkOrderStatus::from(WorkOrderStatus::from_db(&w.status)) as i32,
        acceptance_criteria: w.acceptance_criteria,
        implementation_plan: w.implementation_plan,
        assignee_ids: w.assignee_ids.iter().map(Uuid::to_string).collect(),
        phase_id: w.phase_id.map(|x| x.to_string()).unwrap_or_default(),
        feature_id: w.feature_id.map(|x| x.to_string()).unwrap_or_default(),
        created_by: w.created_by.to_string(),
        create_time: Some(timestamp(w.created_at)),
        update_time: Some(timestamp(w.updated_at)),
        etag: etag(w.version),
    }
}

/// Checks that the phase and feature (when set) are visible and of
/// `program_id`, holding them with `KEY SHARE` until commit.
async fn links(
    tx: &mut Tx,
    caller: &Caller,
    org_id: Uuid,
    program_id: Uuid,
    phase_id: Option<Uuid>,
    feature_id: Option<Uuid>,
) -> Result<(), Error> {
    if let Some(id) = phase_id {
        let p = found(
            store::get_planner_phase(tx, org_id, id, Lock::KeyShare).await?,
            caller,
            |p| p.program_id,
            planner_phase_not_found,
        )?;
        if p.program_id != program_id {
            return Err(other_program("planner phase"));
        }
    }
    if let Some(id) = feature_id {
        let f = found(
            store::get_feature(tx, org_id, id, Lock::KeyShare).await?,
            caller,
            |f| f.program_id,
            feature_not_found,
        )?;
        if f.program_id != program_id {
            return Err(other_program("feature"));
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl WorkOrderService for WorkOrders {
    #[tracing::instrument(skip_all)]
    async fn create_work_order(
        &self,
        req: Request<pb::CreateWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let w = req.work_order.unwrap_or_default();
        let mut v = Violations::new();
        let program_id = v.id("work_order.program_id", &w.program_id);
        let title = v.text("work_order.title", &w.title, 1, 500);
        let description = long_text(
            &mut v,
            "work_order.description",
            &w.description,
            0,
            LONG_DESCRIPTION,
        );
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
        let acceptance_criteria = criteria(
            &mut v,
            "work_order.acceptance_criteria",
            &w.acceptance_criteria,
            MAX_CRITERIA,
            MAX_CRITERION,
        );
        let implementation_plan = long_text(
            &mut v,
            "work_order.implementation_plan",
            &w.implementation_plan,
            0,
            LONG_DESCRIPTION,
        );
        let assignee_ids = user_ids(
            &mut v,
            "work_order.assignee_ids",
            &w.assignee_ids,
            MAX_ASSIGNEES,
        );
        let phase_id = v.opt_id("work_order.phase_id", &w.phase_id);
        let feature_id = v.opt_id("work_order.feature_id", &w.feature_id);
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (
            Some(program_id),
            Some(title),
            Some(description),
            Some(status),
            Some(acceptance_criteria),
            Some(implementation_plan),
            Some(assignee_ids),
        ) = (
            program_id,
            title,
            description,
            status,
            acceptance_criteria,
            implementation_plan,
            assignee_ids,
        )
        else {
            return Err(Error::invalid_field("work_order", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::WorkOrder>(&mut tx, org_id, "CreateWorkOrder", rid).await?
        {
            return Ok(Response::new(prev));
        }
        program(&mut tx, &caller, org_id, program_id, Lock::KeyShare).await?;
        links(&mut tx, &caller, org_id, program_id, phase_id, feature_id).await?;
        let now = Utc::now();
        let row = store::insert_work_order(
            &mut tx,
            &WorkOrderRow {
                org_id,
                id: Uuid::nil(),
                program_id,
                title,
                description,
                status: status.as_str().to_owned(),
                acceptance_criteria,
                implementation_plan,
                assignee_ids,
                phase_id,
                feature_id,
                created_by: caller.principal_id(),
                version: 1,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        actor
            .event("delivery.work_order.create", RESOURCE, row.id)
            .project(Some(program_id))
            .set("title", &row.title)
            .set("description", &row.description)
            .set("status", &row.status)
            .set("acceptance_criteria", &row.acceptance_criteria)
            .set("implementation_plan", &row.implementation_plan)
            .set("assignee_ids", &row.assignee_ids)
            .set("phase_id", row.phase_id)
            .set("feature_id", row.feature_id)
            .record(&mut tx)
            .await?;
        let out = work_order_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateWorkOrder", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_work_order(
        &self,
        req: Request<pb::GetWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_work_order(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |w| w.program_id,
            work_order_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(work_order_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_work_orders(
        &self,
        req: Request<pb::ListWorkOrdersRequest>,
    ) -> Result<Response<pb::ListWorkOrdersResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.id("program_id", &req.program_id);
        let status: Option<WorkOrderStatus> = v.opt_enum_value("status", req.status);
        let assignee_id = v.opt_id("assignee_id", &req.assignee_id);
        let phase_id = v.opt_id("phase_id", &req.phase_id);
        let feature_id = v.opt_id("feature_id", &req.feature_id);
        v.finish()?;
        let Some(program_id) = program_id else {
            return Err(Error::invalid_field("program_id", "is required").into());
        };
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!(
                "program={program_id};status={};assignee={};phase={};feature={}",
                req.status, req.assignee_id, req.phase_id, req.feature_id
            ),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        program(&mut tx, &caller, org_id, program_id, Lock::None).await?;
        let mut rows = store::list_work_orders(
            &mut tx,
            org_id,
            WorkOrderFilter {
                program_id,
                status: status.map(WorkOrderStatus::as_str),
                assignee_id,
                phase_id,
                feature_id,
            },
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |w| w.id);
        Ok(Response::new(pb::ListWorkOrdersResponse {
            work_orders: rows.into_iter().map(work_order_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_work_order(
        &self,
        req: Request<pb::UpdateWorkOrderRequest>,
    ) -> Result<Response<pb::WorkOrder>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let w = req.work_order.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("work_order.id", &w.id);
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &[
                "title",
                "description",
                "acceptance_criteria",
                "implementation_plan",
                "assignee_ids",
                "phase_id",
                "feature_id",
            ],
            &[
                "id",
                "program_id",
                "status",
                "created_by",
                "create_time",
                "update_time",
                "etag",
            ],
        );
        let mut title = None;
        let mut description = None;
        let mut acceptance_criteria = None;
        let mut implementation_plan = None;
        let mut assignee_ids = None;
        let mut phase_id = None;
        let mut feature_id = None;
        for path in &paths {
            match *path {
                "title" => title = v.text("work_order.title", &w.title, 1, 500),
                "description" => {
                    description = long_text(
                        &mut v,
                        "work_order.description",
                        &w.description,
                        0,
                        LONG_DESCRIPTION,
                    )
                }
                "acceptance_criteria" => {
                    acceptance_criteria = criteria(
                        &mut v,
                        "work_order.acceptance_criteria",
                        &w.acceptance_criteria,
                        MAX_CRITERIA,
                        MAX_CRITERION,
                    )
                }
                "implementation_plan" => {
                    implementation_plan = long_text(
                        &mut v,
                        "work_order.implementation_plan",
                        &w.implementation_plan,
                        0,
                        LONG_DESCRIPTION,
                    )
                }
                "assignee_ids" => {
                    assignee_ids = user_ids(
                        &mut v,
                        "work_order.assignee_ids",
                        &w.assignee_ids,
                        MAX_ASSIGNEES,
                    )
                }
                // Empty unlinks.
                "phase_id" => phase_id = Some(v.opt_id("work_order.phase_id", &w.phase_id)),
                _ => feature_id = Some(v.opt_id("work_order.feature_id", &w.feature_id)),
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("work_order.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = found(
            store::get_work_order(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |w| w.program_id,
            work_order_not_found,
        )?;
        check_etag(&w.etag, row.version, "work order")?;
        links(
            &mut tx,
            &caller,
            org_id,
            row.program_id,
            phase_id.flatten(),
            feature_id.flatten(),
        )
        .await?;
        let before = row.clone();
        if let Some(x) = title {
            row.title = x;
        }
        if let Some(x) = description {
            row.description = x;
        }
        if let Some(x) = acceptance_criteria {
            row.acceptance_criteria = x;
        }
        if let Some(x) = implementation_plan {
            row.implementation_plan = x;
        }
        if let Some(x) = assignee_ids {
            row.assignee_ids = x;
        }
        if let Some(x) = phase_id {
            row.phase_id = x;
        }
        if let Some(x) = feature_id {
            row.feature_id = x;
        }
        let row = store::update_work_order(&mut tx, &row).await?;
        actor
            .event("delivery.work_order.update", RESOURCE, id)
            .project(Some(row.program_id))
            .change("title", &before.title, &row.title)
            .change("description", &before.description, &row.description)
            .change(
                "acceptance_criteria",
                &before.acceptance_criteria,
                &row.acceptance_criteria,
            )
            .change(
                "implementation_plan",
                &before.implementation_plan,
                &row.implementation_plan,
            )
            .change("assignee_ids", &before.assignee_ids, &row.assignee_ids)
            .change("phase_id", before.phase_id, row.phase_id)
            .change("feature_id", before.feature_id, row.feature_id)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(work_order_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_work_order(
        &self,
        req: Request<pb::DeleteWorkOrderRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_work_order(&mut tx, org_id, id, Lock::Update).await?,
            &caller,
            |w| w.program_id,
            work_order_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "work order")?;
        store::delete_work_order(&mut tx, org_id, id).await?;
        actor
            .event("delivery.work_order.delete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("title", &row.title, None::<()>)
            .change("status", &row.status, None::<()>)
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
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let mut v = Violations::new();
        let id = v.id("id", &req.id);
        let to: Option<WorkOrderStatus> = v.enum_value("status", req.status);
        v.finish()?;
        let (Some(id), Some(to)) = (id, to) else {
            return Err(Error::invalid_field("id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_work_order(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |w| w.program_id,
            work_order_not_found,
        )?;
        check_etag(&req.etag, row.version, "work order")?;
        let from = WorkOrderStatus::from_db(&row.status);
        if !domain::change_work_order_status(from, to).map_err(Error::from)? {
            tx.commit().await.map_err(Error::from)?;
            return Ok(Response::new(work_order_to_proto(row)));
        }
        let row = store::set_work_order_status(&mut tx, org_id, id, to.as_str()).await?;
        actor
            .event("delivery.work_order.change_status", RESOURCE, id)
            .project(Some(row.program_id))
            .change("status", from.as_str(), to.as_str())
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(work_order_to_proto(row)))
    }
}
