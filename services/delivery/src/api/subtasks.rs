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
use foundry_platform::rpc::{Methods, Served};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{self as resource, Create, Delete, Resource, Update, stamped};

use crate::State;
use crate::api::{In, Listed, list};
use crate::api::{
    Order, PathOf, Reply, Wire, create, delete, get, long_description, parse_update, position,
    title,
};
use crate::domain::{NewSubtask, Subtask, SubtaskChange, SubtaskPath, SubtaskStatus, Task};
use crate::store::Lock;

impl Wire for Subtask {
    type Message = pb::Subtask;

    fn to_proto(&self) -> pb::Subtask {
        let f = &self.fields;
        pb::Subtask {
            task_id: f.task_id.to_string(),
            program_id: self.program_id.to_string(),
            title: f.title.clone(),
            description: f.description.clone(),
            status: pb::SubtaskStatus::from(f.status) as i32,
            position: f.position,
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, s: &pb::Subtask) -> Option<NewSubtask> {
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

    fn change(v: &mut Violations, path: PathOf<Self>, s: &Self::Message) -> Option<Self::Change> {
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

impl Listed for Subtask {
    fn order() -> Order<Self> {
        Order::ByKey(|s| (i64::from(s.fields.position), s.id.uuid()))
    }
}

/// `SubtaskService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::SubtaskService> {
    Methods::new(state.clone())
        .call(create::<Subtask, pb::CreateSubtaskRequest>)
        .call(get::<Subtask, _, pb::GetSubtaskRequest>)
        .call(delete::<Subtask, _, pb::DeleteSubtaskRequest>)
        .call(list::<Subtask, Task, _, pb::ListSubtasksRequest>)
        .call(update_subtask)
        .complete()
}

/// Not [`resource::update`]: the task is locked before the subtask
/// (see the module).
async fn update_subtask(c: In<pb::UpdateSubtaskRequest>) -> Reply<pb::Subtask> {
    let In { state, call, req } = c;
    let (id, etag, changes) = parse_update::<Subtask, _, _>(&req)?;
    let mut tx = state.db.tenant(call.org_id).await?;
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
    Ok(subtask.to_proto())
}
