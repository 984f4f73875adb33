//! `PlannerPhaseService`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use foundry_platform::Error;
use foundry_platform::convert::{opt_timestamp, timestamp};
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{
    self as pb, planner_phase_service_server::PlannerPhaseService,
};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::{
    SHORT_DESCRIPTION, actor, found, long_text, planner_phase_not_found, position, program,
};
use crate::store::{self, Lock, NewPlannerPhase, PlannerPhaseRow};

/// Handlers of `PlannerPhaseService`.
#[derive(Clone, Debug)]
pub struct PlannerPhases(pub Arc<State>);

const RESOURCE: &str = "delivery.planner_phase";

pub fn planner_phase_to_proto(p: PlannerPhaseRow) -> pb::PlannerPhase {
    pb::PlannerPhase {
        id: p.id.to_string(),
        program_id: p.program_id.to_string(),
        name: p.name,
        description: p.description,
        position: p.position,
        start_time: opt_timestamp(p.start_at),
        end_time: opt_timestamp(p.end_at),
        created_by: p.created_by.to_string(),
        create_time: Some(timestamp(p.created_at)),
        update_time: Some(timestamp(p.updated_at)),
        etag: etag(p.version),
    }
}

/// When both are set, `start < end`; else a violation on
/// `planner_phase.end_time`.
fn check_dates(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Result<(), Error> {
    match (start, end) {
        (Some(a), Some(b)) if a >= b => Err(Error::invalid_field(
            "planner_phase.end_time",
            "must be after start_time",
        )),
        _ => Ok(()),
    }
}

#[tonic::async_trait]
impl PlannerPhaseService for PlannerPhases {
    #[tracing::instrument(skip_all)]
    async fn create_planner_phase(
        &self,
        req: Request<pb::CreatePlannerPhaseRequest>,
    ) -> Result<Response<pb::PlannerPhase>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let p = req.planner_phase.unwrap_or_default();
        let mut v = Violations::new();
        let program_id = v.id("planner_phase.program_id", &p.program_id);
        let name = v.text("planner_phase.name", &p.name, 1, 200);
        let description = long_text(
            &mut v,
            "planner_phase.description",
            &p.description,
            0,
            SHORT_DESCRIPTION,
        );
        let position = position(&mut v, "planner_phase.position", p.position, true);
        let start_at = v.opt_time("planner_phase.start_time", p.start_time.as_ref());
        let end_at = v.opt_time("planner_phase.end_time", p.end_time.as_ref());
        if let (Some(Some(a)), Some(Some(b))) = (start_at, end_at)
            && a >= b
        {
            v.add("planner_phase.end_time", "must be after start_time");
        }
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (
            Some(program_id),
            Some(name),
            Some(description),
            Some(position),
            Some(start_at),
            Some(end_at),
        ) = (program_id, name, description, position, start_at, end_at)
        else {
            return Err(Error::invalid_field("planner_phase", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::PlannerPhase>(&mut tx, org_id, "CreatePlannerPhase", rid)
                    .await?
        {
            return Ok(Response::new(prev));
        }
        program(&mut tx, &caller, org_id, program_id, Lock::KeyShare).await?;
        let row = store::insert_planner_phase(
            &mut tx,
            NewPlannerPhase {
                org_id,
                program_id,
                name: &name,
                description: &description,
                position,
                start_at,
                end_at,
                created_by: caller.principal_id(),
            },
        )
        .await?;
        actor
            .event("delivery.planner_phase.create", RESOURCE, row.id)
            .project(Some(program_id))
            .set("name", &row.name)
            .set("description", &row.description)
            .set("position", row.position)
            .set("start_time", row.start_at)
            .set("end_time", row.end_at)
            .record(&mut tx)
            .await?;
        let out = planner_phase_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreatePlannerPhase", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_planner_phase(
        &self,
        req: Request<pb::GetPlannerPhaseRequest>,
    ) -> Result<Response<pb::PlannerPhase>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_planner_phase(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |p| p.program_id,
            planner_phase_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(planner_phase_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_planner_phases(
        &self,
        req: Request<pb::ListPlannerPhasesRequest>,
    ) -> Result<Response<pb::ListPlannerPhasesResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let program_id = Violations::require_id("program_id", &req.program_id)?;
        let page = self.0.pages.parse_keyed(
            req.page_size,
            &req.page_token,
            &format!("program={program_id}"),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        program(&mut tx, &caller, org_id, program_id, Lock::None).await?;
        let mut rows = store::list_planner_phases(
            &mut tx,
            org_id,
            program_id,
            page.after_key.zip(page.after),
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self
            .0
            .pages
            .finish_keyed(&page, &mut rows, |r| (i64::from(r.position), r.id));
        Ok(Response::new(pb::ListPlannerPhasesResponse {
            planner_phases: rows.into_iter().map(planner_phase_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_planner_phase(
        &self,
        req: Request<pb::UpdatePlannerPhaseRequest>,
    ) -> Result<Response<pb::PlannerPhase>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let p = req.planner_phase.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("planner_phase.id", &p.id);
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &["name", "description", "position", "start_time", "end_time"],
            &[
                "id",
                "program_id",
                "created_by",
                "create_time",
                "update_time",
                "etag",
            ],
        );
        let (mut name, mut description, mut new_position) = (None, None, None);
        let (mut start_at, mut end_at) = (None, None);
        for path in &paths {
            match *path {
                "name" => name = v.text("planner_phase.name", &p.name, 1, 200),
                "description" => {
                    description = long_text(
                        &mut v,
                        "planner_phase.description",
                        &p.description,
                        0,
                        SHORT_DESCRIPTION,
                    )
                }
                "position" => {
                    new_position =
                        position(&mut v, "planner_phase.position", p.position, false).flatten()
                }
                // Unset clears the date.
                "start_time" => {
                    start_at = v.opt_time("planner_phase.start_time", p.start_time.as_ref())
                }
                _ => end_at = v.opt_time("planner_phase.end_time", p.end_time.as_ref()),
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("planner_phase.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = found(
            store::get_planner_phase(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |p| p.program_id,
            planner_phase_not_found,
        )?;
        check_etag(&p.etag, row.version, "planner phase")?;
        let before = row.clone();
        if let Some(x) = name {
            row.name = x;
        }
        if let Some(x) = description {
            row.description = x;
        }
        if let Some(x) = new_position {
            row.position = x;
        }
        if let Some(x) = start_at {
            row.start_at = x;
        }
        if let Some(x) = end_at {
            row.end_at = x;
        }
        check_dates(row.start_at, row.end_at)?;
        let row = store::update_planner_phase(&mut tx, &row).await?;
        actor
            .event("delivery.planner_phase.update", RESOURCE, id)
            .project(Some(row.program_id))
            .change("name", &before.name, &row.name)
            .change("description", &before.description, &row.description)
            .change("position", before.position, row.position)
            .change("start_time", before.start_at, row.start_at)
            .change("end_time", before.end_at, row.end_at)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(planner_phase_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_planner_phase(
        &self,
        req: Request<pb::DeletePlannerPhaseRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_planner_phase(&mut tx, org_id, id, Lock::Update).await?,
            &caller,
            |p| p.program_id,
            planner_phase_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "planner phase")?;
        store::delete_planner_phase(&mut tx, org_id, id).await?;
        actor
            .event("delivery.planner_phase.delete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("name", &row.name, None::<()>)
            .change("position", row.position, None::<()>)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}
