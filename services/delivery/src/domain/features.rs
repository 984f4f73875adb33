//! Features: the parent tree stays a tree.

use super::*;

/// Checks that `id` may take the parent whose chain up to the root is
/// `ancestry` (the parent first): refused when `id` is on it, naming the
/// cycle `id → parent → … → id`.
pub fn check_feature_parent(id: uuid::Uuid, ancestry: &[uuid::Uuid]) -> Result<(), Error> {
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
        let ids: Vec<uuid::Uuid> = (0..4).map(|_| uuid::Uuid::now_v7()).collect();
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
}
