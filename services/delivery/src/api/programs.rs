//! `ProgramService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::opt_timestamp;
use foundry_platform::db::{Tx, check_etag};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1::{self as pb, program_service_server::ProgramService};
use foundry_resource::{self as resource, Create, Creation, Delete, Resource, Update, WireStamp};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    Order, Paging, SERVICE, delete_one, get_one, list_page, parse_changes, short_description,
    update_one,
};
use crate::domain::{
    self, NewProgram, Phase, PhaseMove, Program, ProgramChange, ProgramId, ProgramPath,
};
use crate::store::{self, Lock, ProgramFilter};

/// Handlers of `ProgramService`.
#[derive(Clone, Debug)]
pub struct Programs(pub Arc<State>);

/// The permission that lets AdvanceProgramPhase skip phases or go back.
pub const FORCE_PERMISSION: &str = "delivery.programs.admin";

pub fn program_to_proto(p: &Program) -> pb::Program {
    let w = WireStamp::from(&p.stamp);
    pb::Program {
        id: p.id.to_string(),
        name: p.fields.name.clone(),
        slug: p.fields.slug.clone(),
        description: p.fields.description.clone(),
        source_platform: p.fields.source_platform.clone(),
        target_platform: p.fields.target_platform.clone(),
        phase: pb::DeliveryPhase::from(p.phase) as i32,
        archived: p.archive_time.is_some(),
        archive_time: opt_timestamp(p.archive_time),
        created_by: w.created_by,
        create_time: w.create_time,
        update_time: w.update_time,
        etag: w.etag,
    }
}

fn name(v: &mut Violations, value: &str) -> Option<String> {
    v.text("program.name", value, 1, 200)
}

fn platform(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    v.text(field, value, 0, 100)
}

/// A `CreateProgramRequest` as a [`NewProgram`] and its request id.
fn parse_create(req: &pb::CreateProgramRequest) -> Result<(NewProgram, Option<Uuid>), Error> {
    let empty = pb::Program::default();
    let p = req.program.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let name = name(&mut v, &p.name);
    let slug = v.slug("program.slug", &p.slug);
    let description = short_description(&mut v, "program.description", &p.description);
    let source_platform = platform(&mut v, "program.source_platform", &p.source_platform);
    let target_platform = platform(&mut v, "program.target_platform", &p.target_platform);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewProgram {
                name: name?,
                slug: slug?,
                description: description?,
                source_platform: source_platform?,
                target_platform: target_platform?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateProgramRequest` as the program's id, etag and the changes its
/// mask names.
fn parse_update(
    req: &pb::UpdateProgramRequest,
) -> Result<(ProgramId, String, Vec<ProgramChange>), Error> {
    let empty = pb::Program::default();
    let p = req.program.as_ref().unwrap_or(&empty);
    parse_changes(
        "program",
        (&p.id, &p.etag),
        req.update_mask.as_ref(),
        |v, path| match path {
            ProgramPath::Name => name(v, &p.name).map(ProgramChange::Name),
            ProgramPath::Slug => v.slug("program.slug", &p.slug).map(ProgramChange::Slug),
            ProgramPath::Description => short_description(v, "program.description", &p.description)
                .map(ProgramChange::Description),
            ProgramPath::SourcePlatform => {
                platform(v, "program.source_platform", &p.source_platform)
                    .map(ProgramChange::SourcePlatform)
            }
            ProgramPath::TargetPlatform => {
                platform(v, "program.target_platform", &p.target_platform)
                    .map(ProgramChange::TargetPlatform)
            }
        },
    )
}

/// An `AdvanceProgramPhaseRequest`: the program, the phase and the reason.
fn parse_advance(
    req: &pb::AdvanceProgramPhaseRequest,
) -> Result<(ProgramId, Phase, String), Error> {
    let mut v = Violations::new();
    let id = v.id_of("id", &req.id);
    let to = v.enum_value("phase", req.phase);
    let reason = v.text("reason", &req.reason, 0, 1000);
    v.finish_with(|| Some((id?, to?, reason?)))
}

impl Create for Program {}

#[async_trait]
impl Update for Program {
    /// An archived program does not change.
    async fn check(&self, before: &Program, _: &mut Tx, _: &Call) -> Result<(), Error> {
        before.check_not_archived().map_err(Error::from)
    }
}

#[async_trait]
impl Delete for Program {
    /// Everything in it goes with it. The caller holds it `FOR UPDATE`:
    /// creates of children hold `FOR KEY SHARE` on the program, so none is
    /// in flight while the cascade runs.
    async fn remove(&self, tx: &mut Tx, org_id: Uuid) -> Result<Option<serde_json::Value>, Error> {
        let removed = store::delete_program(tx, org_id, self.id).await?;
        Ok(Some(serde_json::json!({
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
        })))
    }
}

#[tonic::async_trait]
impl ProgramService for Programs {
    #[tracing::instrument(skip_all)]
    async fn create_program(
        &self,
        req: Request<pb::CreateProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (new, request_id) = parse_create(req.get_ref())?;
        if call.caller.claims.project_id.is_some() {
            return Err(Error::permission_denied(
                "PROJECT_BOUND_CREDENTIAL",
                "a credential bound to one program cannot create programs",
            )
            .into());
        }
        let creation = Creation {
            method: "CreateProgram",
            request: req.get_ref(),
            request_id,
            new,
        };
        let out = resource::create(&self.0.db, &call, creation, program_to_proto).await?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_program(
        &self,
        req: Request<pb::GetProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        get_one(&self.0, &req, &req.get_ref().id, program_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_programs(
        &self,
        req: Request<pb::ListProgramsRequest>,
    ) -> Result<Response<pb::ListProgramsResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let phase: Option<Phase> = v.opt_enum_value("phase", req.phase);
        v.finish()?;
        let paging = Paging {
            size: req.page_size,
            token: &req.page_token,
            filters: format!("phase={};archived={:?}", req.phase, req.archived),
        };
        let filter = ProgramFilter {
            phase,
            archived: req.archived,
            only: call.caller.claims.project_id,
        };
        let (programs, next_page_token) =
            list_page(&self.0, &call, paging, Order::newest(), |tx, call, page| {
                Box::pin(store::list_programs(
                    tx,
                    call.org_id,
                    filter,
                    page.after,
                    page.limit(),
                ))
            })
            .await?;
        Ok(Response::new(pb::ListProgramsResponse {
            programs: programs.iter().map(program_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_program(
        &self,
        req: Request<pb::UpdateProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        update_one(&self.0, &req, parse_update, program_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_program(
        &self,
        req: Request<pb::DeleteProgramRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        delete_one::<Program, _, _>(&self.0, &req, &r.id, &r.etag).await
    }

    #[tracing::instrument(skip_all)]
    async fn advance_program_phase(
        &self,
        req: Request<pb::AdvanceProgramPhaseRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, to, reason) = parse_advance(req.get_ref())?;
        let req = req.into_inner();
        if req.force && !call.caller.can(FORCE_PERMISSION) {
            return Err(Error::permission_denied(
                "FORCE_NOT_PERMITTED",
                format!("forcing a phase change needs {FORCE_PERMISSION}"),
            )
            .into());
        }
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let before = resource::fetch::<Program>(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
        check_etag(&req.etag, before.stamp.version, Program::NAME)?;
        before.check_not_archived().map_err(Error::from)?;
        let step = domain::advance_phase(before.phase, to, req.force).map_err(Error::from)?;
        if step == PhaseMove::Unchanged {
            tx.commit().await.map_err(Error::from)?;
            return Ok(Response::new(program_to_proto(&before)));
        }
        let p = store::set_program_phase(&mut tx, call.org_id, id, to).await?;
        let mut event = call
            .actor
            .event("delivery.program.advance_phase", Program::KIND, id)
            .project(Some(id.uuid()))
            .diff(&before, &p);
        if matches!(step, PhaseMove::Skip | PhaseMove::Back) {
            event = event.set("forced", true).set("move", step.as_str());
        }
        if !reason.is_empty() {
            event = event.set("reason", &reason);
        }
        event.record(&mut tx).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(program_to_proto(&p)))
    }

    #[tracing::instrument(skip_all)]
    async fn archive_program(
        &self,
        req: Request<pb::ArchiveProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, etag) = (&req.get_ref().id, &req.get_ref().etag);
        let p = set_archived(&self.0, &call, id, etag, true).await?;
        Ok(Response::new(program_to_proto(&p)))
    }

    #[tracing::instrument(skip_all)]
    async fn unarchive_program(
        &self,
        req: Request<pb::UnarchiveProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, etag) = (&req.get_ref().id, &req.get_ref().etag);
        let p = set_archived(&self.0, &call, id, etag, false).await?;
        Ok(Response::new(program_to_proto(&p)))
    }
}

/// ArchiveProgram (`archive`) and UnarchiveProgram: the program named `id`
/// at `etag`, archived or not, with its audit event.
async fn set_archived(
    state: &State,
    call: &Call,
    id: &str,
    etag: &str,
    archive: bool,
) -> Result<Program, Error> {
    let id: ProgramId = Violations::require_id_of("id", id)?;
    let mut tx = state.db.tenant(call.org_id).await?;
    let before = resource::fetch::<Program>(&mut tx, call, id, Lock::NoKeyUpdate).await?;
    check_etag(etag, before.stamp.version, Program::NAME)?;
    let (allowed, action) = if archive {
        (before.check_archivable(), "delivery.program.archive")
    } else {
        (before.check_unarchivable(), "delivery.program.unarchive")
    };
    allowed.map_err(Error::from)?;
    let p = store::set_program_archived(&mut tx, call.org_id, id, archive).await?;
    call.actor
        .event(action, Program::KIND, id)
        .project(Some(id.uuid()))
        .diff(&before, &p)
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(p)
}
