//! `SprintService`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use foundry_domain::Record;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::{from_timestamp, timestamp};
use foundry_platform::db::{Tx, check_etag};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1::{self as pb, sprint_service_server::SprintService};
use foundry_resource::{self as resource, Create, Delete, Resource, Update, WireStamp};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    Order, Paging, SERVICE, create_one, delete_one, enum_filter, get_one, hold, list_children,
    parse_changes, short_description, update_one,
};
use crate::domain::{
    self, CapacityUnit, NewSprint, Sprint, SprintChange, SprintId, SprintPath, SprintStatus,
};
use crate::domain::{Program, ProgramId};
use crate::store::{self, Lock};

/// Handlers of `SprintService`.
#[derive(Clone, Debug)]
pub struct Sprints(pub Arc<State>);

const MAX_CAPACITY: f64 = 100_000.0;

pub fn sprint_to_proto(s: &Sprint) -> pb::Sprint {
    let w = WireStamp::from(&s.stamp);
    pb::Sprint {
        id: s.id.to_string(),
        program_id: s.fields.program_id.to_string(),
        name: s.fields.name.clone(),
        goal: s.fields.goal.clone(),
        start_time: Some(timestamp(s.fields.start_time)),
        end_time: Some(timestamp(s.fields.end_time)),
        capacity: s.fields.capacity,
        capacity_unit: pb::SprintCapacityUnit::from(s.fields.capacity_unit) as i32,
        status: pb::SprintStatus::from(s.status) as i32,
        created_by: w.created_by,
        create_time: w.create_time,
        update_time: w.update_time,
        etag: w.etag,
    }
}

fn time(
    v: &mut Violations,
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Option<DateTime<Utc>> {
    match t.map(from_timestamp) {
        None => {
            v.add(field, "is required");
            None
        }
        Some(None) => {
            v.add(field, "must be a valid time");
            None
        }
        Some(Some(d)) => Some(d),
    }
}

fn capacity(v: &mut Violations, c: f64) -> Option<f64> {
    if c.is_finite() && (0.0..=MAX_CAPACITY).contains(&c) {
        Some(c)
    } else {
        v.add("sprint.capacity", format!("must be 0..{MAX_CAPACITY}"));
        None
    }
}

fn unit(v: &mut Violations, u: i32) -> Option<CapacityUnit> {
    match u {
        0 => Some(CapacityUnit::Hours),
        u => v.enum_value("sprint.capacity_unit", u),
    }
}

fn name(v: &mut Violations, value: &str) -> Option<String> {
    v.text("sprint.name", value, 1, 200)
}

/// A `CreateSprintRequest` as a [`NewSprint`] and its request id.
fn parse_create(req: &pb::CreateSprintRequest) -> Result<(NewSprint, Option<Uuid>), Error> {
    let empty = pb::Sprint::default();
    let s = req.sprint.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("sprint.program_id", &s.program_id);
    let name = name(&mut v, &s.name);
    let goal = short_description(&mut v, "sprint.goal", &s.goal);
    let start_time = time(&mut v, "sprint.start_time", s.start_time.as_ref());
    let end_time = time(&mut v, "sprint.end_time", s.end_time.as_ref());
    if let (Some(a), Some(b)) = (start_time, end_time)
        && let Err(e) = domain::check_sprint_dates(a, b)
    {
        v.add(e.field.unwrap_or_default(), e.message);
    }
    let capacity = capacity(&mut v, s.capacity);
    let capacity_unit = unit(&mut v, s.capacity_unit);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewSprint {
                program_id: program_id?,
                name: name?,
                goal: goal?,
                start_time: start_time?,
                end_time: end_time?,
                capacity: capacity?,
                capacity_unit: capacity_unit?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateSprintRequest` as the sprint's id, etag and the changes its
/// mask names.
fn parse_update(
    req: &pb::UpdateSprintRequest,
) -> Result<(SprintId, String, Vec<SprintChange>), Error> {
    let empty = pb::Sprint::default();
    let s = req.sprint.as_ref().unwrap_or(&empty);
    parse_changes(
        "sprint",
        (&s.id, &s.etag),
        req.update_mask.as_ref(),
        |v, path| match path {
            SprintPath::Name => name(v, &s.name).map(SprintChange::Name),
            SprintPath::Goal => {
                short_description(v, "sprint.goal", &s.goal).map(SprintChange::Goal)
            }
            SprintPath::StartTime => {
                time(v, "sprint.start_time", s.start_time.as_ref()).map(SprintChange::StartTime)
            }
            SprintPath::EndTime => {
                time(v, "sprint.end_time", s.end_time.as_ref()).map(SprintChange::EndTime)
            }
            SprintPath::Capacity => capacity(v, s.capacity).map(SprintChange::Capacity),
            SprintPath::CapacityUnit => unit(v, s.capacity_unit).map(SprintChange::CapacityUnit),
        },
    )
}

#[async_trait]
impl Create for Sprint {
    /// The program is visible and held (`FOR KEY SHARE`) until commit.
    async fn check_new(new: &NewSprint, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        hold::<Program>(tx, call, new.program_id).await
    }
}

impl Update for Sprint {}

#[async_trait]
impl Delete for Sprint {
    /// Its tasks are unplanned, its gates (and their evaluations) go with
    /// it. [`resource::delete`] locks it `FOR UPDATE`: creates of gates and
    /// plans of tasks hold `FOR KEY SHARE` on the sprint, so none is in
    /// flight while it goes.
    async fn remove(&self, tx: &mut Tx, org_id: Uuid) -> Result<Option<serde_json::Value>, Error> {
        let removed = store::delete_sprint(tx, org_id, self.fields.program_id, self.id).await?;
        Ok(Some(serde_json::json!({
            "sprint_gates": removed.gates,
            "sprint_gate_evaluations": removed.evaluations,
            "tasks_unplanned": removed.tasks_unplanned,
        })))
    }
}

#[tonic::async_trait]
impl SprintService for Sprints {
    #[tracing::instrument(skip_all)]
    async fn create_sprint(
        &self,
        req: Request<pb::CreateSprintRequest>,
    ) -> Result<Response<pb::Sprint>, Status> {
        create_one(&self.0, &req, "CreateSprint", parse_create, sprint_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn get_sprint(
        &self,
        req: Request<pb::GetSprintRequest>,
    ) -> Result<Response<pb::Sprint>, Status> {
        get_one(&self.0, &req, &req.get_ref().id, sprint_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_sprints(
        &self,
        req: Request<pb::ListSprintsRequest>,
    ) -> Result<Response<pb::ListSprintsResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.id_of("program_id", &req.program_id);
        let filters = [enum_filter::<SprintStatus>(&mut v, "status", req.status)];
        let program_id: ProgramId = v.finish_with(|| program_id)?;
        let paging = Paging::under("program", program_id, req.page_size, &req.page_token);
        let parent = ("program_id", program_id);
        let (rows, next_page_token) = list_children::<Sprint, Program>(
            &self.0,
            &call,
            paging,
            Order::newest(),
            parent,
            &filters,
        )
        .await?;
        Ok(Response::new(pb::ListSprintsResponse {
            sprints: rows.iter().map(sprint_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_sprint(
        &self,
        req: Request<pb::UpdateSprintRequest>,
    ) -> Result<Response<pb::Sprint>, Status> {
        update_one(&self.0, &req, parse_update, sprint_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_sprint(
        &self,
        req: Request<pb::DeleteSprintRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        delete_one::<Sprint, _, _>(&self.0, &req, &r.id, &r.etag).await
    }

    #[tracing::instrument(skip_all)]
    async fn start_sprint(
        &self,
        req: Request<pb::StartSprintRequest>,
    ) -> Result<Response<pb::Sprint>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, etag) = (&req.get_ref().id, &req.get_ref().etag);
        let sprint = move_sprint(&self.0, &call, id, etag, SprintStatus::Active).await?;
        Ok(Response::new(sprint_to_proto(&sprint)))
    }

    #[tracing::instrument(skip_all)]
    async fn complete_sprint(
        &self,
        req: Request<pb::CompleteSprintRequest>,
    ) -> Result<Response<pb::Sprint>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, etag) = (&req.get_ref().id, &req.get_ref().etag);
        let sprint = move_sprint(&self.0, &call, id, etag, SprintStatus::Completed).await?;
        Ok(Response::new(sprint_to_proto(&sprint)))
    }
}

/// StartSprint (to ACTIVE) and CompleteSprint (to COMPLETED): the sprint
/// named `id` at `etag`, moved, with its audit event.
async fn move_sprint(
    state: &State,
    call: &Call,
    id: &str,
    etag: &str,
    to: SprintStatus,
) -> Result<Sprint, Error> {
    let id: SprintId = Violations::require_id_of("id", id)?;
    let mut tx = state.db.tenant(call.org_id).await?;
    let before: Sprint = resource::fetch(&mut tx, call, id, Lock::NoKeyUpdate).await?;
    check_etag(etag, before.stamp.version, Sprint::NAME)?;
    let action = match to {
        SprintStatus::Active => {
            domain::start_sprint(before.status)?;
            // A start racing past this check meets sprints_one_active_key.
            if let Some(active) =
                store::active_sprint(&mut tx, call.org_id, before.fields.program_id).await?
            {
                return Err(store::already_active(Some(active)));
            }
            "delivery.sprint.start"
        }
        SprintStatus::Completed => {
            domain::complete_sprint(before.status)?;
            "delivery.sprint.complete"
        }
        SprintStatus::Planned => {
            return Err(Error::internal(anyhow::anyhow!(
                "no method moves a sprint back to planned"
            )));
        }
    };
    let sprint = store::set_sprint_status(&mut tx, call.org_id, id, to).await?;
    call.actor
        .event(action, Sprint::KIND, id)
        .project(sprint.project())
        .diff(&before, &sprint)
        .record(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(sprint)
}
