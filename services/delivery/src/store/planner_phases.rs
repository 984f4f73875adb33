//! Planner phases.

use foundry_resource::{Computed, Resource, Within};

use crate::domain::{NewPlannerPhase, PlannerPhase};

impl Resource for PlannerPhase {
    type New = NewPlannerPhase;
    foundry_resource::names!("delivery", "planner_phase", "planner_phases");
    const WITHIN: Option<Within<NewPlannerPhase>> =
        Some(super::program_child(|n| n.program_id.uuid()));

    const COMPUTED: &'static [Computed] = &[Computed::Appended {
        scope: "program_id",
    }];
}
