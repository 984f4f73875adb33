//! `GoalService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::opt_timestamp;
use foundry_platform::db::Tx;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1::{self as pb, goal_service_server::GoalService};
use foundry_resource::{Create, Delete, Update, WireStamp};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::State;
use crate::api::{
    Order, Paging, SERVICE, create_one, delete_one, enum_filter, get_one, hold, list_children,
    long_description, long_text, parse_changes, title, update_one,
};
use crate::domain::{Goal, GoalChange, GoalId, GoalPath, GoalStatus, NewGoal};
use crate::domain::{Program, ProgramId};

/// Handlers of `GoalService`.
#[derive(Clone, Debug)]
pub struct Goals(pub Arc<State>);

const MAX_TARGET_METRIC: usize = 2_000;

pub fn goal_to_proto(g: &Goal) -> pb::Goal {
    let w = WireStamp::from(&g.stamp);
    pb::Goal {
        id: g.id.to_string(),
        program_id: g.fields.program_id.to_string(),
        title: g.fields.title.clone(),
        description: g.fields.description.clone(),
        target_metric: g.fields.target_metric.clone(),
        target_time: opt_timestamp(g.fields.target_time),
        status: pb::GoalStatus::from(g.fields.status) as i32,
        owner_user_id: g
            .fields
            .owner_user_id
            .map(|x| x.to_string())
            .unwrap_or_default(),
        created_by: w.created_by,
        create_time: w.create_time,
        update_time: w.update_time,
        etag: w.etag,
    }
}

/// A `CreateGoalRequest` as a [`NewGoal`] and its request id.
fn parse_create(req: &pb::CreateGoalRequest) -> Result<(NewGoal, Option<Uuid>), Error> {
    let empty = pb::Goal::default();
    let g = req.goal.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let program_id = v.id_of("goal.program_id", &g.program_id);
    let title = title(&mut v, "goal.title", &g.title);
    let description = long_description(&mut v, "goal.description", &g.description);
    let target_metric = long_text(
        &mut v,
        "goal.target_metric",
        &g.target_metric,
        0,
        MAX_TARGET_METRIC,
    );
    let target_time = v.opt_time("goal.target_time", g.target_time.as_ref());
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
                target_time: target_time?,
                status: status?,
                owner_user_id: owner_user_id?,
            },
            request_id?,
        ))
    })
}

/// An `UpdateGoalRequest` as the goal's id and the changes its mask names.
fn parse_update(req: &pb::UpdateGoalRequest) -> Result<(GoalId, String, Vec<GoalChange>), Error> {
    let empty = pb::Goal::default();
    let g = req.goal.as_ref().unwrap_or(&empty);
    parse_changes(
        "goal",
        (&g.id, &g.etag),
        req.update_mask.as_ref(),
        |v, path| match path {
            GoalPath::Title => title(v, "goal.title", &g.title).map(GoalChange::Title),
            GoalPath::Description => {
                long_description(v, "goal.description", &g.description).map(GoalChange::Description)
            }
            GoalPath::TargetMetric => long_text(
                v,
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
        },
    )
}

#[async_trait]
impl Create for Goal {
    /// The program is visible and held (`FOR KEY SHARE`) until commit.
    async fn check_new(new: &NewGoal, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        hold::<Program>(tx, call, new.program_id).await
    }
}

impl Update for Goal {}

impl Delete for Goal {}

#[tonic::async_trait]
impl GoalService for Goals {
    #[tracing::instrument(skip_all)]
    async fn create_goal(
        &self,
        req: Request<pb::CreateGoalRequest>,
    ) -> Result<Response<pb::Goal>, Status> {
        create_one(&self.0, &req, "CreateGoal", parse_create, goal_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn get_goal(
        &self,
        req: Request<pb::GetGoalRequest>,
    ) -> Result<Response<pb::Goal>, Status> {
        get_one(&self.0, &req, &req.get_ref().id, goal_to_proto).await
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
        let filters = [enum_filter::<GoalStatus>(&mut v, "status", req.status)];
        let program_id: ProgramId = v.finish_with(|| program_id)?;
        let paging = Paging::under("program", program_id, req.page_size, &req.page_token);
        let parent = ("program_id", program_id);
        let (rows, next_page_token) = list_children::<Goal, Program>(
            &self.0,
            &call,
            paging,
            Order::newest(),
            parent,
            &filters,
        )
        .await?;
        Ok(Response::new(pb::ListGoalsResponse {
            goals: rows.iter().map(goal_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_goal(
        &self,
        req: Request<pb::UpdateGoalRequest>,
    ) -> Result<Response<pb::Goal>, Status> {
        update_one(&self.0, &req, parse_update, goal_to_proto).await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_goal(
        &self,
        req: Request<pb::DeleteGoalRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        delete_one::<Goal, _, _>(&self.0, &req, &r.id, &r.etag).await
    }
}
