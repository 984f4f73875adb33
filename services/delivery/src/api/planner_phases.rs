//! `PlannerPhaseService`.

use std::sync::Arc;

use foundry_domain::Id;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::{opt_timestamp, timestamp};
use foundry_platform::db::{Tx, check_etag, etag};
use foundry_platform::idempotency::{self, Begun};
use foundry_platform::validate::{Violations, mask};
use foundry_proto::foundry::delivery::v1::{
    self as pb, planner_phase_service_server::PlannerPhaseService,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    SERVICE, SHORT_DESCRIPTION, found, long_text, other_program, planner_phase_not_found, position,
    program,
};
use crate::domain::{
    NewPlannerPhase, PlannerPhase, PlannerPhaseChange, PlannerPhaseId, PlannerPhasePath, ProgramId,
    check_phase_dates,
};
use crate::store::{self, Lock};

/// Handlers of `PlannerPhaseService`.
#[derive(Clone, Debug)]
pub struct PlannerPhases(pub Arc<State>);

const RESOURCE: &str = "delivery.planner_phase";

pub fn planner_phase_to_proto(p: &PlannerPhase) -> pb::PlannerPhase {
    pb::PlannerPhase {
        id: p.id.to_string(),
        program_id: p.program_id.to_string(),
        name: p.name.clone(),
        description: p.description.clone(),
        position: p.position,
        start_time: opt_timestamp(p.start_at),
        end_time: opt_timestamp(p.end_at),
        created_by: p.created_by.to_string(),
        create_time: Some(timestamp(p.created_at)),
        update_time: Some(timestamp(p.updated_at)),
        etag: etag(p.version),
    }
}

/// A `CreatePlannerPhaseRequest` as a [`NewPlannerPhase`] and its request
/// id.
fn parse_create(
    req: &pb::CreatePlannerPhaseRequest,
) -> Result<(NewPlannerPhase, Option<Uuid>), Error> {
    let empty = pb::PlannerPhase::default();
    let p = req.planner_phase.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("planner_phase.program_id", &p.program_id);
    let name = name(&mut v, &p.name);
    let description = description(&mut v, &p.description);
    let position = position(&mut v, "planner_phase.position", p.position, true);
    let start_at = v.opt_time("planner_phase.start_time", p.start_time.as_ref());
    let end_at = v.opt_time("planner_phase.end_time", p.end_time.as_ref());
    if let (Some(start), Some(end)) = (start_at, end_at)
        && let Err(e) = check_phase_dates(start, end)
    {
        v.add(e.field.unwrap_or_default(), e.message);
    }
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewPlannerPhase {
                program_id: program_id?,
                name: name?,
                description: description?,
                position: position?,
                start_at: start_at?,
                end_at: end_at?,
            },
            request_id?,
        ))
    })
}

/// An `UpdatePlannerPhaseRequest` as the phase's id and the changes its
/// mask names.
fn parse_update(
    req: &pb::UpdatePlannerPhaseRequest,
) -> Result<(PlannerPhaseId, Vec<PlannerPhaseChange>), Error> {
    let empty = pb::PlannerPhase::default();
    let p = req.planner_phase.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let id = v.id_of("planner_phase.id", &p.id);
    let mut changes = Vec::new();
    for path in mask::<PlannerPhasePath>(&mut v, req.update_mask.as_ref()) {
        changes.push(match path {
            PlannerPhasePath::Name => name(&mut v, &p.name).map(PlannerPhaseChange::Name),
            PlannerPhasePath::Description => {
                description(&mut v, &p.description).map(PlannerPhaseChange::Description)
            }
            // No appending here: a position is 1.. (never `Some(None)`).
            PlannerPhasePath::Position => {
                position(&mut v, "planner_phase.position", p.position, false)
                    .flatten()
                    .map(PlannerPhaseChange::Position)
            }
            // Unset clears the date.
            PlannerPhasePath::StartTime => v
                .opt_time("planner_phase.start_time", p.start_time.as_ref())
                .map(PlannerPhaseChange::StartTime),
            PlannerPhasePath::EndTime => v
                .opt_time("planner_phase.end_time", p.end_time.as_ref())
                .map(PlannerPhaseChange::EndTime),
        });
    }
    v.finish_with(|| Some((id?, changes.into_iter().collect::<Option<Vec<_>>>()?)))
}

fn name(v: &mut Violations, name: &str) -> Option<String> {
    v.text("planner_phase.name", name, 1, 200)
}

fn description(v: &mut Violations, description: &str) -> Option<String> {
    long_text(
        v,
        "planner_phase.description",
        description,
        0,
        SHORT_DESCRIPTION,
    )
}

/// A planner phase the caller may see, with `lock`.
async fn visible_phase(
    tx: &mut Tx,
    call: &Call,
    id: PlannerPhaseId,
    lock: Lock,
) -> Result<PlannerPhase, Error> {
    found(
        store::get_planner_phase(tx, call.org_id, id, lock).await?,
        &call.caller,
        |p| p.program_id.uuid(),
        planner_phase_not_found,
    )
}

/// A planner phase something of `program_id` is planned in: visible, in
/// that program, held with `KEY SHARE` (it cannot vanish before commit).
pub(crate) async fn phase_in(
    tx: &mut Tx,
    call: &Call,
    program_id: ProgramId,
    id: PlannerPhaseId,
) -> Result<PlannerPhase, Error> {
    let p = visible_phase(tx, call, id, Lock::KeyShare).await?;
    if p.program_id != program_id {
        return Err(other_program("planner phase"));
    }
    Ok(p)
}

#[tonic::async_trait]
impl PlannerPhaseService for PlannerPhases {
    #[tracing::instrument(skip_all)]
    async fn create_planner_phase(
        &self,
        req: Request<pb::CreatePlannerPhaseRequest>,
    ) -> Result<Response<pb::PlannerPhase>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (new, request_id) = parse_create(req.get_ref())?;
        let key =
            idempotency::Key::of(call.org_id, "CreatePlannerPhase", request_id, req.get_ref());
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
        let p =
            store::insert_planner_phase(&mut tx, call.org_id, &new, call.principal_id()).await?;
        call.actor
            .event("delivery.planner_phase.create", RESOURCE, p.id)
            .project(Some(p.program_id.uuid()))
            .created(&p)
            .record(&mut tx)
            .await?;
        let out = planner_phase_to_proto(&p);
        tx.finish(&out).await?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_planner_phase(
        &self,
        req: Request<pb::GetPlannerPhaseRequest>,
    ) -> Result<Response<pb::PlannerPhase>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let p = visible_phase(&mut tx, &call, id, Lock::None).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(planner_phase_to_proto(&p)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_planner_phases(
        &self,
        req: Request<pb::ListPlannerPhasesRequest>,
    ) -> Result<Response<pb::ListPlannerPhasesResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let program_id = Violations::require_id("program_id", &req.program_id)?;
        let page = self.0.pages.parse_keyed(
            req.page_size,
            &req.page_token,
            &format!("program={program_id}"),
        )?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        program(&mut tx, &call.caller, call.org_id, program_id, Lock::None).await?;
        let mut phases = store::list_planner_phases(
            &mut tx,
            call.org_id,
            program_id,
            page.after_key.zip(page.after),
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self
            .0
            .pages
            .finish_keyed(&page, &mut phases, |p| (i64::from(p.position), p.id.uuid()));
        Ok(Response::new(pb::ListPlannerPhasesResponse {
            planner_phases: phases.iter().map(planner_phase_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_planner_phase(
        &self,
        req: Request<pb::UpdatePlannerPhaseRequest>,
    ) -> Result<Response<pb::PlannerPhase>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, changes) = parse_update(req.get_ref())?;
        let etag = req
            .get_ref()
            .planner_phase
            .as_ref()
            .map_or("", |p| p.etag.as_str());
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let before = visible_phase(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
        check_etag(etag, before.version, "planner phase")?;
        let mut p = before.clone();
        p.apply(changes).map_err(Error::from)?;
        let p = store::update_planner_phase(&mut tx, call.org_id, &p).await?;
        call.actor
            .event("delivery.planner_phase.update", RESOURCE, id)
            .project(Some(p.program_id.uuid()))
            .diff(&before, &p)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(planner_phase_to_proto(&p)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_planner_phase(
        &self,
        req: Request<pb::DeletePlannerPhaseRequest>,
    ) -> Result<Response<()>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let p = visible_phase(&mut tx, &call, id, Lock::Update).await?;
        check_etag(&req.get_ref().etag, p.version, "planner phase")?;
        store::delete_planner_phase(&mut tx, call.org_id, id).await?;
        call.actor
            .event("delivery.planner_phase.delete", RESOURCE, id)
            .project(Some(p.program_id.uuid()))
            .removed(&p)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}
