//! `SubtaskService`.
//!
//! Lock order (see [`crate::store::Lock`]): the task row before the
//! subtask row, as DeleteTask and ChangeTaskStatus take them. Writers that
//! could open a subtask hold the task `FOR SHARE`, so ChangeTaskStatus
//! (which counts open subtasks under `FOR NO KEY UPDATE`) never moves a task
//! to DONE past a subtask being opened at the same time.

use std::sync::Arc;

use foundry_domain::Id;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Tx, check_etag, etag};
use foundry_platform::idempotency::{self, Begun};
use foundry_platform::validate::{Violations, mask};
use foundry_proto::foundry::delivery::v1::{self as pb, subtask_service_server::SubtaskService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    LONG_DESCRIPTION, SERVICE, found, long_text, position, subtask_not_found, task_not_found,
};
use crate::domain::{
    NewSubtask, Subtask, SubtaskChange, SubtaskId, SubtaskPath, SubtaskStatus, Task, TaskId,
};
use crate::store::{self, Lock};

/// Handlers of `SubtaskService`.
#[derive(Clone, Debug)]
pub struct Subtasks(pub Arc<State>);

const RESOURCE: &str = "delivery.subtask";

pub fn subtask_to_proto(s: &Subtask) -> pb::Subtask {
    pb::Subtask {
        id: s.id.to_string(),
        task_id: s.task_id.to_string(),
        program_id: s.program_id.to_string(),
        title: s.title.clone(),
        description: s.description.clone(),
        status: pb::SubtaskStatus::from(s.status) as i32,
        position: s.position,
        created_by: s.created_by.to_string(),
        create_time: Some(timestamp(s.created_at)),
        update_time: Some(timestamp(s.updated_at)),
        etag: etag(s.version),
    }
}

/// A `CreateSubtaskRequest` as a [`NewSubtask`] and its request id.
fn parse_create(req: &pb::CreateSubtaskRequest) -> Result<(NewSubtask, Option<Uuid>), Error> {
    let empty = pb::Subtask::default();
    let s = req.subtask.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let task_id = v.id_of("subtask.task_id", &s.task_id);
    let title = v.text("subtask.title", &s.title, 1, 500);
    let description = long_text(
        &mut v,
        "subtask.description",
        &s.description,
        0,
        LONG_DESCRIPTION,
    );
    let status = if s.status == 0 {
        Some(SubtaskStatus::Todo)
    } else {
        v.enum_value("subtask.status", s.status)
    };
    let position = position(&mut v, "subtask.position", s.position, true);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewSubtask {
                task_id: task_id?,
                title: title?,
                description: description?,
                status: status?,
                position: position?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateSubtaskRequest` as the subtask's id and the changes its mask
/// names.
fn parse_update(req: &pb::UpdateSubtaskRequest) -> Result<(SubtaskId, Vec<SubtaskChange>), Error> {
    let empty = pb::Subtask::default();
    let s = req.subtask.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let id = v.id_of("subtask.id", &s.id);
    let mut changes = Vec::new();
    for path in mask::<SubtaskPath>(&mut v, req.update_mask.as_ref()) {
        changes.push(match path {
            SubtaskPath::Title => v
                .text("subtask.title", &s.title, 1, 500)
                .map(SubtaskChange::Title),
            SubtaskPath::Description => long_text(
                &mut v,
                "subtask.description",
                &s.description,
                0,
                LONG_DESCRIPTION,
            )
            .map(SubtaskChange::Description),
            SubtaskPath::Status => v
                .enum_value::<SubtaskStatus>("subtask.status", s.status)
                .map(SubtaskChange::Status),
            SubtaskPath::Position => position(&mut v, "subtask.position", s.position, false)
                .flatten()
                .map(SubtaskChange::Position),
        });
    }
    v.finish_with(|| Some((id?, changes.into_iter().collect::<Option<Vec<_>>>()?)))
}

/// A task the caller may see, with `lock`.
async fn visible_task(tx: &mut Tx, call: &Call, id: TaskId, lock: Lock) -> Result<Task, Error> {
    found(
        store::get_task(tx, call.org_id, id, lock).await?,
        &call.caller,
        |t| t.program_id.uuid(),
        task_not_found,
    )
}

/// A subtask the caller may see, with `lock`.
async fn visible_subtask(
    tx: &mut Tx,
    call: &Call,
    id: SubtaskId,
    lock: Lock,
) -> Result<Subtask, Error> {
    found(
        store::get_subtask(tx, call.org_id, id, lock).await?,
        &call.caller,
        |s| s.program_id.uuid(),
        subtask_not_found,
    )
}

#[tonic::async_trait]
impl SubtaskService for Subtasks {
    #[tracing::instrument(skip_all)]
    async fn create_subtask(
        &self,
        req: Request<pb::CreateSubtaskRequest>,
    ) -> Result<Response<pb::Subtask>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (new, request_id) = parse_create(req.get_ref())?;
        let key = idempotency::Key::of(call.org_id, "CreateSubtask", request_id, req.get_ref());
        let mut tx = match idempotency::begin(self.0.db.tenant(call.org_id).await?, key).await? {
            Begun::Replay(previous) => return Ok(Response::new(previous)),
            Begun::New(tx) => tx,
        };
        let task = visible_task(&mut tx, &call, new.task_id, Lock::Share).await?;
        let subtask = store::insert_subtask(
            &mut tx,
            call.org_id,
            &new,
            task.program_id,
            call.principal_id(),
        )
        .await?;
        call.actor
            .event("delivery.subtask.create", RESOURCE, subtask.id)
            .project(Some(subtask.program_id.uuid()))
            .created(&subtask)
            .record(&mut tx)
            .await?;
        let out = subtask_to_proto(&subtask);
        tx.finish(&out).await?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_subtask(
        &self,
        req: Request<pb::GetSubtaskRequest>,
    ) -> Result<Response<pb::Subtask>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let subtask = visible_subtask(&mut tx, &call, id, Lock::None).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(subtask_to_proto(&subtask)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_subtasks(
        &self,
        req: Request<pb::ListSubtasksRequest>,
    ) -> Result<Response<pb::ListSubtasksResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let task_id: TaskId = Violations::require_id("task_id", &req.task_id).map(Id::from_uuid)?;
        let page =
            self.0
                .pages
                .parse_keyed(req.page_size, &req.page_token, &format!("task={task_id}"))?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        visible_task(&mut tx, &call, task_id, Lock::None).await?;
        let mut subtasks = store::list_subtasks(
            &mut tx,
            call.org_id,
            task_id,
            page.after_key.zip(page.after),
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish_keyed(&page, &mut subtasks, |s| {
            (i64::from(s.position), s.id.uuid())
        });
        Ok(Response::new(pb::ListSubtasksResponse {
            subtasks: subtasks.iter().map(subtask_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_subtask(
        &self,
        req: Request<pb::UpdateSubtaskRequest>,
    ) -> Result<Response<pb::Subtask>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, changes) = parse_update(req.get_ref())?;
        let etag = req
            .get_ref()
            .subtask
            .as_ref()
            .map_or("", |s| s.etag.as_str());
        let mut tx = self.0.db.tenant(call.org_id).await?;
        // The task first (lock order), then the subtask.
        let task_id = visible_subtask(&mut tx, &call, id, Lock::None)
            .await?
            .task_id;
        store::get_task(&mut tx, call.org_id, task_id, Lock::Share)
            .await?
            .ok_or_else(subtask_not_found)?;
        let before = store::get_subtask(&mut tx, call.org_id, id, Lock::NoKeyUpdate)
            .await?
            .ok_or_else(subtask_not_found)?;
        check_etag(etag, before.version, "subtask")?;
        let mut subtask = before.clone();
        subtask.apply(changes);
        let subtask = store::update_subtask(&mut tx, call.org_id, &subtask).await?;
        call.actor
            .event("delivery.subtask.update", RESOURCE, id)
            .project(Some(subtask.program_id.uuid()))
            .diff(&before, &subtask)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(subtask_to_proto(&subtask)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_subtask(
        &self,
        req: Request<pb::DeleteSubtaskRequest>,
    ) -> Result<Response<()>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let subtask = visible_subtask(&mut tx, &call, id, Lock::Update).await?;
        check_etag(&req.get_ref().etag, subtask.version, "subtask")?;
        store::delete_subtask(&mut tx, call.org_id, id).await?;
        call.actor
            .event("delivery.subtask.delete", RESOURCE, id)
            .project(Some(subtask.program_id.uuid()))
            .removed(&subtask)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}
