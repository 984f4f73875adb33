//! `GoalService`.

use std::sync::Arc;

use foundry_domain::Id;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::{opt_timestamp, timestamp};
use foundry_platform::db::{Tx, check_etag, etag};
use foundry_platform::idempotency::{self, Begun};
use foundry_platform::validate::{Violations, mask};
use foundry_proto::foundry::delivery::v1::{self as pb, goal_service_server::GoalService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{LONG_DESCRIPTION, SERVICE, found, goal_not_found, long_text, program};
use crate::domain::{Goal, GoalChange, GoalId, GoalPath, GoalStatus, NewGoal};
use crate::store::{self, Lock};

/// Handlers of `GoalService`.
#[derive(Clone, Debug)]
pub struct Goals(pub Arc<State>);

const RESOURCE: &str = "delivery.goal";
const MAX_TARGET_METRIC: usize = 2_000;

pub fn goal_to_proto(g: &Goal) -> pb::Goal {
    pb::Goal {
        id: g.id.to_string(),
        program_id: g.program_id.to_string(),
        title: g.title.clone(),
        description: g.description.clone(),
        target_metric: g.target_metric.clone(),
        target_time: opt_timestamp(g.target_at),
        status: pb::GoalStatus::from(g.status) as i32,
        owner_user_id: g.owner_user_id.map(|x| x.to_string()).unwrap_or_default(),
        created_by: g.created_by.to_string(),
        create_time: Some(timestamp(g.created_at)),
        update_time: Some(timestamp(g.updated_at)),
        etag: etag(g.version),
    }
}

/// A `CreateGoalRequest` as a [`NewGoal`] and its request id.
fn parse_create(req: &pb::CreateGoalRequest) -> Result<(NewGoal, Option<Uuid>), Error> {
    let empty = pb::Goal::default();
    let g = req.goal.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("goal.program_id", &g.program_id);
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
    let owner_user_id = v.maybe_id("goal.owner_user_id", &g.owner_user_id);
    let request_id = v.maybe_request_id(&req.request_id);
    v.finish_with(|| {
        Some((
            NewGoal {
                program_id: program_id?,
                title: title?,
                description: description?,
                target_metric: target_metric?,
                target_at: target_at?,
                status: status?,
                owner_user_id: owner_user_id?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateGoalRequest` as the goal's id and the changes its mask names.
fn parse_update(req: &pb::UpdateGoalRequest) -> Result<(GoalId, Vec<GoalChange>), Error> {
    let empty = pb::Goal::default();
    let g = req.goal.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let id = v.id_of("goal.id", &g.id);
    let mut changes = Vec::new();
    for path in mask::<GoalPath>(&mut v, req.update_mask.as_ref()) {
        changes.push(match path {
            GoalPath::Title => v
                .text("goal.title", &g.title, 1, 500)
                .map(GoalChange::Title),
            GoalPath::Description => long_text(
                &mut v,
                "goal.description",
                &g.description,
                0,
                LONG_DESCRIPTION,
            )
            .map(GoalChange::Description),
            GoalPath::TargetMetric => long_text(
                &mut v,
                "goal.target_metric",
                &g.target_metric,
                0,
                MAX_TARGET_METRIC,
            )
            .map(GoalChange::TargetMetric),
            // Unset clears the target date.
            GoalPath::TargetTime => v
                .opt_time("goal.target_time", g.target_time.as_ref())
                .map(GoalChange::TargetTime),
            GoalPath::Status => v
                .enum_value::<GoalStatus>("goal.status", g.status)
                .map(GoalChange::Status),
            // Empty leaves the goal unowned.
            GoalPath::OwnerUserId => v
                .maybe_id("goal.owner_user_id", &g.owner_user_id)
                .map(GoalChange::OwnerUserId),
        });
    }
    v.finish_with(|| Some((id?, changes.into_iter().collect::<Option<Vec<_>>>()?)))
}

/// A goal the caller may see, with `lock`.
async fn visible_goal(tx: &mut Tx, call: &Call, id: GoalId, lock: Lock) -> Result<Goal, Error> {
    found(
        store::get_goal(tx, call.org_id, id, lock).await?,
        &call.caller,
        |g| g.program_id.uuid(),
        goal_not_found,
    )
}

#[tonic::async_trait]
impl GoalService for Goals {
    #[tracing::instrument(skip_all)]
    async fn create_goal(
        &self,
        req: Request<pb::CreateGoalRequest>,
    ) -> Result<Response<pb::Goal>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (new, request_id) = parse_create(req.get_ref())?;
        let key = idempotency::Key::of(call.org_id, "CreateGoal", request_id, req.get_ref());
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
        let goal = store::insert_goal(&mut tx, call.org_id, &new, call.principal_id()).await?;
        call.actor
            .event("delivery.goal.create", RESOURCE, goal.id)
            .project(Some(goal.program_id.uuid()))
            .created(&goal)
            .record(&mut tx)
            .await?;
        let out = goal_to_proto(&goal);
        tx.finish(&out).await?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(skip_all)]
    async fn get_goal(
        &self,
        req: Request<pb::GetGoalRequest>,
    ) -> Result<Response<pb::Goal>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let goal = visible_goal(&mut tx, &call, id, Lock::None).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(goal_to_proto(&goal)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_goals(
        &self,
        req: Request<pb::ListGoalsRequest>,
    ) -> Result<Response<pb::ListGoalsResponse>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let program_id = v.id_of("program_id", &req.program_id);
        let status: Option<GoalStatus> = v.opt_enum_value("status", req.status);
        let program_id = v.finish_with(|| program_id)?;
        let page = self.0.pages.parse(
            req.page_size,
            &req.page_token,
            &format!("program={program_id};status={}", req.status),
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
        let mut goals = store::list_goals(
            &mut tx,
            call.org_id,
            program_id,
            status,
            page.after,
            page.limit(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut goals, |g| g.id.uuid());
        Ok(Response::new(pb::ListGoalsResponse {
            goals: goals.iter().map(goal_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_goal(
        &self,
        req: Request<pb::UpdateGoalRequest>,
    ) -> Result<Response<pb::Goal>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let (id, changes) = parse_update(req.get_ref())?;
        let etag = req.get_ref().goal.as_ref().map_or("", |g| g.etag.as_str());
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let before = visible_goal(&mut tx, &call, id, Lock::NoKeyUpdate).await?;
        check_etag(etag, before.version, "goal")?;
        let mut goal = before.clone();
        goal.apply(changes).map_err(Error::from)?;
        let goal = store::update_goal(&mut tx, call.org_id, &goal).await?;
        call.actor
            .event("delivery.goal.update", RESOURCE, id)
            .project(Some(goal.program_id.uuid()))
            .diff(&before, &goal)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(goal_to_proto(&goal)))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_goal(
        &self,
        req: Request<pb::DeleteGoalRequest>,
    ) -> Result<Response<()>, Status> {
        let call = Call::of(SERVICE, &req)?;
        let id = Violations::require_id("id", &req.get_ref().id).map(Id::from_uuid)?;
        let mut tx = self.0.db.tenant(call.org_id).await?;
        let goal = visible_goal(&mut tx, &call, id, Lock::Update).await?;
        check_etag(&req.get_ref().etag, goal.version, "goal")?;
        store::delete_goal(&mut tx, call.org_id, id).await?;
        call.actor
            .event("delivery.goal.delete", RESOURCE, id)
            .project(Some(goal.program_id.uuid()))
            .removed(&goal)
            .record(&mut tx)
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(()))
    }
}
