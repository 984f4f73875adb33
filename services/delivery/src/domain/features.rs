//! Features: a tree per program, and the parent tree stays a tree.

use foundry_domain::{Audited, Change, Patch, Record, Stamp};
use serde::{Deserialize, Serialize};

use super::*;

/// A feature of a program, under a parent feature or at the top.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = fields.program_id)]
pub struct Feature {
    pub id: FeatureId,
    pub fields: NewFeature,
    pub stamp: Stamp,
}

/// A feature's own fields, held by a [`Feature`]: to create, as parsed at the
/// edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewFeature {
    pub program_id: ProgramId,
    /// `None` at the top; else a feature of the same program, never a
    /// descendant ([`check_feature_parent`]).
    pub parent_feature_id: Option<FeatureId>,
    pub name: String,
    /// Unique in the program.
    pub slug: String,
    pub description: String,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = FeaturePath, fields = NewFeature, output_only = PROGRAM_CHILD_OUTPUT_ONLY)]
pub enum FeatureChange {
    /// `None` makes the feature top-level.
    ParentFeatureId(Option<FeatureId>),
    Name(String),
    Slug(String),
    Description(String),
}

impl FeatureChange {
    /// The new parent `changes` put the feature under, if any (what must
    /// be checked against the feature's descendants).
    pub fn new_parent(changes: &[FeatureChange]) -> Option<FeatureId> {
        changes.iter().find_map(|c| {
            if let FeatureChange::ParentFeatureId(p) = c {
                *p
            } else {
                None
            }
        })
    }
}

impl Patch for Feature {
    type Change = FeatureChange;
}

/// Checks that `id` may take the parent whose chain up to the root is
/// `ancestry` (the parent first): refused when `id` is on it, naming the
/// cycle `id → parent → … → id`.
pub fn check_feature_parent(id: FeatureId, ancestry: &[FeatureId]) -> Result<(), Error> {
    let Some(at) = ancestry.iter().position(|a| *a == id) else {
        return Ok(());
    };
    let cycle: Vec<String> = std::iter::once(id)
        .chain(ancestry[..=at].iter().copied())
        .map(|x| x.to_string())
        .collect();
    Err(Error::failed_precondition(
        "FEATURE_PARENT_CYCLE",
        format!("the parent would make a cycle: {}", cycle.join(" -> ")),
    )
    .with_metadata("cycle", cycle.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_cannot_sit_under_itself_or_a_descendant() {
        let ids: Vec<FeatureId> = (0..4).map(|_| FeatureId::new_v7()).collect();
        // ids[0] <- ids[1] <- ids[2] <- ids[3] (child to parent: 3 under 2 ...).
        assert!(check_feature_parent(ids[3], &[ids[0]]).is_ok());
        assert!(check_feature_parent(ids[0], &[]).is_ok());
        let e = check_feature_parent(ids[0], &[ids[0]]).expect_err("itself");
        assert_eq!(e.reason(), "FEATURE_PARENT_CYCLE");
        // Moving ids[0] under ids[3], whose chain is 3, 2, 1, 0.
        let e = check_feature_parent(ids[0], &[ids[3], ids[2], ids[1], ids[0]]).expect_err("cycle");
        assert_eq!(e.reason(), "FEATURE_PARENT_CYCLE");
        assert_eq!(
            e.message(),
            format!(
                "the parent would make a cycle: {} -> {} -> {} -> {} -> {}",
                ids[0], ids[3], ids[2], ids[1], ids[0]
            )
        );
    }

    #[test]
    fn only_a_named_parent_is_a_new_parent() {
        let p = FeatureId::new_v7();
        assert_eq!(
            FeatureChange::new_parent(&[
                FeatureChange::Name("n".into()),
                FeatureChange::ParentFeatureId(Some(p)),
            ]),
            Some(p)
        );
        assert_eq!(
            FeatureChange::new_parent(&[FeatureChange::ParentFeatureId(None)]),
            None
        );
    }
}
