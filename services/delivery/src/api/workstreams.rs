//! `WorkstreamService`.

use std::sync::Arc;

use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{
    self as pb, workstream_service_server::WorkstreamService,
};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::{
    SHORT_DESCRIPTION, actor, found, long_text, position, program, workstream_not_found,
};
use crate::store::{self, Lock, NewWorkstream, WorkstreamRow};

/// Handlers of `WorkstreamService`.
#[derive(Clone, Debug)]
pub struct Workstreams(pub Arc<State>);

const RESOURCE: &str = "delivery.workstream";

pub fn workstream_to_proto(r: WorkstreamRow) -> pb::Workstream {
    pb::Workstream {
        id: r.id.to_string(),
        program_id: r.program_id.to_string(),
        name: r.name,
        description: r.description,
        position: r.position,
        created_by: r.created_by.to_string(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
    }
}

#[tonic::async_trait]
impl WorkstreamService for Workstreams {
    #[tracing::instrument(skip_all)]
    async fn create_workstream(
        &self,
        req: Request<pb::CreateWorkstreamRequest>,
    ) -> Result<Response<pb::Workstream>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let w = req.workstream.unwrap_or_default();
        let mut v = Violations::new();
        let program_id = v.id("workstream.program_id", &w.program_id);
        let name = v.text("workstream.name", &w.name, 1, 200);
        let description = long_text(
            &mut v,
            "workstream.description",
            &w.description,
            0,
            SHORT_DESCRIPTION,
        );
        let position = position(&mut v, "workstream.position", w.position, true);
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (Some(program_id), Some(name), Some(description), Some(position)) =
            (program_id, name, description, position)
        else {
            return Err(Error::invalid_field("workstream", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::Workstream>(&mut tx, org_id, "CreateWorkstream", rid)
                    .await?
        {
            return Ok(Response::new(prev));
        }
        program(&mut tx, &caller, org_id, program_id, Lock::KeyShare).await?;
        let row = store::insert_workstream(
            &mut tx,
            NewWorkstream {
                org_id,
                program_id,
                name: &name,
                description: &description,
                position,
                created_by: caller.principal_id(),
            },
        )
        .await?;
        actor
            .event("delivery.workstream.create", RESOURCE, row.id)
            .project(Some(program_id))
            .set("program_id", program_id)
            .set("name", &row.name)
            .set("description", &row.description)
            .set("position", row.position)
            .record(&mut tx)
            .await?;
        let out = workstream_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateWorkstream", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_workstream(
        &self,
        req: Request<pb::GetWorkstreamRequest>,
    ) -> Result<Response<pb::Workstream>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_workstream(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |w| w.program_id,
            workstream_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(workstream_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_workstreams(
        &self,
        req: Request<pb::ListWorkstreamsRequest>,
    ) -> Result<Response<pb::ListWorkstreamsResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let program_id = Violations::require_id("program_id", &req.program_id)?;
        let page = self.0.pages.parse_keyed(
            req.page_size,
            &req.page_token,
            &format!("program={program_id}"),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        program(&mut tx, &caller, org_id, program_id, Lock::None).await?;
        let mut rows = store::list_workstreams(
            &mut tx,
            org_id,
            program_id,
            page.after_key.zip(page.after),
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self
            .0
            .pages
            .finish_keyed(&page, &mut rows, |r| (i64::from(r.position), r.id));
        Ok(Response::new(pb::ListWorkstreamsResponse {
            workstreams: rows.into_iter().map(workstream_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_workstream(
        &self,
        req: Request<pb::UpdateWorkstreamRequest>,
    ) -> Result<Response<pb::Workstream>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let w = req.workstream.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("workstream.id", &w.id);
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &["name", "description", "position"],
            &[
                "id",
                "program_id",
                "created_by",
                "create_time",
                "update_time",
                "etag",
            ],
        );
        let (mut name, mut description, mut new_position) = (None, None, None);
        for path in &paths {
            match *path {
                "name" => name = v.text("workstream.name", &w.name, 1, 200),
                "description" => {
                    description = long_text(
                        &mut v,
                        "workstream.description",
                        &w.description,
                        0,
                        SHORT_DESCRIPTION,
                    )
                }
                _ => {
                    new_position =
                        position(&mut v, "workstream.position", w.position, false).flatten()
                }
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("workstream.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = found(
            store::get_workstream(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |w| w.program_id,
            workstream_not_found,
        )?;
        check_etag(&w.etag, row.version, "workstream")?;
        let before = row.clone();
        if let Some(x) = name {
            row.name = x;
        }
        if let Some(x) = description {
            row.description = x;
        }
        if let Some(x) = new_position {
            row.position = x;
        }
        let row = store::update_workstream(&mut tx, &row).await?;
        actor
            .event("delivery.workstream.update", RESOURCE, id)
            .project(Some(row.program_id))
            .change("name", &before.name, &row.name)
            .change("description", &before.description, &row.description)
            .change("position", before.position, row.position)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(workstream_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_workstream(
        &self,
        req: Request<pb::DeleteWorkstreamRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_workstream(&mut tx, org_id, id, Lock::Update).await?,
            &caller,
            |w| w.program_id,
            workstream_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "workstream")?;
        let removed = store::delete_workstream(&mut tx, org_id, id).await?;
        actor
            .event("delivery.workstream.delete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("name", &row.name, None::<()>)
            .set(
                "removed",
                serde_json::json!({
                    "requirements": removed.requirements,
                    "dependencies": removed.dependencies,
                    "tasks_detached": removed.tasks_detached,
                }),
            )
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}
