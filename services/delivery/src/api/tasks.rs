//! `TaskService`.

use std::sync::Arc;

use chrono::Utc;
use foundry_platform::Error;
use foundry_platform::convert::{opt_timestamp, timestamp};
use foundry_platform::db::{Tx, check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{self as pb, task_service_server::TaskService};
use foundry_tenancy::{Caller, caller};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    LONG_DESCRIPTION, actor, found, long_text, other_program, program, requirement_not_found,
    sprint_not_found, task_not_found, user_ids,
};
use crate::domain::{self, TaskMove, TaskStatus};
use crate::store::{self, Lock, TaskFilter, TaskRow};

/// Handlers of `TaskService`.
#[derive(Clone, Debug)]
pub struct Tasks(pub Arc<State>);

const RESOURCE: &str = "delivery.task";
const MAX_ASSIGNEES: usize = 32;
const MAX_LABELS: usize = 32;
const MAX_ESTIMATE_HOURS: f64 = 10_000.0;

pub fn task_to_proto(r: TaskRow) -> pb::Task {
    pb::Task {
        id: r.id.to_string(),
        program_id: r.program_id.to_string(),
        requirement_id: r.requirement_id.map(|x| x.to_string()).unwrap_or_default(),
        title: r.title,
        description: r.description,
        status: pb::TaskStatus::from(TaskStatus::from_db(&r.status)) as i32,
        assignee_ids: r.assignee_ids.iter().map(Uuid::to_string).collect(),
        estimate_hours: r.estimate_hours,
        due_time: opt_timestamp(r.due_at),
        labels: r.labels,
        sprint_id: r.sprint_id.map(|x| x.to_string()).unwrap_or_default(),
        created_by: r.created_by.to_string(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
    }
}

/// Labels, each once, in the given order.
fn labels(v: &mut Violations, labels: &[String]) -> Option<Vec<String>> {
    if labels.len() > MAX_LABELS {
        v.add("task.labels", format!("at most {MAX_LABELS} labels"));
        return None;
    }
    let parsed: Option<Vec<String>> = labels
        .iter()
        .enumerate()
        .map(|(i, s)| v.text(&format!("task.labels[{i}]"), s, 1, 64))
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    let mut out: Vec<String> = Vec::new();
    for l in parsed? {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    Some(out)
}

fn estimate(v: &mut Violations, hours: Option<f64>) -> Option<Option<f64>> {
    match hours {
        None => Some(None),
        Some(h) if h.is_finite() && (0.0..=MAX_ESTIMATE_HOURS).contains(&h) => Some(Some(h)),
        Some(_) => {
            v.add(
                "task.estimate_hours",
                format!("must be 0..{MAX_ESTIMATE_HOURS}"),
            );
            None
        }
    }
}

/// The requirement a task is put under: visible, in the task's program,
/// held (`FOR KEY SHARE`) until commit.
async fn requirement_of(
    tx: &mut Tx,
    caller: &Caller,
    org_id: Uuid,
    program_id: Uuid,
    requirement_id: Uuid,
) -> Result<(), Error> {
    let r = found(
        store::get_requirement(tx, org_id, requirement_id, Lock::KeyShare).await?,
        caller,
        |r| r.program_id,
        requirement_not_found,
    )?;
    if r.program_id != program_id {
        return Err(other_program("requirement"));
    }
    Ok(())
}

/// The sprint a task is planned in: visible, in the task's program, held
/// (`FOR KEY SHARE`) until commit.
async fn sprint_of(
    tx: &mut Tx,
    caller: &Caller,
    org_id: Uuid,
    program_id: Uuid,
    sprint_id: Uuid,
) -> Result<(), Error> {
    let s = found(
        store::get_sprint(tx, org_id, sprint_id, Lock::KeyShare).await?,
        caller,
        |s| s.program_id,
        sprint_not_found,
    )?;
    if s.program_id != program_id {
        return Err(other_program("sprint"));
    }
    Ok(())
}

#[tonic::async_trait]
impl TaskService for Tasks {
    #[tracing::instrument(skip_all)]
    async fn create_task(
        &self,
        req: Request<pb::CreateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let t = req.task.unwrap_or_default();
        let mut v = Violations::new();
        let program_id = v.id("task.program_id", &t.program_id);
        let requirement_id = v.opt_id("task.requirement_id", &t.requirement_id);
        let title = v.text("task.title", &t.title, 1, 500);
        let description = long_text(
            &mut v,
            "task.description",
            &t.description,
            0,
            LONG_DESCRIPTION,
        );
        let status = match t.status {
            0 => Some(TaskStatus::Backlog),
            s => match v.enum_value::<TaskStatus>("task.status", s) {
                Some(s) if s.is_initial() => Some(s),
                Some(_) => {
                    v.add("task.status", "a new task is BACKLOG or TODO");
                    None
                }
                None => None,
            },
        };
        let assignee_ids = user_ids(&mut v, "task.assignee_ids", &t.assignee_ids, MAX_ASSIGNEES);
        let estimate_hours = estimate(&mut v, t.estimate_hours);
        let due_at = v.opt_time("task.due_time", t.due_time.as_ref());
        let labels = labels(&mut v, &t.labels);
        let sprint_id = v.opt_id("task.sprint_id", &t.sprint_id);
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (
            Some(program_id),
            Some(title),
            Some(description),
            Some(status),
            Some(assignee_ids),
            Some(estimate_hours),
            Some(due_at),
            Some(labels),
        ) = (
            program_id,
            title,
            description,
            status,
            assignee_ids,
            estimate_hours,
            due_at,
            labels,
        )
        else {
            return Err(Error::invalid_field("task", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::Task>(&mut tx, org_id, "CreateTask", rid).await?
        {
            return Ok(Response::new(prev));
        }
        program(&mut tx, &caller, org_id, program_id, Lock::KeyShare).await?;
        if let Some(r) = requirement_id {
            requirement_of(&mut tx, &caller, org_id, program_id, r).await?;
        }
        if let Some(s) = sprint_id {
            sprint_of(&mut tx, &caller, org_id, program_id, s).await?;
        }
        let now = Utc::now();
        let row = store::insert_task(
            &mut tx,
            &TaskRow {
                org_id,
                id: Uuid::nil(),
                program_id,
                requirement_id,
                title,
                description,
                status: status.as_str().to_owned(),
                assignee_ids,
                estimate_hours,
                due_at,
                labels,
                sprint_id,
                created_by: caller.principal_id(),
                version: 1,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        actor
            .event("delivery.task.create", RESOURCE, row.id)
            .project(Some(program_id))
            .set("requirement_id", row.requirement_id)
            .set("title", &row.title)
            .set("description", &row.description)
            .set("status", &row.status)
            .set("assignee_ids", &row.assignee_ids)
            .set("estimate_hours", row.estimate_hours)
            .set("due_time", row.due_at)
            .set("labels", &row.labels)
            .set("sprint_id", row.sprint_id)
            .record(&mut tx)
            .await?;
        let out = task_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateTask", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_task(
        &self,
        req: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_task(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |t| t.program_id,
            task_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(task_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_tasks(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.id("program_id", &req.program_id);
        let status: Option<TaskStatus> = v.opt_enum_value("status", req.status);
        let assignee_id = v.opt_id("assignee_id", &req.assignee_id);
        let requirement_id = v.opt_id("requirement_id", &req.requirement_id);
        let sprint_id = v.opt_id("sprint_id", &req.sprint_id);
        v.finish()?;
        let Some(program_id) = program_id else {
            return Err(Error::invalid_field("program_id", "is required").into());
        };
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!(
                "program={program_id};status={};assignee={};requirement={};sprint={}",
                req.status, req.assignee_id, req.requirement_id, req.sprint_id
            ),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        program(&mut tx, &caller, org_id, program_id, Lock::None).await?;
        let mut rows = store::list_tasks(
            &mut tx,
            org_id,
            TaskFilter {
                program_id,
                status: status.map(TaskStatus::as_str),
                assignee_id,
                requirement_id,
                sprint_id,
            },
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListTasksResponse {
            tasks: rows.into_iter().map(task_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_task(
        &self,
        req: Request<pb::UpdateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let t = req.task.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("task.id", &t.id);
        // The status is not a plain field write: it has its own method.
        let mut mask = req.update_mask.clone();
        if let Some(m) = mask.as_mut()
            && m.paths.iter().any(|p| p == "status")
        {
            v.add("update_mask", "`status` changes through ChangeTaskStatus");
            m.paths.retain(|p| p != "status");
        }
        let paths = update_mask(
            &mut v,
            mask.as_ref(),
            &[
                "requirement_id",
                "title",
                "description",
                "assignee_ids",
                "estimate_hours",
                "due_time",
                "labels",
                "sprint_id",
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
        let mut requirement_id = None;
        let mut title = None;
        let mut description = None;
        let mut new_assignees = None;
        let mut estimate_hours = None;
        let mut due_at = None;
        let mut new_labels = None;
        let mut sprint_id = None;
        for path in &paths {
            match *path {
                // Empty detaches the task from its requirement.
                "requirement_id" => {
                    requirement_id = Some(v.opt_id("task.requirement_id", &t.requirement_id))
                }
                "title" => title = v.text("task.title", &t.title, 1, 500),
                "description" => {
                    description = long_text(
                        &mut v,
                        "task.description",
                        &t.description,
                        0,
                        LONG_DESCRIPTION,
                    )
                }
                "assignee_ids" => {
                    new_assignees =
                        user_ids(&mut v, "task.assignee_ids", &t.assignee_ids, MAX_ASSIGNEES)
                }
                "estimate_hours" => estimate_hours = estimate(&mut v, t.estimate_hours),
                "due_time" => due_at = v.opt_time("task.due_time", t.due_time.as_ref()),
                "labels" => new_labels = labels(&mut v, &t.labels),
                _ => sprint_id = Some(v.opt_id("task.sprint_id", &t.sprint_id)),
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("task.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = found(
            store::get_task(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |t| t.program_id,
            task_not_found,
        )?;
        check_etag(&t.etag, row.version, "task")?;
        let before = row.clone();
        if let Some(r) = requirement_id {
            if let Some(r) = r
                && Some(r) != row.requirement_id
            {
                requirement_of(&mut tx, &caller, org_id, row.program_id, r).await?;
            }
            row.requirement_id = r;
        }
        if let Some(x) = title {
            row.title = x;
        }
        if let Some(x) = description {
            row.description = x;
        }
        if let Some(x) = new_assignees {
            row.assignee_ids = x;
        }
        if let Some(x) = estimate_hours {
            row.estimate_hours = x;
        }
        if let Some(x) = due_at {
            row.due_at = x;
        }
        if let Some(x) = new_labels {
            row.labels = x;
        }
        if let Some(x) = sprint_id {
            if let Some(s) = x
                && Some(s) != row.sprint_id
            {
                sprint_of(&mut tx, &caller, org_id, row.program_id, s).await?;
            }
            row.sprint_id = x;
        }
        let row = store::update_task(&mut tx, &row).await?;
        actor
            .event("delivery.task.update", RESOURCE, id)
            .project(Some(row.program_id))
            .change("requirement_id", before.requirement_id, row.requirement_id)
            .change("title", &before.title, &row.title)
            .change("description", &before.description, &row.description)
            .change("assignee_ids", &before.assignee_ids, &row.assignee_ids)
            .change("estimate_hours", before.estimate_hours, row.estimate_hours)
            .change("due_time", before.due_at, row.due_at)
            .change("labels", &before.labels, &row.labels)
            .change("sprint_id", before.sprint_id, row.sprint_id)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(task_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_task(
        &self,
        req: Request<pb::DeleteTaskRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_task(&mut tx, org_id, id, Lock::Update).await?,
            &caller,
            |t| t.program_id,
            task_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "task")?;
        let subtasks = store::delete_task(&mut tx, org_id, id).await?;
        actor
            .event("delivery.task.delete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("title", &row.title, None::<()>)
            .change("status", &row.status, None::<()>)
            .set("removed", serde_json::json!({ "subtasks": subtasks }))
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }

    /// The task row is locked (`FOR NO KEY UPDATE`) before its open
    /// subtasks are counted; subtask writers take `FOR SHARE` on it, so no
    /// subtask is added or reopened between the count and the move.
    #[tracing::instrument(skip_all)]
    async fn change_task_status(
        &self,
        req: Request<pb::ChangeTaskStatusRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let mut v = Violations::new();
        let id = v.id("id", &req.id);
        let to: Option<TaskStatus> = v.enum_value("status", req.status);
        v.finish()?;
        let (Some(id), Some(to)) = (id, to) else {
            return Err(Error::invalid_field("id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_task(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |t| t.program_id,
            task_not_found,
        )?;
        check_etag(&req.etag, row.version, "task")?;
        let from = TaskStatus::from_db(&row.status);
        let open = if to == TaskStatus::Done && from != TaskStatus::Done {
            store::count_open_subtasks(&mut tx, org_id, id).await?
        } else {
            0
        };
        let step = domain::change_task_status(from, to, open, req.force).map_err(Error::from)?;
        if step == TaskMove::Unchanged {
            tx.commit().await.map_err(Error::from)?;
            return Ok(Response::new(task_to_proto(row)));
        }
        let row = store::set_task_status(&mut tx, org_id, id, to.as_str()).await?;
        let mut event = actor
            .event("delivery.task.change_status", RESOURCE, id)
            .project(Some(row.program_id))
            .change("status", from.as_str(), to.as_str());
        if step == TaskMove::Forced {
            event = event.set("forced", true).set("open_subtasks", open);
        }
        event.record(&mut tx).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(task_to_proto(row)))
    }
}
