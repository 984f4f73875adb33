//! `SprintService`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use foundry_platform::Error;
use foundry_platform::convert::{from_timestamp, timestamp};
use foundry_platform::db::Tx;
use foundry_platform::rpc::Served;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{Create, Delete, Update, stamped};
use uuid::Uuid;

use crate::State;
use crate::api::standard;
use crate::api::tasks::{lock_at, moved};
use crate::api::{In, PathOf, Reply, Wire, enum_filter, list_in_program, short_description};
use crate::domain::{
    self, CapacityUnit, NewSprint, Sprint, SprintChange, SprintId, SprintPath, SprintStatus,
};
use crate::store;

impl Wire for Sprint {
    type Message = pb::Sprint;

    fn to_proto(&self) -> pb::Sprint {
        let f = &self.fields;
        pb::Sprint {
            program_id: f.program_id.to_string(),
            name: f.name.clone(),
            goal: f.goal.clone(),
            start_time: Some(timestamp(f.start_time)),
            end_time: Some(timestamp(f.end_time)),
            capacity: f.capacity,
            capacity_unit: pb::SprintCapacityUnit::from(f.capacity_unit) as i32,
            status: pb::SprintStatus::from(self.status) as i32,
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, s: &pb::Sprint) -> Option<NewSprint> {
        let program_id = v.id_of("sprint.program_id", &s.program_id);
        let name = name(v, &s.name);
        let goal = short_description(v, "sprint.goal", &s.goal);
        let start_time = time(v, "sprint.start_time", s.start_time.as_ref());
        let end_time = time(v, "sprint.end_time", s.end_time.as_ref());
        if let (Some(a), Some(b)) = (start_time, end_time)
            && let Err(e) = domain::check_sprint_dates(a, b)
        {
            v.add(e.field.unwrap_or_default(), e.message);
        }
        let capacity = capacity(v, s.capacity);
        let capacity_unit = unit(v, s.capacity_unit);
        Some(NewSprint {
            program_id: program_id?,
            name: name?,
            goal: goal?,
            start_time: start_time?,
            end_time: end_time?,
            capacity: capacity?,
            capacity_unit: capacity_unit?,
        })
    }

    fn change(v: &mut Violations, path: PathOf<Self>, s: &Self::Message) -> Option<Self::Change> {
        match path {
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
        }
    }
}

const MAX_CAPACITY: f64 = 100_000.0;

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

/// Its program is all there is to check (`Resource::WITHIN`): its insert
/// does.
impl Create for Sprint {
    fn checks(_: &NewSprint) -> bool {
        false
    }
}

impl Update for Sprint {}

#[async_trait]
impl Delete for Sprint {
    /// Its tasks are unplanned, its gates (and their evaluations) go with
    /// it. [`foundry_resource::delete`] locks it `FOR UPDATE`: creates of
    /// gates and plans of tasks hold `FOR KEY SHARE` on the sprint, so none
    /// is in flight while it goes.
    async fn remove(&self, tx: &mut Tx, org_id: Uuid) -> Result<Option<serde_json::Value>, Error> {
        let removed = store::delete_sprint(tx, org_id, self.fields.program_id, self.id).await?;
        Ok(Some(serde_json::json!({
            "sprint_gates": removed.gates,
            "sprint_gate_evaluations": removed.evaluations,
            "tasks_unplanned": removed.tasks_unplanned,
        })))
    }
}

/// `SprintService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::SprintService> {
    standard::<Sprint, _>(state)
        .call(list_sprints)
        .call(start_sprint)
        .call(complete_sprint)
        .complete()
}

async fn list_sprints(c: In<pb::ListSprintsRequest>) -> Reply<pb::ListSprintsResponse> {
    let r = &c.req;
    list_in_program::<Sprint, _, _>(&c, &r.program_id, |v| {
        vec![enum_filter::<SprintStatus>(v, "status", r.status)]
    })
    .await
}

async fn start_sprint(c: In<pb::StartSprintRequest>) -> Reply<pb::Sprint> {
    let r = &c.req;
    move_sprint(&c, (&r.id, &r.etag), SprintStatus::Active).await
}

async fn complete_sprint(c: In<pb::CompleteSprintRequest>) -> Reply<pb::Sprint> {
    let r = &c.req;
    move_sprint(&c, (&r.id, &r.etag), SprintStatus::Completed).await
}

/// StartSprint (to ACTIVE) and CompleteSprint (to COMPLETED): the sprint
/// named `id` at `etag`, moved, with its audit event.
async fn move_sprint<Q>(
    c: &In<Q>,
    (id, etag): (&str, &str),
    to: SprintStatus,
) -> Reply<pb::Sprint> {
    let (state, call) = (&c.state, &c.call);
    let id: SprintId = Violations::require_id_of("id", id)?;
    let mut tx = state.db.tenant(call.org_id).await?;
    let before: Sprint = lock_at(&mut tx, call, id, etag).await?;
    let verb = match to {
        SprintStatus::Active => {
            domain::start_sprint(before.status).map_err(Error::from)?;
            // A start racing past this check meets sprints_one_active_key.
            if let Some(active) =
                store::active_sprint(&mut tx, call.org_id, before.fields.program_id).await?
            {
                return Err(store::already_active(Some(active)));
            }
            "start"
        }
        SprintStatus::Completed => {
            domain::complete_sprint(before.status).map_err(Error::from)?;
            "complete"
        }
        SprintStatus::Planned => {
            return Err(Error::internal(anyhow::anyhow!(
                "no method moves a sprint back to planned"
            )));
        }
    };
    let sprint = store::set_status(&mut tx, call.org_id, id, to).await?;
    moved(tx, call, verb, (before, Some(sprint)), |e| e).await
}
