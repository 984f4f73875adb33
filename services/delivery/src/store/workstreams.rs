//! Workstreams.

use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_resource::{Computed, Resource, Within};
use uuid::Uuid;

use super::{Removed, delete_where};
use crate::domain::{NewWorkstream, Workstream, WorkstreamId};

impl Resource for Workstream {
    type New = NewWorkstream;
    foundry_resource::names!("delivery", "workstream", "workstreams");
    const WITHIN: Option<Within<NewWorkstream>> =
        Some(super::program_child(|n| n.program_id.uuid()));

    const COMPUTED: &'static [Computed] = &[Computed::Appended {
        scope: "program_id",
    }];
}

/// Deletes a workstream with its requirements and their edges; tasks under
/// those requirements are detached (and their version bumped).
pub async fn delete_workstream(tx: &mut Tx, org_id: Uuid, id: WorkstreamId) -> Result<Removed> {
    let id = id.uuid();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM requirements WHERE org_id = $1 AND workstream_id = $2 FOR UPDATE",
    )
    .bind(org_id)
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    let mut removed = super::delete_requirements(tx, org_id, &ids).await?;
    removed.workstreams = delete_where(tx, "workstreams", "id", org_id, id).await?;
    Ok(removed)
}
