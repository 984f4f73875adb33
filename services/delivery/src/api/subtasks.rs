//! `SubtaskService`.
//!
//! Lock order (see [`crate::store::Lock`]): the task row before the
//! subtask row, as DeleteTask and ChangeTaskStatus take them. Writers that
//! could open a subtask hold the task `FOR SHARE`, so ChangeTaskStatus
//! (which counts open subtasks under `FOR NO KEY UPDATE`) never moves a task
//! to DONE past a subtask being opened at the same time.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::db::Tx;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1::{self as pb, subtask_service_server::SubtaskService};
use foundry_resource::{self as resource, Create, Delete, Resource, Update, WireStamp};
use tonic::{Request, Response};

use crate::State;
use crate::api::{
    Order, Reply, SERVICE, Wire, WireChange, WireNew, create, delete, get, list_under,
    long_description, page, parse_update, position, title,
};
use crate::domain::{NewSubtask, Subtask, SubtaskChange, SubtaskPath, SubtaskStatus, Task};
use crate::store::Lock;

/// Handlers of `SubtaskService`.
#[derive(Clone, Debug)]
pub struct Subtasks(pub Arc<State>);

impl Wire for Subtask {
    type Message = pb::Subtask;

    fn to_proto(&self) -> pb::Subtask {
        let (f, w) = (&self.fields, WireStamp::from(&self.stamp));
        pb::Subtask {
            id: self.id.to_string(),
            task_id: f.task_id.to_string(),
            program_id: self.program_id.to_string(),
            title: f.title.clone(),
            description: f.description.clone(),
            status: pb::SubtaskStatus::from(f.status) as i32,
            position: f.position,
            created_by: w.created_by,
            create_time: w.create_time,
            update_time: w.update_time,
            etag: w.etag,
        }
    }
}

impl WireNew for Subtask {
    fn parse_new(v: &mut Violations, s: &pb::Subtask) -> Option<NewSubtask> {
        let task_id = v.id_of("subtask.task_id", &s.task_id);
        let title = title(v, "subtask.title", &s.title);
        let description = long_description(v, "subtask.description", &s.description);
        let status = if s.status == 0 {
            Some(SubtaskStatus::Todo)
        } else {
            v.enum_value("subtask.status", s.status)
        };
        let position = position(v, "subtask.position", s.position, true);
        Some(NewSubtask {
            task_id: task_id?,
            title: title?,
            description: description?,
            status: status?,
            position: position?,
        })
    }
}

impl WireChange for Subtask {
    fn parse_change(
        v: &mut Violations,
        path: SubtaskPath,
        s: &pb::Subtask,
    ) -> Option<SubtaskChange> {
        match path {
            SubtaskPath::Title => title(v, "subtask.title", &s.title).map(SubtaskChange::Title),
            SubtaskPath::Description => long_description(v, "subtask.description", &s.description)
                .map(SubtaskChange::Description),
            SubtaskPath::Status => v
                .enum_value::<SubtaskStatus>("subtask.status", s.status)
                .map(SubtaskChange::Status),
            SubtaskPath::Position => position(v, "subtask.position", s.position, false)
                .flatten()
                .map(SubtaskChange::Position),
        }
    }
}

/// Written by the handler: the task is locked before the subtask.
impl Update for Subtask {}

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
    async fn create_subtask(&self, req: Request<pb::CreateSubtaskRequest>) -> Reply<pb::Subtask> {
        create::<Subtask, _>(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn get_subtask(&self, req: Request<pb::GetSubtaskRequest>) -> Reply<pb::Subtask> {
        get::<Subtask, _, _>(&self.0, req).await
    }

    #[tracing::instrument(skip_all)]
    async fn list_subtasks(
        &self,
        req: Request<pb::ListSubtasksRequest>,
    ) -> Reply<pb::ListSubtasksResponse> {
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
        page(&subtasks, next_page_token)
    }

    /// Not [`resource::update`]: the task is locked before the subtask
    /// (see the module).
    #[tracing::instrument(skip_all)]
    async fn update_subtask(&self, req: Request<pb::UpdateSubtaskRequest>) -> Reply<pb::Subtask> {
        let call = Call::of(SERVICE, &req)?;
        let (id, etag, changes) = parse_update::<Subtask, _, _>(req.get_ref())?;
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
        let subtask = resource::update_locked(tx, &call, before, &etag, changes).await?;
        Ok(Response::new(subtask.to_proto()))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_subtask(&self, req: Request<pb::DeleteSubtaskRequest>) -> Reply<()> {
        delete::<Subtask, _, _>(&self.0, req).await
    }
}
