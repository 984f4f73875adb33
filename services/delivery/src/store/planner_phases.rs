//! Planner phases.

use foundry_resource::{Insert, Resource, Write};

use crate::domain::{NewPlannerPhase, PlannerPhase};

impl Resource for PlannerPhase {
    const KIND: &'static str = "delivery.planner_phase";
    const NAME: &'static str = "planner phase";
    const TABLE: &'static str = "planner_phases";
    const NOT_FOUND: &'static str = "PLANNER_PHASE_NOT_FOUND";
}

impl Insert for PlannerPhase {
    type New = NewPlannerPhase;
    const COMPUTED: &'static [(&'static str, &'static str)] = &[(
        "position",
        "coalesce(r.position, (SELECT coalesce(max(position), 0) + 1 FROM planner_phases \
             WHERE org_id = $1 AND program_id = r.program_id))",
    )];
}

impl Write for PlannerPhase {}
