//! `GoalService`.

use std::sync::Arc;

use async_trait::async_trait;
use foundry_outbox::Call;
use foundry_platform::Error;
use foundry_platform::convert::opt_timestamp;
use foundry_platform::db::Tx;
use foundry_platform::rpc::Served;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{Create, Delete, Update, stamped};

use crate::State;
use crate::api::{
    In, PathOf, Reply, Wire, enum_filter, list_in_program, long_description, long_text, title,
};
use crate::api::{members, standard};
use crate::domain::{Goal, GoalChange, GoalPath, GoalStatus, NewGoal};

impl Wire for Goal {
    type Message = pb::Goal;

    fn to_proto(&self) -> pb::Goal {
        let f = &self.fields;
        pb::Goal {
            program_id: f.program_id.to_string(),
            title: f.title.clone(),
            description: f.description.clone(),
            target_metric: f.target_metric.clone(),
            target_time: opt_timestamp(f.target_time),
            status: pb::GoalStatus::from(f.status) as i32,
            owner_user_id: f.owner_user_id.map(|x| x.to_string()).unwrap_or_default(),
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, g: &pb::Goal) -> Option<NewGoal> {
        let program_id = v.id_of("goal.program_id", &g.program_id);
        let title = title(v, "goal.title", &g.title);
        let description = long_description(v, "goal.description", &g.description);
        let target_metric = target_metric(v, &g.target_metric);
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
        let owner_user_id = v.maybe_id(OWNER, &g.owner_user_id);
        Some(NewGoal {
            program_id: program_id?,
            title: title?,
            description: description?,
            target_metric: target_metric?,
            target_time: target_time?,
            status: status?,
            owner_user_id: owner_user_id?,
        })
    }

    fn change(v: &mut Violations, path: PathOf<Self>, g: &Self::Message) -> Option<Self::Change> {
        match path {
            GoalPath::Title => title(v, "goal.title", &g.title).map(GoalChange::Title),
            GoalPath::Description => {
                long_description(v, "goal.description", &g.description).map(GoalChange::Description)
            }
            GoalPath::TargetMetric => {
                target_metric(v, &g.target_metric).map(GoalChange::TargetMetric)
            }
            // Unset clears the target date.
            GoalPath::TargetTime => v
                .opt_time("goal.target_time", g.target_time.as_ref())
                .map(GoalChange::TargetTime),
            GoalPath::Status => v
                .enum_value::<GoalStatus>("goal.status", g.status)
                .map(GoalChange::Status),
            // Empty leaves the goal unowned.
            GoalPath::OwnerUserId => v
                .maybe_id(OWNER, &g.owner_user_id)
                .map(GoalChange::OwnerUserId),
        }
    }
}

const MAX_TARGET_METRIC: usize = 2_000;

/// A goal's target metric: up to [`MAX_TARGET_METRIC`] characters.
fn target_metric(v: &mut Violations, value: &str) -> Option<String> {
    long_text(v, "goal.target_metric", value, 0, MAX_TARGET_METRIC)
}

#[async_trait]
impl Create for Goal {
    fn checks(new: &NewGoal) -> bool {
        new.owner_user_id.is_some()
    }

    /// The owner is a member (the program is held: `Resource::WITHIN`).
    async fn check_new(new: &NewGoal, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        members::members_only(tx, call, members::owned(OWNER, new.owner_user_id, None)).await
    }
}

#[async_trait]
impl Update for Goal {
    /// A new owner must be a member.
    async fn check(&self, before: &Goal, tx: &mut Tx, call: &Call) -> Result<(), Error> {
        let (owner, held) = (self.fields.owner_user_id, before.fields.owner_user_id);
        members::members_only(tx, call, members::owned(OWNER, owner, held)).await
    }
}

/// The owner's field.
const OWNER: &str = "goal.owner_user_id";

impl Delete for Goal {}

/// `GoalService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::GoalService> {
    standard::<Goal, _>(state).call(list_goals).complete()
}

async fn list_goals(c: In<pb::ListGoalsRequest>) -> Reply<pb::ListGoalsResponse> {
    let r = &c.req;
    let status = |v: &mut Violations| vec![enum_filter::<GoalStatus>(v, "status", r.status)];
    list_in_program::<Goal, _, _>(&c, &r.program_id, status).await
}
