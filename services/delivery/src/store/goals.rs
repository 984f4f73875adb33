//! Goals.

use foundry_resource::Resource;

use crate::domain::{Goal, NewGoal};

impl Resource for Goal {
    type New = NewGoal;
    foundry_resource::names!("delivery", "goal", "goals");
}
