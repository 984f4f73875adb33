//! `PlannerPhaseService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::opt_timestamp;
use foundry_platform::db::Tx;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1::{
    self as pb, planner_phase_service_server::PlannerPhaseService,
};
use foundry_resource::{Create, Delete, Update, WireStamp};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    Order, create_one, delete_one, get_one, hold, list_under, parse_changes, position,
    short_description, update_one,
};
use crate::domain::Program;
use crate::domain::{
    NewPlannerPhase, PlannerPhase, PlannerPhaseChange, PlannerPhaseId, PlannerPhasePath,
    check_phase_dates,
};

/// Handlers of `PlannerPhaseService`.
#[derive(Clone, Debug)]
pub struct PlannerPhases(pub Arc<State>);

pub fn planner_phase_to_proto(p: &PlannerPhase) -> pb::PlannerPhase {
    let w = WireStamp::from(&p.stamp);
    pb::PlannerPhase {
        id: p.id.to_string(),
        program_id: p.fields.program_id.to_string(),
        name: p.fields.name.clone(),
        description: p.fields.description.clone(),
        position: p.fields.position,
        start_time: opt_timestamp(p.fields.start_time),
        end_time: opt_timestamp(p.fields.end_time),
        created_by: w.created_by,
        create_time: w.create_time,
        update_time: w.update_time,
        etag: w.etag,
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
    let description = short_description(&mut v, "planner_phase.description", &p.description);
    let position = position(&mut v, "planner_phase.position", p.position, true);
    let start_time = v.opt_time("planner_phase.start_time", p.start_time.as_ref());
    let end_time = v.opt_time("planner_phase.end_time", p.end_time.as_ref());
    if let (Some(start), Some(end)) = (start_time, end_time)
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
                start_time: start_time?,
                end_time: end_time?,
            },
            request_id?,
        ))
    })
}

/// An `UpdatePlannerPhaseRequest` as the phase's id, etag and the changes
/// its mask names.
fn parse_update(
    req: &pb::UpdatePlannerPhaseRequest,
) -> Result<(PlannerPhaseId, String, Vec<PlannerPhaseChange>), Error> {
    let empty = pb::PlannerPhase::default();
    let p = req.planner_phase.as_ref().unwrap_or(&empty);
    parse_changes(
        "planner_phase",
        (&p.id, &p.etag),
        req.update_mask.as_ref(),
        |v, path| match path {
            PlannerPhasePath::Name => name(v, &p.name).map(PlannerPhaseChange::Name),
            PlannerPhasePath::Description => {
                short_description(v, "planner_phase.description", &p.description)
                    .map(PlannerPhaseChange::Description)
            }
            // No appending here: a position is 1.. (never `Some(None)`).
            PlannerPhasePath::Position => position(v, "planner_phase.position", p.position, false)
                .flatten()
                .map(PlannerPhaseChange::Position),
            // Unset clears the date.
            PlannerPhasePath::StartTime => v
                .opt_time("planner_phase.start_time", p.start_time.as_ref())
                .map(PlannerPhaseChange::StartTime),
            PlannerPhasePath::EndTime => v
                .opt_time("planner_phase.end_time", p.end_time.as_ref())
                .map(PlannerPhaseChange::EndTime),
        },
    )
}

fn name(v: &mut Violations, name: &str) -> Option<String> {
    v.text("planner_phase.name", name, 1, 200)
}

#[async_trait]
impl Create for PlannerPhase {
    /// The program is visible and held (`FOR KEY SHARE`) until commit.
    async fn check_new(new: &NewPlannerPhase, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        hold::<Program>(tx, call, new.program_id).await
    }
}

impl Update for PlannerPhase {}

impl Delete for PlannerPhase {}

#[tonic::async_trait]
impl PlannerPhaseService for PlannerPhases {
    #[tracing::instrument(skip_all)]
    async fn create_planner_phase(
        &self,
        req: Request<pb::CreatePlannerPhaseRequest>,
    ) -> Result<Response<pb::PlannerPhase>, Status> {
        create_one(
            &self.0,
            &req,
            "CreatePlannerPhase",
            parse_create,
            planner_phase_to_proto,
        )
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_planner_phase(
        &self,
        req: Request<pb::GetPlannerPhaseRequest>,
    ) -> Result<Response<pb::PlannerPhase>, Status> {
        get_one(&self.0, &req, &req.get_ref().id, planner_phase_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_planner_phases(
        &self,
        req: Request<pb::ListPlannerPhasesRequest>,
    ) -> Result<Response<pb::ListPlannerPhasesResponse>, Status> {
        let by_position =
            Order::ByKey(|p: &PlannerPhase| (i64::from(p.fields.position), p.id.uuid()));
        let r = req.get_ref();
        let (rows, next_page_token) = list_under::<PlannerPhase, Program, _, _>(
            &self.0,
            &req,
            ("program_id", &r.program_id),
            (r.page_size, &r.page_token),
            by_position,
        )
        .await?;
        Ok(Response::new(pb::ListPlannerPhasesResponse {
            planner_phases: rows.iter().map(planner_phase_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_planner_phase(
        &self,
        req: Request<pb::UpdatePlannerPhaseRequest>,
    ) -> Result<Response<pb::PlannerPhase>, Status> {
        update_one(&self.0, &req, parse_update, planner_phase_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_planner_phase(
        &self,
        req: Request<pb::DeletePlannerPhaseRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        delete_one::<PlannerPhase, _, _>(&self.0, &req, &r.id, &r.etag).await
    }
}
