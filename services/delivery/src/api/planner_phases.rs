//! `PlannerPhaseService`.

use std::sync::Arc;

use foundry_platform::convert::opt_timestamp;
use foundry_platform::rpc::Served;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::delivery::v1 as pb;
use foundry_proto::service::delivery_v1 as svc;
use foundry_resource::{Create, Delete, Update, stamped};

use crate::State;
use crate::api::{Listed, list, standard};
use crate::api::{Order, PathOf, Wire, position, short_description};
use crate::domain::Program;
use crate::domain::{
    NewPlannerPhase, PlannerPhase, PlannerPhaseChange, PlannerPhasePath, check_phase_dates,
};

impl Wire for PlannerPhase {
    type Message = pb::PlannerPhase;

    fn to_proto(&self) -> pb::PlannerPhase {
        let f = &self.fields;
        pb::PlannerPhase {
            program_id: f.program_id.to_string(),
            name: f.name.clone(),
            description: f.description.clone(),
            position: f.position,
            start_time: opt_timestamp(f.start_time),
            end_time: opt_timestamp(f.end_time),
            ..stamped(self.id, &self.stamp)
        }
    }

    fn parse(v: &mut Violations, p: &pb::PlannerPhase) -> Option<NewPlannerPhase> {
        let program_id = v.id_of("planner_phase.program_id", &p.program_id);
        let name = name(v, &p.name);
        let description = short_description(v, "planner_phase.description", &p.description);
        let position = position(v, "planner_phase.position", p.position, true);
        let start_time = v.opt_time("planner_phase.start_time", p.start_time.as_ref());
        let end_time = v.opt_time("planner_phase.end_time", p.end_time.as_ref());
        if let (Some(start), Some(end)) = (start_time, end_time)
            && let Err(e) = check_phase_dates(start, end)
        {
            v.add(e.field.unwrap_or_default(), e.message);
        }
        Some(NewPlannerPhase {
            program_id: program_id?,
            name: name?,
            description: description?,
            position: position?,
            start_time: start_time?,
            end_time: end_time?,
        })
    }

    fn change(v: &mut Violations, path: PathOf<Self>, p: &Self::Message) -> Option<Self::Change> {
        match path {
            PlannerPhasePath::Name => name(v, &p.name).map(PlannerPhaseChange::Name),
            PlannerPhasePath::Description => {
                short_description(v, "planner_phase.description", &p.description)
                    .map(PlannerPhaseChange::Description)
            }
            // No appending here: a position is 1.. (never `Some(None)`).
            PlannerPhasePath::Position => position(v, "planner_phase.position", p.position, false)
                .flatten()
                .map(PlannerPhaseChange::Position),
            // Unset clears the date.
            PlannerPhasePath::StartTime => v
                .opt_time("planner_phase.start_time", p.start_time.as_ref())
                .map(PlannerPhaseChange::StartTime),
            PlannerPhasePath::EndTime => v
                .opt_time("planner_phase.end_time", p.end_time.as_ref())
                .map(PlannerPhaseChange::EndTime),
        }
    }
}

fn name(v: &mut Violations, name: &str) -> Option<String> {
    v.text("planner_phase.name", name, 1, 200)
}

/// Its program is all there is to check (`Resource::WITHIN`): its insert
/// does.
impl Create for PlannerPhase {
    fn checks(_: &NewPlannerPhase) -> bool {
        false
    }
}

impl Update for PlannerPhase {}

impl Delete for PlannerPhase {}

impl Listed for PlannerPhase {
    fn order() -> Order<Self> {
        Order::ByKey(|p| (i64::from(p.fields.position), p.id.uuid()))
    }
}

/// `PlannerPhaseService`.
pub(crate) fn service(state: &Arc<State>) -> Served<svc::PlannerPhaseService> {
    standard::<PlannerPhase, _>(state)
        .call(list::<PlannerPhase, Program, _, pb::ListPlannerPhasesRequest>)
        .complete()
}
