//! Planner phases.

use foundry_resource::{Computed, Resource};

use crate::domain::{NewPlannerPhase, PlannerPhase};

impl Resource for PlannerPhase {
    type New = NewPlannerPhase;
    const KIND: &'static str = "delivery.planner_phase";
    const NAME: &'static str = "planner phase";
    const TABLE: &'static str = "planner_phases";
    const NOT_FOUND: &'static str = "PLANNER_PHASE_NOT_FOUND";

    const COMPUTED: &'static [Computed] = &[Computed::Appended {
        scope: "program_id",
    }];
}
