//! Walking a stored chain: the reads around [`ChainWalk`], shared by
//! `VerifyAuditChain` and the continuity check every checkpoint makes.

use foundry_platform::Result;
use foundry_platform::db::Tx;
use uuid::Uuid;

use crate::domain::{self, ChainWalk, Finding};
use crate::store;

/// Events read per query while a chain is walked.
pub const CHUNK: i64 = 5000;

/// Feeds the organization's events from `walk`'s next position (to `to`,
/// or to the end of the log) through the walk, in chunks on the primary
/// key. An event at `anchor`'s position must also have its hash. Returns
/// the id of an event found right after `head_sequence` (see
/// [`ChainWalk::finish_head`]), or the first finding.
pub async fn walk_events(
    tx: &mut Tx,
    org_id: Uuid,
    walk: &mut ChainWalk,
    to: Option<i64>,
    head_sequence: i64,
    anchor: Option<(i64, &[u8])>,
) -> Result<Result<Option<Uuid>, Finding>> {
    let mut beyond = None;
    let mut from = walk.next_sequence();
    loop {
        let rows = store::chain_chunk(tx, org_id, from, to, CHUNK).await?;
        for r in &rows {
            if r.event.sequence == head_sequence + 1 {
                beyond = Some(r.event.id);
            }
            if let Err(f) = walk.check(&r.event, &r.hash) {
                return Ok(Err(f));
            }
            if let Some((sequence, expected)) = anchor
                && let Err(f) = domain::check_anchor(&r.event, &r.hash, sequence, expected)
            {
                return Ok(Err(f));
            }
        }
        match rows.last() {
            Some(last) if rows.len() as i64 == CHUNK => from = last.event.sequence + 1,
            _ => return Ok(Ok(beyond)),
        }
    }
}
