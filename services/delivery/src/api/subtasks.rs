//! `SubtaskService`.
//!
//! Lock order (see [`crate::store::Lock`]): the task row before the
//! subtask row, as DeleteTask and ChangeTaskStatus take them. Writers that
//! could open a subtask hold the task `FOR SHARE`, so ChangeTaskStatus
//! (which counts open subtasks under `FOR NO KEY UPDATE`) never moves a task
//! to DONE past a subtask being opened at the same time.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_domain::Patch;
use foundry_domain::Record;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::{Tx, check_etag};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1::{self as pb, subtask_service_server::SubtaskService};
use foundry_resource::{self as resource, Create, Delete, Resource, WireStamp};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    Order, SERVICE, create_one, delete_one, get_one, list_under, long_description, parse_changes,
    position, title,
};
use crate::domain::{
    NewSubtask, Subtask, SubtaskChange, SubtaskId, SubtaskPath, SubtaskStatus, Task,
};
use crate::store::Lock;

/// Handlers of `SubtaskService`.
#[derive(Clone, Debug)]
pub struct Subtasks(pub Arc<State>);

pub fn subtask_to_proto(s: &Subtask) -> pb::Subtask {
    let w = WireStamp::from(&s.stamp);
    pb::Subtask {
        id: s.id.to_string(),
        task_id: s.fields.task_id.to_string(),
        program_id: s.program_id.to_string(),
        title: s.fields.title.clone(),
        description: s.fields.description.clone(),
        status: pb::SubtaskStatus::from(s.fields.status) as i32,
        position: s.fields.position,
        created_by: w.created_by,
        create_time: w.create_time,
        update_time: w.update_time,
        etag: w.etag,
    }
}

/// A `CreateSubtaskRequest` as a [`NewSubtask`] and its request id.
fn parse_create(req: &pb::CreateSubtaskRequest) -> Result<(NewSubtask, Option<Uuid>), Error> {
    let empty = pb::Subtask::default();
    let s = req.subtask.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let task_id = v.id_of("subtask.task_id", &s.task_id);
    let title = title(&mut v, "subtask.title", &s.title);
    let description = long_description(&mut v, "subtask.description", &s.description);
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

/// An `UpdateSubtaskRequest` as the subtask's id, etag and the changes its
/// mask names.
fn parse_update(
    req: &pb::UpdateSubtaskRequest,
) -> Result<(SubtaskId, String, Vec<SubtaskChange>), Error> {
    let empty = pb::Subtask::default();
    let s = req.subtask.as_ref().unwrap_or(&empty);
    parse_changes(
        "subtask",
        (&s.id, &s.etag),
        req.update_mask.as_ref(),
        |v, path| match path {
            SubtaskPath::Title => title(v, "subtask.title", &s.title).map(SubtaskChange::Title),
            SubtaskPath::Description => long_description(v, "subtask.description", &s.description)
                .map(SubtaskChange::Description),
            SubtaskPath::Status => v
                .enum_value::<SubtaskStatus>("subtask.status", s.status)
                .map(SubtaskChange::Status),
            SubtaskPath::Position => position(v, "subtask.position", s.position, false)
                .flatten()
                .map(SubtaskChange::Position),
        },
    )
}

#[async_trait]
impl Create for Subtask {
    /// The task is visible and held (`FOR SHARE`: see the module) until
    /// commit.
    async fn check_new(new: &NewSubtask, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        resource::fetch::<Task>(tx, call, new.task_id, Lock::Share).await?;
        Ok(())
    }
}

impl Delete for Subtask {}

#[tonic::async_trait]
impl SubtaskService for Subtasks {
    #[tracing::instrument(skip_all)]
    async fn create_subtask(
        &self,
        req: Request<pb::CreateSubtaskRequest>,
    ) -> Result<Response<pb::Subtask>, Status> {
        create_one(
            &self.0,
            &req,
            "CreateSubtask",
            parse_create,
            subtask_to_proto,
        )
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_subtask(
        &self,
        req: Request<pb::GetSubtaskRequest>,
    ) -> Result<Response<pb::Subtask>, Status> {
        get_one(&self.0, &req, &req.get_ref().id, subtask_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_subtasks(
        &self,
        req: Request<pb::ListSubtasksRequest>,
    ) -> Result<Response<pb::ListSubtasksResponse>, Status> {
        let by_position = Order::ByKey(|s: &Subtask| (i64::from(s.fields.position), s.id.uuid()));
        let r = req.get_ref();
        let (subtasks, next_page_token) = list_under::<Subtask, Task, _, _>(
            &self.0,
            &req,
            ("task_id", &r.task_id),
            (r.page_size, &r.page_token),
            by_position,
        )
        .await?;
        Ok(Response::new(pb::ListSubtasksResponse {
            subtasks: subtasks.iter().map(subtask_to_proto).collect(),
            next_page_token,
        }))
    }

    /// Not [`resource::update`]: the task is locked before the subtask
    /// (see the module).
    #[tracing::instrument(skip_all)]
    async fn update_subtask(
        &self,
        req: Request<pb::UpdateSubtaskRequest>,
    ) -> Result<Response<pb::Subtask>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, etag, changes) = parse_update(req.get_ref())?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let task_id = resource::fetch::<Subtask>(&mut tx, &call, id, Lock::None)
            .await?
            .fields
            .task_id;
        resource::read::<Task>(&mut tx, call.org_id, task_id, Lock::Share)
            .await?
            .ok_or_else(Subtask::not_found)?;
        let before: Subtask = resource::read(&mut tx, call.org_id, id, Lock::NoKeyUpdate)
            .await?
            .ok_or_else(Subtask::not_found)?;
        check_etag(&etag, before.stamp.version, Subtask::NAME)?;
        let mut subtask = before.clone();
        subtask.apply(changes).map_err(Error::from)?;
        let subtask = subtask.write(&mut tx, call.org_id).await?;
        call.actor
            .event("delivery.subtask.update", Subtask::KIND, id)
            .project(subtask.project())
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
        let r = req.get_ref();
        delete_one::<Subtask, _, _>(&self.0, &req, &r.id, &r.etag).await
    }
}
