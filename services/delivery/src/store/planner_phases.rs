//! Planner phases.

use foundry_resource::{Computed, Insert, Resource, Write};

use crate::domain::{NewPlannerPhase, PlannerPhase};

impl Resource for PlannerPhase {
    const KIND: &'static str = "delivery.planner_phase";
    const NAME: &'static str = "planner phase";
    const TABLE: &'static str = "planner_phases";
    const NOT_FOUND: &'static str = "PLANNER_PHASE_NOT_FOUND";
}

impl Insert for PlannerPhase {
    type New = NewPlannerPhase;
    const COMPUTED: &'static [Computed] = &[Computed::Appended {
        scope: "program_id",
    }];
}

impl Write for PlannerPhase {}
