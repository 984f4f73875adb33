//! `SprintService`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use foundry_platform::Error;
use foundry_platform::convert::{from_timestamp, timestamp};
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{self as pb, sprint_service_server::SprintService};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{SHORT_DESCRIPTION, actor, found, long_text, program, sprint_not_found};
use crate::domain::{self, CapacityUnit, SprintStatus};
use crate::store::{self, Lock, SprintRow};

/// Handlers of `SprintService`.
#[derive(Clone, Debug)]
pub struct Sprints(pub Arc<State>);

const RESOURCE: &str = "delivery.sprint";
const MAX_CAPACITY: f64 = 100_000.0;

pub fn sprint_to_proto(r: SprintRow) -> pb::Sprint {
    pb::Sprint {
        id: r.id.to_string(),
        program_id: r.program_id.to_string(),
        name: r.name,
        goal: r.goal,
        start_time: Some(timestamp(r.start_at)),
        end_time: Some(timestamp(r.end_at)),
        capacity: r.capacity,
        capacity_unit: pb::SprintCapacityUnit::from(CapacityUnit::from_db(&r.capacity_unit)) as i32,
        status: pb::SprintStatus::from(SprintStatus::from_db(&r.status)) as i32,
        created_by: r.created_by.to_string(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
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

/// `start < end`, else a violation on `sprint.end_time`.
fn check_dates(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), Error> {
    if start < end {
        Ok(())
    } else {
        Err(Error::invalid_field(
            "sprint.end_time",
            "must be after start_time",
        ))
    }
}

#[tonic::async_trait]
impl SprintService for Sprints {
    #[tracing::instrument(skip_all)]
    async fn create_sprint(
        &self,
        req: Request<pb::CreateSprintRequest>,
    ) -> Result<Response<pb::Sprint>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let s = req.sprint.unwrap_or_default();
        let mut v = Violations::new();
        let program_id = v.id("sprint.program_id", &s.program_id);
        let name = v.text("sprint.name", &s.name, 1, 200);
        let goal = long_text(&mut v, "sprint.goal", &s.goal, 0, SHORT_DESCRIPTION);
        let start_at = time(&mut v, "sprint.start_time", s.start_time.as_ref());
        let end_at = time(&mut v, "sprint.end_time", s.end_time.as_ref());
        if let (Some(a), Some(b)) = (start_at, end_at)
            && a >= b
        {
            v.add("sprint.end_time", "must be after start_time");
        }
        let capacity = capacity(&mut v, s.capacity);
        let capacity_unit = unit(&mut v, s.capacity_unit);
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (
            Some(program_id),
            Some(name),
            Some(goal),
            Some(start_at),
            Some(end_at),
            Some(capacity),
            Some(capacity_unit),
        ) = (
            program_id,
            name,
            goal,
            start_at,
            end_at,
            capacity,
            capacity_unit,
        )
        else {
            return Err(Error::invalid_field("sprint", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::Sprint>(&mut tx, org_id, "CreateSprint", rid).await?
        {
            return Ok(Response::new(prev));
        }
        program(&mut tx, &caller, org_id, program_id, Lock::KeyShare).await?;
        let now = Utc::now();
        let row = store::insert_sprint(
            &mut tx,
            &SprintRow {
                org_id,
                id: Uuid::nil(),
                program_id,
                name,
                goal,
                start_at,
                end_at,
                capacity,
                capacity_unit: capacity_unit.as_str().to_owned(),
                status: SprintStatus::Planned.as_str().to_owned(),
                created_by: caller.principal_id(),
                version: 1,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        actor
            .event("delivery.sprint.create", RESOURCE, row.id)
            .project(Some(program_id))
            .set("name", &row.name)
            .set("goal", &row.goal)
            .set("start_time", row.start_at)
            .set("end_time", row.end_at)
            .set("capacity", row.capacity)
            .set("capacity_unit", &row.capacity_unit)
            .set("status", &row.status)
            .record(&mut tx)
            .await?;
        let out = sprint_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateSprint", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_sprint(
        &self,
        req: Request<pb::GetSprintRequest>,
    ) -> Result<Response<pb::Sprint>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_sprint(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |s| s.program_id,
            sprint_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(sprint_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_sprints(
        &self,
        req: Request<pb::ListSprintsRequest>,
    ) -> Result<Response<pb::ListSprintsResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.id("program_id", &req.program_id);
        let status: Option<SprintStatus> = v.opt_enum_value("status", req.status);
        v.finish()?;
        let Some(program_id) = program_id else {
            return Err(Error::invalid_field("program_id", "is required").into());
        };
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!("program={program_id};status={}", req.status),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        program(&mut tx, &caller, org_id, program_id, Lock::None).await?;
        let mut rows = store::list_sprints(
            &mut tx,
            org_id,
            program_id,
            status.map(SprintStatus::as_str),
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListSprintsResponse {
            sprints: rows.into_iter().map(sprint_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_sprint(
        &self,
        req: Request<pb::UpdateSprintRequest>,
    ) -> Result<Response<pb::Sprint>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let s = req.sprint.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("sprint.id", &s.id);
        // The status is not a plain field write: it has its own methods.
        let mut mask = req.update_mask.clone();
        if let Some(m) = mask.as_mut()
            && m.paths.iter().any(|p| p == "status")
        {
            v.add(
                "update_mask",
                "`status` changes through StartSprint and CompleteSprint",
            );
            m.paths.retain(|p| p != "status");
        }
        let paths = update_mask(
            &mut v,
            mask.as_ref(),
            &[
                "name",
                "goal",
                "start_time",
                "end_time",
                "capacity",
                "capacity_unit",
            ],
            &[
                "id",
                "program_id",
                "created_by",
                "create_time",
                "update_time",
                "etag",
            ],
        );
        let mut name = None;
        let mut goal = None;
        let mut start_at = None;
        let mut end_at = None;
        let mut new_capacity = None;
        let mut new_unit = None;
        for path in &paths {
            match *path {
                "name" => name = v.text("sprint.name", &s.name, 1, 200),
                "goal" => goal = long_text(&mut v, "sprint.goal", &s.goal, 0, SHORT_DESCRIPTION),
                "start_time" => start_at = time(&mut v, "sprint.start_time", s.start_time.as_ref()),
                "end_time" => end_at = time(&mut v, "sprint.end_time", s.end_time.as_ref()),
                "capacity" => new_capacity = capacity(&mut v, s.capacity),
                _ => new_unit = unit(&mut v, s.capacity_unit),
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("sprint.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = found(
            store::get_sprint(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |s| s.program_id,
            sprint_not_found,
        )?;
        check_etag(&s.etag, row.version, "sprint")?;
        let before = row.clone();
        if let Some(x) = name {
            row.name = x;
        }
        if let Some(x) = goal {
            row.goal = x;
        }
        if let Some(x) = start_at {
            row.start_at = x;
        }
        if let Some(x) = end_at {
            row.end_at = x;
        }
        check_dates(row.start_at, row.end_at)?;
        if let Some(x) = new_capacity {
            row.capacity = x;
        }
        if let Some(x) = new_unit {
            row.capacity_unit = x.as_str().to_owned();
        }
        let row = store::update_sprint(&mut tx, &row).await?;
        actor
            .event("delivery.sprint.update", RESOURCE, id)
            .project(Some(row.program_id))
            .change("name", &before.name, &row.name)
            .change("goal", &before.goal, &row.goal)
            .change("start_time", before.start_at, row.start_at)
            .change("end_time", before.end_at, row.end_at)
            .change("capacity", before.capacity, row.capacity)
            .change("capacity_unit", &before.capacity_unit, &row.capacity_unit)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(sprint_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_sprint(
        &self,
        req: Request<pb::DeleteSprintRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        // FOR UPDATE: creates of gates and plans of tasks hold FOR KEY
        // SHARE on the sprint, so none is in flight while it goes.
        let row = found(
            store::get_sprint(&mut tx, org_id, id, Lock::Update).await?,
            &caller,
            |s| s.program_id,
            sprint_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "sprint")?;
        let removed = store::delete_sprint(&mut tx, org_id, row.program_id, id).await?;
        actor
            .event("delivery.sprint.delete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("name", &row.name, None::<()>)
            .change("status", &row.status, None::<()>)
            .set(
                "removed",
                serde_json::json!({
                    "sprint_gates": removed.gates,
                    "sprint_gate_evaluations": removed.evaluations,
                    "tasks_unplanned": removed.tasks_unplanned,
                }),
            )
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }

    #[tracing::instrument(skip_all)]
    async fn start_sprint(
        &self,
        req: Request<pb::StartSprintRequest>,
    ) -> Result<Response<pb::Sprint>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_sprint(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |s| s.program_id,
            sprint_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "sprint")?;
        let from = SprintStatus::from_db(&row.status);
        domain::start_sprint(from).map_err(Error::from)?;
        // A start racing past this check meets sprints_one_active_key.
        if let Some(active) = store::active_sprint(&mut tx, org_id, row.program_id).await? {
            return Err(store::already_active(Some(active)).into());
        }
        let to = SprintStatus::Active;
        let row = store::set_sprint_status(&mut tx, org_id, id, to.as_str()).await?;
        actor
            .event("delivery.sprint.start", RESOURCE, id)
            .project(Some(row.program_id))
            .change("status", from.as_str(), to.as_str())
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(sprint_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn complete_sprint(
        &self,
        req: Request<pb::CompleteSprintRequest>,
    ) -> Result<Response<pb::Sprint>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_sprint(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |s| s.program_id,
            sprint_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "sprint")?;
        let from = SprintStatus::from_db(&row.status);
        domain::complete_sprint(from).map_err(Error::from)?;
        let to = SprintStatus::Completed;
        let row = store::set_sprint_status(&mut tx, org_id, id, to.as_str()).await?;
        actor
            .event("delivery.sprint.complete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("status", from.as_str(), to.as_str())
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(sprint_to_proto(row)))
    }
}
