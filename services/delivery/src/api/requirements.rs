//! `RequirementService`: requirements (here) and their dependency graph
//! (the handlers in [`super::dependencies`]).

use std::sync::Arc;

use foundry_domain::Id;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{
    self as pb, requirement_service_server::RequirementService,
};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::{
    LONG_DESCRIPTION, actor, criteria, dependencies, found, long_text, other_program, program,
    requirement_not_found, workstream_not_found,
};
use crate::domain::{Priority, RequirementStatus};
use crate::store::{self, Lock, NewRequirement, RequirementFilter, RequirementRow};

/// Handlers of `RequirementService`.
#[derive(Clone, Debug)]
pub struct Requirements(pub Arc<State>);

const RESOURCE: &str = "delivery.requirement";
const MAX_CRITERIA: usize = 100;

pub fn requirement_to_proto(r: RequirementRow) -> pb::Requirement {
    pb::Requirement {
        id: r.id.to_string(),
        program_id: r.program_id.to_string(),
        workstream_id: r.workstream_id.to_string(),
        title: r.title,
        description: r.description,
        priority: pb::RequirementPriority::from(Priority::from_db(&r.priority)) as i32,
        status: pb::RequirementStatus::from(RequirementStatus::from_db(&r.status)) as i32,
        acceptance_criteria: r.acceptance_criteria,
        batch: r.batch,
        created_by: r.created_by.to_string(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        etag: etag(r.version),
    }
}

/// An enum that defaults when unspecified (at creation).
fn or_default<E: TryFrom<i32>>(
    v: &mut Violations,
    field: &str,
    value: i32,
    default: E,
) -> Option<E> {
    if value == 0 {
        Some(default)
    } else {
        v.enum_value(field, value)
    }
}

#[tonic::async_trait]
impl RequirementService for Requirements {
    #[tracing::instrument(skip_all)]
    async fn create_requirement(
        &self,
        req: Request<pb::CreateRequirementRequest>,
    ) -> Result<Response<pb::Requirement>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let r = req.requirement.unwrap_or_default();
        let mut v = Violations::new();
        let workstream_id = v.id("requirement.workstream_id", &r.workstream_id);
        let title = v.text("requirement.title", &r.title, 1, 500);
        let description = long_text(
            &mut v,
            "requirement.description",
            &r.description,
            0,
            LONG_DESCRIPTION,
        );
        let priority = or_default(&mut v, "requirement.priority", r.priority, Priority::Medium);
        let status = or_default(
            &mut v,
            "requirement.status",
            r.status,
            RequirementStatus::Draft,
        );
        let criteria = criteria(
            &mut v,
            "requirement.acceptance_criteria",
            &r.acceptance_criteria,
            MAX_CRITERIA,
            2000,
        );
        let batch = v.text("requirement.batch", &r.batch, 0, 100);
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (
            Some(workstream_id),
            Some(title),
            Some(description),
            Some(priority),
            Some(status),
            Some(criteria),
            Some(batch),
        ) = (
            workstream_id,
            title,
            description,
            priority,
            status,
            criteria,
            batch,
        )
        else {
            return Err(Error::invalid_field("requirement", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::Requirement>(&mut tx, org_id, "CreateRequirement", rid)
                    .await?
        {
            return Ok(Response::new(prev));
        }
        let workstream = found(
            store::get_workstream(
                &mut tx,
                org_id,
                Id::from_uuid(workstream_id),
                Lock::KeyShare,
            )
            .await?,
            &caller,
            |w| w.program_id.uuid(),
            workstream_not_found,
        )?;
        let row = store::insert_requirement(
            &mut tx,
            NewRequirement {
                org_id,
                program_id: workstream.program_id.uuid(),
                workstream_id,
                title: &title,
                description: &description,
                priority: priority.as_str(),
                status: status.as_str(),
                acceptance_criteria: &criteria,
                batch: &batch,
                created_by: caller.principal_id(),
            },
        )
        .await?;
        actor
            .event("delivery.requirement.create", RESOURCE, row.id)
            .project(Some(row.program_id))
            .set("workstream_id", row.workstream_id)
            .set("title", &row.title)
            .set("description", &row.description)
            .set("priority", &row.priority)
            .set("status", &row.status)
            .set("acceptance_criteria", &row.acceptance_criteria)
            .set("batch", &row.batch)
            .record(&mut tx)
            .await?;
        let out = requirement_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateRequirement", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_requirement(
        &self,
        req: Request<pb::GetRequirementRequest>,
    ) -> Result<Response<pb::Requirement>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_requirement(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |r| r.program_id,
            requirement_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(requirement_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_requirements(
        &self,
        req: Request<pb::ListRequirementsRequest>,
    ) -> Result<Response<pb::ListRequirementsResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.opt_id("program_id", &req.program_id);
        let workstream_id = v.opt_id("workstream_id", &req.workstream_id);
        if req.program_id.is_empty() && req.workstream_id.is_empty() {
            v.add("program_id", "is required unless workstream_id is given");
        }
        let status: Option<RequirementStatus> = v.opt_enum_value("status", req.status);
        v.finish()?;
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!(
                "program={};workstream={};status={}",
                req.program_id, req.workstream_id, req.status
            ),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        // The parents named must exist and be visible; both named but
        // unrelated simply match nothing.
        if let Some(w) = workstream_id {
            found(
                store::get_workstream(&mut tx, org_id, Id::from_uuid(w), Lock::None).await?,
                &caller,
                |w| w.program_id.uuid(),
                workstream_not_found,
            )?;
        }
        if let Some(p) = program_id {
            program(&mut tx, &caller, org_id, p, Lock::None).await?;
        }
        let mut rows = store::list_requirements(
            &mut tx,
            org_id,
            RequirementFilter {
                program_id,
                workstream_id,
                status: status.map(RequirementStatus::as_str),
            },
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListRequirementsResponse {
            requirements: rows.into_iter().map(requirement_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_requirement(
        &self,
        req: Request<pb::UpdateRequirementRequest>,
    ) -> Result<Response<pb::Requirement>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let r = req.requirement.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("requirement.id", &r.id);
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &[
                "workstream_id",
                "title",
                "description",
                "priority",
                "status",
                "acceptance_criteria",
                "batch",
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
        let mut workstream_id = None;
        let mut title = None;
        let mut description = None;
        let mut priority: Option<Priority> = None;
        let mut status: Option<RequirementStatus> = None;
        let mut new_criteria = None;
        let mut batch = None;
        for path in &paths {
            match *path {
                "workstream_id" => {
                    workstream_id = v.id("requirement.workstream_id", &r.workstream_id)
                }
                "title" => title = v.text("requirement.title", &r.title, 1, 500),
                "description" => {
                    description = long_text(
                        &mut v,
                        "requirement.description",
                        &r.description,
                        0,
                        LONG_DESCRIPTION,
                    )
                }
                "priority" => priority = v.enum_value("requirement.priority", r.priority),
                "status" => status = v.enum_value("requirement.status", r.status),
                "acceptance_criteria" => {
                    new_criteria = criteria(
                        &mut v,
                        "requirement.acceptance_criteria",
                        &r.acceptance_criteria,
                        MAX_CRITERIA,
                        2000,
                    )
                }
                _ => batch = v.text("requirement.batch", &r.batch, 0, 100),
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("requirement.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = found(
            store::get_requirement(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |r| r.program_id,
            requirement_not_found,
        )?;
        check_etag(&r.etag, row.version, "requirement")?;
        let before = row.clone();
        if let Some(w) = workstream_id
            && w != row.workstream_id
        {
            let target = found(
                store::get_workstream(&mut tx, org_id, Id::from_uuid(w), Lock::KeyShare).await?,
                &caller,
                |w| w.program_id.uuid(),
                workstream_not_found,
            )?;
            if target.program_id.uuid() != row.program_id {
                return Err(other_program("workstream").into());
            }
            row.workstream_id = w;
        }
        if let Some(x) = title {
            row.title = x;
        }
        if let Some(x) = description {
            row.description = x;
        }
        if let Some(x) = priority {
            row.priority = x.as_str().to_owned();
        }
        if let Some(x) = status {
            row.status = x.as_str().to_owned();
        }
        if let Some(x) = new_criteria {
            row.acceptance_criteria = x;
        }
        if let Some(x) = batch {
            row.batch = x;
        }
        let row = store::update_requirement(&mut tx, &row).await?;
        actor
            .event("delivery.requirement.update", RESOURCE, id)
            .project(Some(row.program_id))
            .change("workstream_id", before.workstream_id, row.workstream_id)
            .change("title", &before.title, &row.title)
            .change("description", &before.description, &row.description)
            .change("priority", &before.priority, &row.priority)
            .change("status", &before.status, &row.status)
            .change(
                "acceptance_criteria",
                &before.acceptance_criteria,
                &row.acceptance_criteria,
            )
            .change("batch", &before.batch, &row.batch)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(requirement_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_requirement(
        &self,
        req: Request<pb::DeleteRequirementRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_requirement(&mut tx, org_id, id, Lock::Update).await?,
            &caller,
            |r| r.program_id,
            requirement_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "requirement")?;
        let removed = store::delete_requirements(&mut tx, org_id, &[id]).await?;
        actor
            .event("delivery.requirement.delete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("title", &row.title, None::<()>)
            .change("workstream_id", row.workstream_id, None::<()>)
            .set(
                "removed",
                serde_json::json!({
                    "dependencies": removed.dependencies,
                    "tasks_detached": removed.tasks_detached,
                }),
            )
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }

    async fn add_requirement_dependency(
        &self,
        req: Request<pb::AddRequirementDependencyRequest>,
    ) -> Result<Response<pb::RequirementDependency>, Status> {
        dependencies::add(&self.0, req).await
    }

    async fn remove_requirement_dependency(
        &self,
        req: Request<pb::RemoveRequirementDependencyRequest>,
    ) -> Result<Response<()>, Status> {
        dependencies::remove(&self.0, req).await
    }

    async fn list_requirement_dependencies(
        &self,
        req: Request<pb::ListRequirementDependenciesRequest>,
    ) -> Result<Response<pb::ListRequirementDependenciesResponse>, Status> {
        dependencies::list(&self.0, req).await
    }

    async fn get_program_plan(
        &self,
        req: Request<pb::GetProgramPlanRequest>,
    ) -> Result<Response<pb::ProgramPlan>, Status> {
        dependencies::plan(&self.0, req).await
    }
}
