//! Goals.

use foundry_resource::{Insert, Resource, Write};

use crate::domain::{Goal, NewGoal};

impl Resource for Goal {
    const KIND: &'static str = "delivery.goal";
    const NAME: &'static str = "goal";
    const TABLE: &'static str = "goals";
    const NOT_FOUND: &'static str = "GOAL_NOT_FOUND";
}

impl Insert for Goal {
    type New = NewGoal;
}

impl Write for Goal {}
