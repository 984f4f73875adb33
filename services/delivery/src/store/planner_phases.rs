//! Planner phases.

use foundry_resource::{Computed, Resource};

use crate::domain::{NewPlannerPhase, PlannerPhase};

impl Resource for PlannerPhase {
    type New = NewPlannerPhase;
    foundry_resource::names!("delivery", "planner_phase", "planner_phases");

    const COMPUTED: &'static [Computed] = &[Computed::Appended {
        scope: "program_id",
    }];
}
