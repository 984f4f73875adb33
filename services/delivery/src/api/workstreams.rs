//! `WorkstreamService`.

use std::sync::Arc;

use foundry_domain::Id;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{Tx, check_etag, etag};
use foundry_platform::idempotency::{self, Begun};
use foundry_platform::validate::{Violations, mask};
use foundry_proto::foundry::delivery::v1::{
    self as pb, workstream_service_server::WorkstreamService,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    SERVICE, SHORT_DESCRIPTION, found, long_text, position, program, workstream_not_found,
};
use crate::domain::{
    NewWorkstream, ProgramId, Workstream, WorkstreamChange, WorkstreamId, WorkstreamPath,
};
use crate::store::{self, Lock};

/// Handlers of `WorkstreamService`.
#[derive(Clone, Debug)]
pub struct Workstreams(pub Arc<State>);

const RESOURCE: &str = "delivery.workstream";

pub fn workstream_to_proto(w: &Workstream) -> pb::Workstream {
    pb::Workstream {
        id: w.id.to_string(),
        program_id: w.program_id.to_string(),
        name: w.name.clone(),
        description: w.description.clone(),
        position: w.position,
        created_by: w.created_by.to_string(),
        create_time: Some(timestamp(w.created_at)),
        update_time: Some(timestamp(w.updated_at)),
        etag: etag(w.version),
    }
}

/// A `CreateWorkstreamRequest` as a [`NewWorkstream`] and its request id.
fn parse_create(req: &pb::CreateWorkstreamRequest) -> Result<(NewWorkstream, Option<Uuid>), Error> {
    let empty = pb::Workstream::default();
    let w = req.workstream.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("workstream.program_id", &w.program_id);
    let name = v.text("workstream.name", &w.name, 1, 200);
    let description = long_text(
        &mut v,
        "workstream.description",
        &w.description,
        0,
        SHORT_DESCRIPTION,
    );
    let position = position(&mut v, "workstream.position", w.position, true);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewWorkstream {
                program_id: program_id?,
                name: name?,
                description: description?,
                position: position?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateWorkstreamRequest` as the workstream's id and the changes its
/// mask names.
fn parse_update(
    req: &pb::UpdateWorkstreamRequest,
) -> Result<(WorkstreamId, Vec<WorkstreamChange>), Error> {
    let empty = pb::Workstream::default();
    let w = req.workstream.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let id = v.id_of("workstream.id", &w.id);
    let mut changes = Vec::new();
    for path in mask::<WorkstreamPath>(&mut v, req.update_mask.as_ref()) {
        changes.push(match path {
            WorkstreamPath::Name => v
                .text("workstream.name", &w.name, 1, 200)
                .map(WorkstreamChange::Name),
            WorkstreamPath::Description => long_text(
                &mut v,
                "workstream.description",
                &w.description,
                0,
                SHORT_DESCRIPTION,
            )
            .map(WorkstreamChange::Description),
            WorkstreamPath::Position => position(&mut v, "workstream.position", w.position, false)
                .flatten()
                .map(WorkstreamChange::Position),
        });
    }
    v.finish_with(|| Some((id?, changes.into_iter().collect::<Option<Vec<_>>>()?)))
}

/// A workstream the caller may see, with `lock`.
async fn visible_workstream(
    tx: &mut Tx,
    call: &Call,
    id: WorkstreamId,
    lock: Lock,
) -> Result<Workstream, Error> {
    found(
        store::get_workstream(tx, call.org_id, id, lock).await?,
        &call.caller,
        |w| w.program_id.uuid(),
        workstream_not_found,
    )
}

#[tonic::async_trait]
impl WorkstreamService for Workstreams {
    #[tracing::instrument(skip_all)]
    async fn create_workstream(
        &self,
        req: Request<pb::CreateWorkstreamRequest>,
    ) -> Result<Response<pb::Workstream>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (new, request_id) = parse_create(req.get_ref())?;
        let key = idempotency::Key::of(call.org_id, "CreateWorkstream", request_id, req.get_ref());
        let mut tx = match idempotency::begin(self.0.db.tenant(call.org_id).await?, key).await? {
            Begun::Replay(previous) => return Ok(Response::new(previous)),
            Begun::New(tx) => tx,
        };
        program(
            &mut tx,
            &call.caller,
            call.org_id,
            new.program_id.uuid(),
            Lock::KeyShare,
        )
        .await?;
        let workstream =
            store::insert_workstream(&mut tx, call.org_id, &new, call.principal_id()).await?;
        call.actor
            .event("delivery.workstream.create", RESOURCE, workstream.id)
            .project(Some(workstream.program_id.uuid()))
            .created(&workstream)
            .record(&mut tx)
            .await?;
        let out = workstream_to_proto(&workstream);
        tx.finish(&out).await?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_workstream(
        &self,
        req: Request<pb::GetWorkstreamRequest>,
    ) -> Result<Response<pb::Workstream>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let workstream = visible_workstream(&mut tx, &call, id, Lock::None).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(workstream_to_proto(&workstream)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_workstreams(
        &self,
        req: Request<pb::ListWorkstreamsRequest>,
    ) -> Result<Response<pb::ListWorkstreamsResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let program_id: ProgramId =
            Violations::require_id("program_id", &req.program_id).map(Id::from_uuid)?;
        let page = self.0.pages.parse_keyed(
            req.page_size,
            &req.page_token,
            &format!("program={program_id}"),
        )?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        program(
            &mut tx,
            &call.caller,
            call.org_id,
            program_id.uuid(),
            Lock::None,
        )
        .await?;
        let mut workstreams = store::list_workstreams(
            &mut tx,
            call.org_id,
            program_id,
            page.after_key.zip(page.after),
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish_keyed(&page, &mut workstreams, |w| {
            (i64::from(w.position), w.id.uuid())
        });
        Ok(Response::new(pb::ListWorkstreamsResponse {
            workstreams: workstreams.iter().map(workstream_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_workstream(
        &self,
        req: Request<pb::UpdateWorkstreamRequest>,
    ) -> Result<Response<pb::Workstream>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, changes) = parse_update(req.get_ref())?;
        let etag = req
            .get_ref()
            .workstream
            .as_ref()
            .map_or("", |w| w.etag.as_str());
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let before = visible_workstream(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
        check_etag(etag, before.version, "workstream")?;
        let mut workstream = before.clone();
        workstream.apply(changes);
        let workstream = store::update_workstream(&mut tx, call.org_id, &workstream).await?;
        call.actor
            .event("delivery.workstream.update", RESOURCE, id)
            .project(Some(workstream.program_id.uuid()))
            .diff(&before, &workstream)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(workstream_to_proto(&workstream)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_workstream(
        &self,
        req: Request<pb::DeleteWorkstreamRequest>,
    ) -> Result<Response<()>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let workstream = visible_workstream(&mut tx, &call, id, Lock::Update).await?;
        check_etag(&req.get_ref().etag, workstream.version, "workstream")?;
        let removed = store::delete_workstream(&mut tx, call.org_id, id).await?;
        call.actor
            .event("delivery.workstream.delete", RESOURCE, id)
            .project(Some(workstream.program_id.uuid()))
            .removed(&workstream)
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
