//! `SubtaskService`.
//!
//! Lock order (see [`crate::store::Lock`]): the task row before the
//! subtask row, as DeleteTask and ChangeTaskStatus take them. Writers that
//! could open a subtask hold the task `FOR SHARE`, so ChangeTaskStatus
//! (which counts open subtasks under `FOR NO KEY UPDATE`) never moves a task
//! to DONE past a subtask being opened at the same time.

use std::sync::Arc;

use foundry_domain::Id;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{self as pb, subtask_service_server::SubtaskService};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::{
    LONG_DESCRIPTION, actor, found, long_text, position, subtask_not_found, task_not_found,
};
use crate::domain::SubtaskStatus;
use crate::store::{self, Lock, NewSubtask, SubtaskRow};

/// Handlers of `SubtaskService`.
#[derive(Clone, Debug)]
pub struct Subtasks(pub Arc<State>);

const RESOURCE: &str = "delivery.subtask";

pub fn subtask_to_proto(r: SubtaskRow) -> pb::Subtask {
    pb::Subtask {
        id: r.id.to_string(),
        task_id: r.task_id.to_string(),
        program_id: r.program_id.to_string(),
        title: r.title,
        description: r.description,
        status: pb::SubtaskStatus::from(SubtaskStatus::from_db(&r.status)) as i32,
        position: r.position,
        created_by: r.created_by.to_string(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
    }
}

#[tonic::async_trait]
impl SubtaskService for Subtasks {
    #[tracing::instrument(skip_all)]
    async fn create_subtask(
        &self,
        req: Request<pb::CreateSubtaskRequest>,
    ) -> Result<Response<pb::Subtask>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let s = req.subtask.unwrap_or_default();
        let mut v = Violations::new();
        let task_id = v.id("subtask.task_id", &s.task_id);
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
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (Some(task_id), Some(title), Some(description), Some(status), Some(position)) =
            (task_id, title, description, status, position)
        else {
            return Err(Error::invalid_field("subtask", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::Subtask>(&mut tx, org_id, "CreateSubtask", rid).await?
        {
            return Ok(Response::new(prev));
        }
        let task = found(
            store::get_task(&mut tx, org_id, Id::from_uuid(task_id), Lock::Share).await?,
            &caller,
            |t| t.program_id.uuid(),
            task_not_found,
        )?;
        let row = store::insert_subtask(
            &mut tx,
            NewSubtask {
                org_id,
                task_id,
                program_id: task.program_id.uuid(),
                title: &title,
                description: &description,
                status: status.as_str(),
                position,
                created_by: caller.principal_id(),
            },
        )
        .await?;
        actor
            .event("delivery.subtask.create", RESOURCE, row.id)
            .project(Some(row.program_id))
            .set("task_id", task_id)
            .set("title", &row.title)
            .set("description", &row.description)
            .set("status", &row.status)
            .set("position", row.position)
            .record(&mut tx)
            .await?;
        let out = subtask_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateSubtask", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_subtask(
        &self,
        req: Request<pb::GetSubtaskRequest>,
    ) -> Result<Response<pb::Subtask>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_subtask(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |s| s.program_id,
            subtask_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(subtask_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_subtasks(
        &self,
        req: Request<pb::ListSubtasksRequest>,
    ) -> Result<Response<pb::ListSubtasksResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let task_id = Violations::require_id("task_id", &req.task_id)?;
        let page =
            self.0
                .pages
                .parse_keyed(req.page_size, &req.page_token, &format!("task={task_id}"))?;
        let mut tx = self.0.db.tenant(org_id).await?;
        found(
            store::get_task(&mut tx, org_id, Id::from_uuid(task_id), Lock::None).await?,
            &caller,
            |t| t.program_id.uuid(),
            task_not_found,
        )?;
        let mut rows = store::list_subtasks(
            &mut tx,
            org_id,
            task_id,
            page.after_key.zip(page.after),
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self
            .0
            .pages
            .finish_keyed(&page, &mut rows, |r| (i64::from(r.position), r.id));
        Ok(Response::new(pb::ListSubtasksResponse {
            subtasks: rows.into_iter().map(subtask_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_subtask(
        &self,
        req: Request<pb::UpdateSubtaskRequest>,
    ) -> Result<Response<pb::Subtask>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let s = req.subtask.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("subtask.id", &s.id);
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &["title", "description", "status", "position"],
            &[
                "id",
                "task_id",
                "program_id",
                "created_by",
                "create_time",
                "update_time",
                "etag",
            ],
        );
        let (mut title, mut description, mut status, mut new_position) = (None, None, None, None);
        for path in &paths {
            match *path {
                "title" => title = v.text("subtask.title", &s.title, 1, 500),
                "description" => {
                    description = long_text(
                        &mut v,
                        "subtask.description",
                        &s.description,
                        0,
                        LONG_DESCRIPTION,
                    )
                }
                "status" => status = v.enum_value::<SubtaskStatus>("subtask.status", s.status),
                _ => {
                    new_position = position(&mut v, "subtask.position", s.position, false).flatten()
                }
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("subtask.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let task_id = found(
            store::get_subtask(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |s| s.program_id,
            subtask_not_found,
        )?
        .task_id;
        store::get_task(&mut tx, org_id, Id::from_uuid(task_id), Lock::Share)
            .await?
            .ok_or_else(subtask_not_found)?;
        let mut row = store::get_subtask(&mut tx, org_id, id, Lock::NoKeyUpdate)
            .await?
            .ok_or_else(subtask_not_found)?;
        check_etag(&s.etag, row.version, "subtask")?;
        let before = row.clone();
        if let Some(x) = title {
            row.title = x;
        }
        if let Some(x) = description {
            row.description = x;
        }
        if let Some(x) = status {
            row.status = x.as_str().to_owned();
        }
        if let Some(x) = new_position {
            row.position = x;
        }
        let row = store::update_subtask(&mut tx, &row).await?;
        actor
            .event("delivery.subtask.update", RESOURCE, id)
            .project(Some(row.program_id))
            .change("title", &before.title, &row.title)
            .change("description", &before.description, &row.description)
            .change("status", &before.status, &row.status)
            .change("position", before.position, row.position)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(subtask_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_subtask(
        &self,
        req: Request<pb::DeleteSubtaskRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_subtask(&mut tx, org_id, id, Lock::Update).await?,
            &caller,
            |s| s.program_id,
            subtask_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "subtask")?;
        store::delete_subtask(&mut tx, org_id, id).await?;
        actor
            .event("delivery.subtask.delete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("task_id", row.task_id, None::<()>)
            .change("title", &row.title, None::<()>)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}
