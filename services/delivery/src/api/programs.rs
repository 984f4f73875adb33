//! `ProgramService`.

use std::sync::Arc;

use foundry_platform::Error;
use foundry_platform::convert::{opt_timestamp, timestamp};
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{self as pb, program_service_server::ProgramService};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::{SHORT_DESCRIPTION, actor, long_text, program};
use crate::domain::{self, Phase, PhaseMove};
use crate::store::{self, Lock, NewProgram, ProgramFilter, ProgramRow};

/// Handlers of `ProgramService`.
#[derive(Clone, Debug)]
pub struct Programs(pub Arc<State>);

/// The permission that lets AdvanceProgramPhase skip phases or go back.
pub const FORCE_PERMISSION: &str = "delivery.programs.admin";

const RESOURCE: &str = "delivery.program";

pub fn program_to_proto(r: ProgramRow) -> pb::Program {
    pb::Program {
        id: r.id.to_string(),
        name: r.name,
        slug: r.slug,
        description: r.description,
        source_platform: r.source_platform,
        target_platform: r.target_platform,
        phase: pb::DeliveryPhase::from(Phase::from_db(&r.phase)) as i32,
        archived: r.archived_at.is_some(),
        archive_time: opt_timestamp(r.archived_at),
        created_by: r.created_by.to_string(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
    }
}

fn archived() -> Error {
    Error::failed_precondition(
        "PROGRAM_ARCHIVED",
        "the program is archived; unarchive it first",
    )
}

#[tonic::async_trait]
impl ProgramService for Programs {
    #[tracing::instrument(skip_all)]
    async fn create_program(
        &self,
        req: Request<pb::CreateProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let p = req.program.unwrap_or_default();
        let mut v = Violations::new();
        let name = v.text("program.name", &p.name, 1, 200);
        let slug = v.slug("program.slug", &p.slug);
        let description = long_text(
            &mut v,
            "program.description",
            &p.description,
            0,
            SHORT_DESCRIPTION,
        );
        let source = v.text("program.source_platform", &p.source_platform, 0, 100);
        let target = v.text("program.target_platform", &p.target_platform, 0, 100);
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (Some(name), Some(slug), Some(description), Some(source), Some(target)) =
            (name, slug, description, source, target)
        else {
            return Err(Error::invalid_field("program", "is required").into());
        };
        if caller.claims.project_id.is_some() {
            return Err(Error::permission_denied(
                "PROJECT_BOUND_CREDENTIAL",
                "a credential bound to one program cannot create programs",
            )
            .into());
        }

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::Program>(&mut tx, org_id, "CreateProgram", rid).await?
        {
            return Ok(Response::new(prev));
        }
        let row = store::insert_program(
            &mut tx,
            NewProgram {
                org_id,
                name: &name,
                slug: &slug,
                description: &description,
                source_platform: &source,
                target_platform: &target,
                created_by: caller.principal_id(),
            },
        )
        .await?;
        actor
            .event("delivery.program.create", RESOURCE, row.id)
            .project(Some(row.id))
            .set("name", &row.name)
            .set("slug", &row.slug)
            .set("description", &row.description)
            .set("source_platform", &row.source_platform)
            .set("target_platform", &row.target_platform)
            .set("phase", &row.phase)
            .record(&mut tx)
            .await?;
        let out = program_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateProgram", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_program(
        &self,
        req: Request<pb::GetProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = program(&mut tx, &caller, org_id, id, Lock::None).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(program_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_programs(
        &self,
        req: Request<pb::ListProgramsRequest>,
    ) -> Result<Response<pb::ListProgramsResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let phase: Option<Phase> = v.opt_enum_value("phase", req.phase);
        v.finish()?;
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!("phase={};archived={:?}", req.phase, req.archived),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut rows = store::list_programs(
            &mut tx,
            org_id,
            ProgramFilter {
                phase: phase.map(Phase::as_str),
                archived: req.archived,
                only: caller.claims.project_id,
            },
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListProgramsResponse {
            programs: rows.into_iter().map(program_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_program(
        &self,
        req: Request<pb::UpdateProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let p = req.program.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("program.id", &p.id);
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &[
                "name",
                "slug",
                "description",
                "source_platform",
                "target_platform",
            ],
            &[
                "id",
                "phase",
                "archived",
                "archive_time",
                "created_by",
                "create_time",
                "update_time",
                "etag",
            ],
        );
        let (mut name, mut slug, mut description, mut source, mut target) =
            (None, None, None, None, None);
        for path in &paths {
            match *path {
                "name" => name = v.text("program.name", &p.name, 1, 200),
                "slug" => slug = v.slug("program.slug", &p.slug),
                "description" => {
                    description = long_text(
                        &mut v,
                        "program.description",
                        &p.description,
                        0,
                        SHORT_DESCRIPTION,
                    )
                }
                "source_platform" => {
                    source = v.text("program.source_platform", &p.source_platform, 0, 100)
                }
                _ => target = v.text("program.target_platform", &p.target_platform, 0, 100),
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("program.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = program(&mut tx, &caller, org_id, id, Lock::NoKeyUpdate).await?;
        check_etag(&p.etag, row.version, "program")?;
        if row.archived_at.is_some() {
            return Err(archived().into());
        }
        let before = row.clone();
        if let Some(x) = name {
            row.name = x;
        }
        if let Some(x) = slug {
            row.slug = x;
        }
        if let Some(x) = description {
            row.description = x;
        }
        if let Some(x) = source {
            row.source_platform = x;
        }
        if let Some(x) = target {
            row.target_platform = x;
        }
        let row = store::update_program(&mut tx, &row).await?;
        actor
            .event("delivery.program.update", RESOURCE, id)
            .project(Some(id))
            .change("name", &before.name, &row.name)
            .change("slug", &before.slug, &row.slug)
            .change("description", &before.description, &row.description)
            .change(
                "source_platform",
                &before.source_platform,
                &row.source_platform,
            )
            .change(
                "target_platform",
                &before.target_platform,
                &row.target_platform,
            )
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(program_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_program(
        &self,
        req: Request<pb::DeleteProgramRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        // FOR UPDATE: creates of children hold FOR KEY SHARE on the program,
        // so none is in flight while the cascade runs.
        let row = program(&mut tx, &caller, org_id, id, Lock::Update).await?;
        check_etag(&req.get_ref().etag, row.version, "program")?;
        let removed = store::delete_program(&mut tx, org_id, id).await?;
        actor
            .event("delivery.program.delete", RESOURCE, id)
            .project(Some(id))
            .change("name", &row.name, None::<()>)
            .change("slug", &row.slug, None::<()>)
            .change("phase", &row.phase, None::<()>)
            .set(
                "removed",
                serde_json::json!({
                    "workstreams": removed.workstreams,
                    "requirements": removed.requirements,
                    "dependencies": removed.dependencies,
                    "tasks": removed.tasks,
                    "subtasks": removed.subtasks,
                    "risks": removed.risks,
                    "goals": removed.goals,
                    "work_orders": removed.work_orders,
                    "planner_phases": removed.planner_phases,
                    "features": removed.features,
                    "sprints": removed.sprints,
                    "sprint_gates": removed.sprint_gates,
                    "sprint_gate_evaluations": removed.sprint_gate_evaluations,
                }),
            )
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }

    #[tracing::instrument(skip_all)]
    async fn advance_program_phase(
        &self,
        req: Request<pb::AdvanceProgramPhaseRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let mut v = Violations::new();
        let id = v.id("id", &req.id);
        let to: Option<Phase> = v.enum_value("phase", req.phase);
        let reason = v.text("reason", &req.reason, 0, 1000);
        v.finish()?;
        let (Some(id), Some(to), Some(reason)) = (id, to, reason) else {
            return Err(Error::invalid_field("id", "is required").into());
        };
        if req.force && !caller.can(FORCE_PERMISSION) {
            return Err(Error::permission_denied(
                "FORCE_NOT_PERMITTED",
                format!("forcing a phase change needs {FORCE_PERMISSION}"),
            )
            .into());
        }
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = program(&mut tx, &caller, org_id, id, Lock::NoKeyUpdate).await?;
        check_etag(&req.etag, row.version, "program")?;
        if row.archived_at.is_some() {
            return Err(archived().into());
        }
        let from = Phase::from_db(&row.phase);
        let step = domain::advance_phase(from, to, req.force).map_err(Error::from)?;
        if step == PhaseMove::Unchanged {
            tx.commit().await.map_err(Error::from)?;
            return Ok(Response::new(program_to_proto(row)));
        }
        let row = store::set_program_phase(&mut tx, org_id, id, to.as_str()).await?;
        let forced = matches!(step, PhaseMove::Skip | PhaseMove::Back);
        let mut event = actor
            .event("delivery.program.advance_phase", RESOURCE, id)
            .project(Some(id))
            .change("phase", from.as_str(), to.as_str());
        if forced {
            event = event.set("forced", true).set("move", step.as_str());
        }
        if !reason.is_empty() {
            event = event.set("reason", &reason);
        }
        event.record(&mut tx).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(program_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn archive_program(
        &self,
        req: Request<pb::ArchiveProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = program(&mut tx, &caller, org_id, id, Lock::NoKeyUpdate).await?;
        check_etag(&req.get_ref().etag, row.version, "program")?;
        if row.archived_at.is_some() {
            return Err(Error::failed_precondition(
                "PROGRAM_ALREADY_ARCHIVED",
                "the program is already archived",
            )
            .into());
        }
        let row = store::set_program_archived(&mut tx, org_id, id, true).await?;
        actor
            .event("delivery.program.archive", RESOURCE, id)
            .project(Some(id))
            .change("archive_time", None::<()>, row.archived_at)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(program_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn unarchive_program(
        &self,
        req: Request<pb::UnarchiveProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = program(&mut tx, &caller, org_id, id, Lock::NoKeyUpdate).await?;
        check_etag(&req.get_ref().etag, row.version, "program")?;
        let Some(archived_at) = row.archived_at else {
            return Err(Error::failed_precondition(
                "PROGRAM_NOT_ARCHIVED",
                "the program is not archived",
            )
            .into());
        };
        let row = store::set_program_archived(&mut tx, org_id, id, false).await?;
        actor
            .event("delivery.program.unarchive", RESOURCE, id)
            .project(Some(id))
            .change("archive_time", archived_at, None::<()>)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(program_to_proto(row)))
    }
}
