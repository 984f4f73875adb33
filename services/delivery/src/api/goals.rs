//! `GoalService`.

use std::sync::Arc;

use chrono::Utc;
use foundry_platform::Error;
use foundry_platform::convert::{opt_timestamp, timestamp};
use foundry_platform::db::{check_etag, etag, idempotency};
use foundry_platform::validate::{Violations, update_mask};
use foundry_proto::foundry::delivery::v1::{self as pb, goal_service_server::GoalService};
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{LONG_DESCRIPTION, actor, found, goal_not_found, long_text, program};
use crate::domain::{self, GoalStatus};
use crate::store::{self, GoalRow, Lock};

/// Handlers of `GoalService`.
#[derive(Clone, Debug)]
pub struct Goals(pub Arc<State>);

const RESOURCE: &str = "delivery.goal";
const MAX_TARGET_METRIC: usize = 2_000;

pub fn goal_to_proto(g: GoalRow) -> pb::Goal {
    pb::Goal {
        id: g.id.to_string(),
        program_id: g.program_id.to_string(),
        title: g.title,
        description: g.description,
        target_metric: g.target_metric,
        target_time: opt_timestamp(g.target_at),
        status: pb::GoalStatus::from(GoalStatus::from_db(&g.status)) as i32,
        owner_user_id: g.owner_user_id.map(|x| x.to_string()).unwrap_or_default(),
        created_by: g.created_by.to_string(),
        create_time: Some(timestamp(g.created_at)),
        update_time: Some(timestamp(g.updated_at)),
        etag: etag(g.version),
    }
}

#[tonic::async_trait]
impl GoalService for Goals {
    #[tracing::instrument(skip_all)]
    async fn create_goal(
        &self,
        req: Request<pb::CreateGoalRequest>,
    ) -> Result<Response<pb::Goal>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let g = req.goal.unwrap_or_default();
        let mut v = Violations::new();
        let program_id = v.id("goal.program_id", &g.program_id);
        let title = v.text("goal.title", &g.title, 1, 500);
        let description = long_text(
            &mut v,
            "goal.description",
            &g.description,
            0,
            LONG_DESCRIPTION,
        );
        let target_metric = long_text(
            &mut v,
            "goal.target_metric",
            &g.target_metric,
            0,
            MAX_TARGET_METRIC,
        );
        let target_at = v.opt_time("goal.target_time", g.target_time.as_ref());
        let status = match g.status {
            0 => Some(GoalStatus::Proposed),
            s => match v.enum_value::<GoalStatus>("goal.status", s) {
                Some(s) if s.is_initial() => Some(s),
                Some(_) => {
                    v.add("goal.status", "a new goal is PROPOSED or ACTIVE");
                    None
                }
                None => None,
            },
        };
        let owner_user_id = v.opt_id("goal.owner_user_id", &g.owner_user_id);
        let request_id = v.request_id(&req.request_id);
        v.finish()?;
        let (
            Some(program_id),
            Some(title),
            Some(description),
            Some(target_metric),
            Some(target_at),
            Some(status),
        ) = (
            program_id,
            title,
            description,
            target_metric,
            target_at,
            status,
        )
        else {
            return Err(Error::invalid_field("goal", "is required").into());
        };

        let mut tx = self.0.db.tenant(org_id).await?;
        if let Some(rid) = request_id
            && let idempotency::Claim::Replay(prev) =
                idempotency::claim::<pb::Goal>(&mut tx, org_id, "CreateGoal", rid).await?
        {
            return Ok(Response::new(prev));
        }
        program(&mut tx, &caller, org_id, program_id, Lock::KeyShare).await?;
        let now = Utc::now();
        let row = store::insert_goal(
            &mut tx,
            &GoalRow {
                org_id,
                id: Uuid::nil(),
                program_id,
                title,
                description,
                target_metric,
                target_at,
                status: status.as_str().to_owned(),
                owner_user_id,
                created_by: caller.principal_id(),
                version: 1,
                created_at: now,
                updated_at: now,
            },
        )
        .await?;
        actor
            .event("delivery.goal.create", RESOURCE, row.id)
            .project(Some(program_id))
            .set("title", &row.title)
            .set("description", &row.description)
            .set("target_metric", &row.target_metric)
            .set("target_time", row.target_at)
            .set("status", &row.status)
            .set("owner_user_id", row.owner_user_id)
            .record(&mut tx)
            .await?;
        let out = goal_to_proto(row);
        if let Some(rid) = request_id {
            idempotency::complete(&mut tx, org_id, "CreateGoal", rid, &out).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_goal(
        &self,
        req: Request<pb::GetGoalRequest>,
    ) -> Result<Response<pb::Goal>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_goal(&mut tx, org_id, id, Lock::None).await?,
            &caller,
            |g| g.program_id,
            goal_not_found,
        )?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(goal_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_goals(
        &self,
        req: Request<pb::ListGoalsRequest>,
    ) -> Result<Response<pb::ListGoalsResponse>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.id("program_id", &req.program_id);
        let status: Option<GoalStatus> = v.opt_enum_value("status", req.status);
        v.finish()?;
        let Some(program_id) = program_id else {
            return Err(Error::invalid_field("program_id", "is required").into());
        };
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!("program={program_id};status={}", req.status),
        )?;
        let mut tx = self.0.db.tenant(org_id).await?;
        program(&mut tx, &caller, org_id, program_id, Lock::None).await?;
        let mut rows = store::list_goals(
            &mut tx,
            org_id,
            program_id,
            status.map(GoalStatus::as_str),
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |g| g.id);
        Ok(Response::new(pb::ListGoalsResponse {
            goals: rows.into_iter().map(goal_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_goal(
        &self,
        req: Request<pb::UpdateGoalRequest>,
    ) -> Result<Response<pb::Goal>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let req = req.into_inner();
        let g = req.goal.unwrap_or_default();
        let mut v = Violations::new();
        let id = v.id("goal.id", &g.id);
        let paths = update_mask(
            &mut v,
            req.update_mask.as_ref(),
            &[
                "title",
                "description",
                "target_metric",
                "target_time",
                "status",
                "owner_user_id",
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
        let mut title = None;
        let mut description = None;
        let mut target_metric = None;
        let mut target_at = None;
        let mut status = None;
        let mut owner_user_id = None;
        for path in &paths {
            match *path {
                "title" => title = v.text("goal.title", &g.title, 1, 500),
                "description" => {
                    description = long_text(
                        &mut v,
                        "goal.description",
                        &g.description,
                        0,
                        LONG_DESCRIPTION,
                    )
                }
                "target_metric" => {
                    target_metric = long_text(
                        &mut v,
                        "goal.target_metric",
                        &g.target_metric,
                        0,
                        MAX_TARGET_METRIC,
                    )
                }
                // Unset clears the target date.
                "target_time" => target_at = v.opt_time("goal.target_time", g.target_time.as_ref()),
                "status" => status = v.enum_value::<GoalStatus>("goal.status", g.status),
                // Empty leaves the goal unowned.
                _ => owner_user_id = Some(v.opt_id("goal.owner_user_id", &g.owner_user_id)),
            }
        }
        v.finish()?;
        let Some(id) = id else {
            return Err(Error::invalid_field("goal.id", "is required").into());
        };
        let mut tx = self.0.db.tenant(org_id).await?;
        let mut row = found(
            store::get_goal(&mut tx, org_id, id, Lock::NoKeyUpdate).await?,
            &caller,
            |g| g.program_id,
            goal_not_found,
        )?;
        check_etag(&g.etag, row.version, "goal")?;
        let before = row.clone();
        if let Some(x) = status {
            domain::change_goal_status(GoalStatus::from_db(&row.status), x).map_err(Error::from)?;
            row.status = x.as_str().to_owned();
        }
        if let Some(x) = title {
            row.title = x;
        }
        if let Some(x) = description {
            row.description = x;
        }
        if let Some(x) = target_metric {
            row.target_metric = x;
        }
        if let Some(x) = target_at {
            row.target_at = x;
        }
        if let Some(x) = owner_user_id {
            row.owner_user_id = x;
        }
        let row = store::update_goal(&mut tx, &row).await?;
        actor
            .event("delivery.goal.update", RESOURCE, id)
            .project(Some(row.program_id))
            .change("title", &before.title, &row.title)
            .change("description", &before.description, &row.description)
            .change("target_metric", &before.target_metric, &row.target_metric)
            .change("target_time", before.target_at, row.target_at)
            .change("status", &before.status, &row.status)
            .change("owner_user_id", before.owner_user_id, row.owner_user_id)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(goal_to_proto(row)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_goal(
        &self,
        req: Request<pb::DeleteGoalRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = caller(&req)?;
        let org_id = caller.org_id()?;
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let mut tx = self.0.db.tenant(org_id).await?;
        let row = found(
            store::get_goal(&mut tx, org_id, id, Lock::Update).await?,
            &caller,
            |g| g.program_id,
            goal_not_found,
        )?;
        check_etag(&req.get_ref().etag, row.version, "goal")?;
        store::delete_goal(&mut tx, org_id, id).await?;
        actor
            .event("delivery.goal.delete", RESOURCE, id)
            .project(Some(row.program_id))
            .change("title", &row.title, None::<()>)
            .change("status", &row.status, None::<()>)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}
