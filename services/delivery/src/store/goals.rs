//! Goals.

use foundry_resource::{Insert, Resource, Write};
use uuid::Uuid;

use crate::domain::{Goal, NewGoal};

impl Resource for Goal {
    const KIND: &'static str = "delivery.goal";
    const NAME: &'static str = "goal";
    const TABLE: &'static str = "goals";
    const NOT_FOUND: &'static str = "GOAL_NOT_FOUND";

    fn project(&self) -> Option<Uuid> {
        Some(self.fields.program_id.uuid())
    }
}

impl Insert for Goal {
    type New = NewGoal;
}

impl Write for Goal {}
