//! `ProgramService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::opt_timestamp;
use foundry_platform::db::{Tx, check_etag};
use foundry_platform::rpc::{Methods, Served};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{self as resource, Create, Delete, Resource, Update, stamped};
use uuid::Uuid;

use crate::State;
use crate::api::{
    In, Order, Paging, PathOf, Reply, Wire, create, delete, get, list_page, page,
    short_description, update,
};
use crate::domain::{
    self, NewProgram, Phase, PhaseMove, Program, ProgramChange, ProgramId, ProgramPath,
};
use crate::store::{self, Lock, ProgramFilter};

/// The permission that lets AdvanceProgramPhase skip phases or go back.
pub const FORCE_PERMISSION: &str = "delivery.programs.admin";

impl Wire for Program {
    type Message = pb::Program;

    fn to_proto(&self) -> pb::Program {
        let f = &self.fields;
        pb::Program {
            name: f.name.clone(),
            slug: f.slug.clone(),
            description: f.description.clone(),
            source_platform: f.source_platform.clone(),
            target_platform: f.target_platform.clone(),
            phase: pb::DeliveryPhase::from(self.phase) as i32,
            archived: self.archive_time.is_some(),
            archive_time: opt_timestamp(self.archive_time),
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, p: &pb::Program) -> Option<NewProgram> {
        let name = name(v, &p.name);
        let slug = v.slug("program.slug", &p.slug);
        let description = short_description(v, "program.description", &p.description);
        let source_platform = platform(v, "program.source_platform", &p.source_platform);
        let target_platform = platform(v, "program.target_platform", &p.target_platform);
        Some(NewProgram {
            name: name?,
            slug: slug?,
            description: description?,
            source_platform: source_platform?,
            target_platform: target_platform?,
        })
    }

    fn change(v: &mut Violations, path: PathOf<Self>, p: &Self::Message) -> Option<Self::Change> {
        match path {
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
        }
    }
}

fn name(v: &mut Violations, value: &str) -> Option<String> {
    v.text("program.name", value, 1, 200)
}

fn platform(v: &mut Violations, field: &str, value: &str) -> Option<String> {
    v.text(field, value, 0, 100)
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

/// `ProgramService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::ProgramService> {
    Methods::new(state.clone())
        .call(get::<Program, _, pb::GetProgramRequest>)
        .call(update::<Program, _, pb::UpdateProgramRequest>)
        .call(delete::<Program, _, pb::DeleteProgramRequest>)
        // Refused to a credential bound to one program by the tenancy
        // layer: its proto declares it organization-wide.
        .call(create::<Program, pb::CreateProgramRequest>)
        .call(list_programs)
        .call(advance_program_phase)
        .call(archive_program)
        .call(unarchive_program)
        .complete()
}

async fn list_programs(c: In<pb::ListProgramsRequest>) -> Reply<pb::ListProgramsResponse> {
    let req = &c.req;
    let mut v = Violations::new();
    let phase: Option<Phase> = v.opt_enum_value("phase", req.phase);
    v.finish()?;
    let only = c.call.caller.confine("program_id", None)?;
    let paging = Paging {
        size: req.page_size,
        token: &req.page_token,
        filters: format!("phase={};archived={:?}", req.phase, req.archived),
    };
    let filter = ProgramFilter {
        phase,
        archived: req.archived,
        only,
    };
    let (programs, next_page_token) = list_page(&c, paging, Order::newest(), |tx, call, page| {
        Box::pin(store::list_programs(
            tx,
            call.org_id,
            filter,
            page.after,
            page.limit(),
        ))
    })
    .await?;
    page(&programs, next_page_token)
}

async fn advance_program_phase(c: In<pb::AdvanceProgramPhaseRequest>) -> Reply<pb::Program> {
    let In { state, call, req } = c;
    let (id, to, reason) = parse_advance(&req)?;
    if req.force && !call.caller.can(FORCE_PERMISSION) {
        return Err(Error::permission_denied(
            "FORCE_NOT_PERMITTED",
            format!("forcing a phase change needs {FORCE_PERMISSION}"),
        ));
    }
    let mut tx = state.db.tenant(call.org_id).await?;
    let before = resource::fetch::<Program>(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
    check_etag(&req.etag, before.stamp.version, Program::NAME)?;
    before.check_not_archived().map_err(Error::from)?;
    let step = domain::advance_phase(before.phase, to, req.force).map_err(Error::from)?;
    if step == PhaseMove::Unchanged {
        tx.commit().await.map_err(Error::from)?;
        return Ok(before.to_proto());
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
    event.commit(tx).await?;
    Ok(p.to_proto())
}

async fn archive_program(c: In<pb::ArchiveProgramRequest>) -> Reply<pb::Program> {
    let r = &c.req;
    set_archived(&c, (&r.id, &r.etag), true).await
}

async fn unarchive_program(c: In<pb::UnarchiveProgramRequest>) -> Reply<pb::Program> {
    let r = &c.req;
    set_archived(&c, (&r.id, &r.etag), false).await
}

/// ArchiveProgram (`archive`) and UnarchiveProgram: the program named `id`
/// at `etag`, archived or not, with its audit event.
async fn set_archived<Q>(c: &In<Q>, (id, etag): (&str, &str), archive: bool) -> Reply<pb::Program> {
    let (state, call) = (&c.state, &c.call);
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
        .commit(tx)
        .await?;
    Ok(p.to_proto())
}
