//! Goals.

use foundry_resource::Resource;

use crate::domain::{Goal, NewGoal};

impl Resource for Goal {
    type New = NewGoal;
    const KIND: &'static str = "delivery.goal";
    const NAME: &'static str = "goal";
    const TABLE: &'static str = "goals";
    const NOT_FOUND: &'static str = "GOAL_NOT_FOUND";
}
