//! Goals.

use foundry_resource::{Resource, Within};

use crate::domain::{Goal, NewGoal};

impl Resource for Goal {
    type New = NewGoal;
    foundry_resource::names!("delivery", "goal", "goals");
    const WITHIN: Option<Within<NewGoal>> = Some(super::program_child(|n| n.program_id.uuid()));
}
