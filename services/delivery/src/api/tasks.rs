//! `TaskService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_domain::Id;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::opt_timestamp;
use foundry_platform::db::{Tx, check_etag};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1::{self as pb, task_service_server::TaskService};
use foundry_resource::{self as resource, Create, Delete, Update, WireStamp};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    Order, Paging, SERVICE, create_one, delete_one, each, get_one, hold, in_program, list_page,
    long_description, once_each, parse_changes, title, update_one, user_ids,
};
use crate::domain::{
    self, NewTask, ProgramId, Sprint, Task, TaskChange, TaskMove, TaskPath, TaskStatus,
};
use crate::domain::{Program, Requirement};
use crate::store::{self, Lock, TaskFilter};

/// Handlers of `TaskService`.
#[derive(Clone, Debug)]
pub struct Tasks(pub Arc<State>);

const RESOURCE: &str = "delivery.task";
const MAX_ASSIGNEES: usize = 32;
const MAX_LABELS: usize = 32;
const MAX_ESTIMATE_HOURS: f64 = 10_000.0;

pub fn task_to_proto(t: &Task) -> pb::Task {
    let w = WireStamp::from(&t.stamp);
    pb::Task {
        id: t.id.to_string(),
        program_id: t.fields.program_id.to_string(),
        requirement_id: t
            .fields
            .requirement_id
            .map(|x| x.to_string())
            .unwrap_or_default(),
        title: t.fields.title.clone(),
        description: t.fields.description.clone(),
        status: pb::TaskStatus::from(t.fields.status) as i32,
        assignee_ids: t.fields.assignee_ids.iter().map(Id::to_string).collect(),
        estimate_hours: t.fields.estimate_hours,
        due_time: opt_timestamp(t.fields.due_time),
        labels: t.fields.labels.clone(),
        sprint_id: t
            .fields
            .sprint_id
            .map(|x| x.to_string())
            .unwrap_or_default(),
        created_by: w.created_by,
        create_time: w.create_time,
        update_time: w.update_time,
        etag: w.etag,
    }
}

/// A `CreateTaskRequest` as a [`NewTask`] and its request id.
fn parse_create(req: &pb::CreateTaskRequest) -> Result<(NewTask, Option<Uuid>), Error> {
    let empty = pb::Task::default();
    let t = req.task.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("task.program_id", &t.program_id);
    let requirement_id = v.maybe_id("task.requirement_id", &t.requirement_id);
    let title = title(&mut v, "task.title", &t.title);
    let description = long_description(&mut v, "task.description", &t.description);
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
    let assignee_ids = assignees(&mut v, &t.assignee_ids);
    let estimate_hours = estimate(&mut v, t.estimate_hours);
    let due_time = v.opt_time("task.due_time", t.due_time.as_ref());
    let labels = labels(&mut v, &t.labels);
    let sprint_id = v.maybe_id("task.sprint_id", &t.sprint_id);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewTask {
                program_id: program_id?,
                requirement_id: requirement_id?,
                title: title?,
                description: description?,
                status: status?,
                assignee_ids: assignee_ids?,
                estimate_hours: estimate_hours?,
                due_time: due_time?,
                labels: labels?,
                sprint_id: sprint_id?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateTaskRequest` as the task's id, etag and the changes its mask
/// names.
fn parse_update(
    req: &pb::UpdateTaskRequest,
) -> Result<(domain::TaskId, String, Vec<TaskChange>), Error> {
    let empty = pb::Task::default();
    let t = req.task.as_ref().unwrap_or(&empty);
    parse_changes(
        "task",
        (&t.id, &t.etag),
        req.update_mask.as_ref(),
        |v, path| match path {
            TaskPath::RequirementId => v
                .maybe_id("task.requirement_id", &t.requirement_id)
                .map(TaskChange::RequirementId),
            TaskPath::Title => title(v, "task.title", &t.title).map(TaskChange::Title),
            TaskPath::Description => {
                long_description(v, "task.description", &t.description).map(TaskChange::Description)
            }
            TaskPath::AssigneeIds => assignees(v, &t.assignee_ids).map(TaskChange::AssigneeIds),
            TaskPath::EstimateHours => estimate(v, t.estimate_hours).map(TaskChange::EstimateHours),
            TaskPath::DueTime => v
                .opt_time("task.due_time", t.due_time.as_ref())
                .map(TaskChange::DueTime),
            TaskPath::Labels => labels(v, &t.labels).map(TaskChange::Labels),
            TaskPath::SprintId => v
                .maybe_id("task.sprint_id", &t.sprint_id)
                .map(TaskChange::SprintId),
        },
    )
}

fn assignees(v: &mut Violations, ids: &[String]) -> Option<Vec<domain::UserId>> {
    user_ids(v, "task.assignee_ids", ids, MAX_ASSIGNEES)
        .map(|ids| ids.into_iter().map(Id::from_uuid).collect())
}

/// Labels, each once, in the given order.
fn labels(v: &mut Violations, labels: &[String]) -> Option<Vec<String>> {
    if labels.len() > MAX_LABELS {
        v.add("task.labels", format!("at most {MAX_LABELS} labels"));
        return None;
    }
    each(v, "task.labels", labels, |v, field, s| {
        v.text(field, s, 1, 64)
    })
    .map(once_each)
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

#[async_trait]
impl Create for Task {
    /// The program, and the requirement and sprint if any, are visible, in
    /// that program, and held (`FOR KEY SHARE`) until commit.
    async fn check_new(new: &NewTask, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        hold::<Program>(tx, call, new.program_id).await?;
        if let Some(r) = new.requirement_id {
            in_program::<Requirement>(tx, call, new.program_id, r, "requirement").await?;
        }
        if let Some(s) = new.sprint_id {
            in_program::<Sprint>(tx, call, new.program_id, s, "sprint").await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Update for Task {
    /// A new requirement or sprint must be visible and in the task's
    /// program.
    async fn check(&self, before: &Task, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        if let Some(r) = self.fields.requirement_id
            && self.fields.requirement_id != before.fields.requirement_id
        {
            in_program::<Requirement>(tx, call, self.fields.program_id, r, "requirement").await?;
        }
        if let Some(s) = self.fields.sprint_id
            && self.fields.sprint_id != before.fields.sprint_id
        {
            in_program::<Sprint>(tx, call, self.fields.program_id, s, "sprint").await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Delete for Task {
    /// Its subtasks go with it.
    async fn remove(&self, tx: &mut Tx, org_id: Uuid) -> Result<Option<serde_json::Value>, Error> {
        let subtasks = store::delete_task(tx, org_id, self.id).await?;
        Ok(Some(serde_json::json!({ "subtasks": subtasks })))
    }
}

#[tonic::async_trait]
impl TaskService for Tasks {
    #[tracing::instrument(skip_all)]
    async fn create_task(
        &self,
        req: Request<pb::CreateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        create_one(&self.0, &req, "CreateTask", parse_create, task_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn get_task(
        &self,
        req: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        get_one(&self.0, &req, &req.get_ref().id, task_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_tasks(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id: Option<ProgramId> = v.id_of("program_id", &req.program_id);
        let status: Option<TaskStatus> = v.opt_enum_value("status", req.status);
        let assignee_id = v.opt_id("assignee_id", &req.assignee_id);
        let requirement_id = v.opt_id("requirement_id", &req.requirement_id);
        let sprint_id = v.opt_id("sprint_id", &req.sprint_id);
        let program_id = v.finish_with(|| program_id)?;
        let filter = TaskFilter {
            program_id: program_id.uuid(),
            status,
            assignee_id,
            requirement_id,
            sprint_id,
        };
        let paging =
            Paging::under("program", program_id, req.page_size, &req.page_token).and(&format!(
                "status={};assignee={};requirement={};sprint={}",
                req.status, req.assignee_id, req.requirement_id, req.sprint_id
            ));
        let (rows, next_page_token) =
            list_page(&self.0, &call, paging, Order::newest(), |tx, call, page| {
                Box::pin(async move {
                    resource::fetch::<Program>(tx, call, program_id, Lock::None).await?;
                    store::list_tasks(tx, call.org_id, filter, page.after, page.limit()).await
                })
            })
            .await?;
        Ok(Response::new(pb::ListTasksResponse {
            tasks: rows.iter().map(task_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_task(
        &self,
        req: Request<pb::UpdateTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        update_one(&self.0, &req, parse_update, task_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_task(
        &self,
        req: Request<pb::DeleteTaskRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        delete_one::<Task, _, _>(&self.0, &req, &r.id, &r.etag).await
    }

    /// The task row is locked (`FOR NO KEY UPDATE`) before its open
    /// subtasks are counted; subtask writers take `FOR SHARE` on it, so no
    /// subtask is added or reopened between the count and the move.
    #[tracing::instrument(skip_all)]
    async fn change_task_status(
        &self,
        req: Request<pb::ChangeTaskStatusRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let id = v.id_of("id", &req.id);
        let to: Option<TaskStatus> = v.enum_value("status", req.status);
        let (id, to) = v.finish_with(|| Some((id?, to?)))?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let task = resource::fetch::<Task>(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
        check_etag(&req.etag, task.stamp.version, "task")?;
        let from = task.fields.status;
        let open = if to == TaskStatus::Done && from != TaskStatus::Done {
            store::count_open_subtasks(&mut tx, call.org_id, id).await?
        } else {
            0
        };
        let step = domain::change_task_status(from, to, open, req.force).map_err(Error::from)?;
        if step == TaskMove::Unchanged {
            tx.commit().await.map_err(Error::from)?;
            return Ok(Response::new(task_to_proto(&task)));
        }
        let after = store::set_task_status(&mut tx, call.org_id, id, to).await?;
        let mut event = call
            .actor
            .event("delivery.task.change_status", RESOURCE, id)
            .project(Some(after.fields.program_id.uuid()))
            .diff(&task, &after);
        if step == TaskMove::Forced {
            event = event.set("forced", true).set("open_subtasks", open);
        }
        event.record(&mut tx).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(task_to_proto(&after)))
    }
}
