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
    let anchor: Option<(i64, Vec<u8>)> = anchor.map(|(s, h)| (s, h.to_vec()));
    let mut beyond = None;
    let mut from = walk.next_sequence();
    loop {
        let rows = store::chain_chunk(tx, org_id, from, to, CHUNK).await?;
        let full = rows.len() as i64 == CHUNK;
        let last = rows.last().map(|r| r.event.sequence);
        // Hashing a chunk is CPU work: on a blocking thread, so that a
        // long chain never holds up the calls sharing the async workers.
        let (w, found, outcome) = tokio::task::spawn_blocking({
            let mut w = std::mem::replace(walk, ChainWalk::new(0, Vec::new()));
            let anchor = anchor.clone();
            move || {
                let (found, outcome) = check_chunk(&mut w, &rows, head_sequence, anchor.as_ref());
                (w, found, outcome)
            }
        })
        .await
        .map_err(foundry_platform::Error::internal)?;
        *walk = w;
        if found.is_some() {
            beyond = found;
        }
        if let Err(f) = outcome {
            return Ok(Err(f));
        }
        match last {
            Some(last) if full => from = last + 1,
            _ => return Ok(Ok(beyond)),
        }
    }
}

/// One chunk through the walk: the id of an event right after
/// `head_sequence`, if the chunk holds it, and the first finding.
fn check_chunk(
    walk: &mut ChainWalk,
    rows: &[store::EventRow],
    head_sequence: i64,
    anchor: Option<&(i64, Vec<u8>)>,
) -> (Option<Uuid>, std::result::Result<(), Finding>) {
    let mut beyond = None;
    for r in rows {
        if r.event.sequence == head_sequence + 1 {
            beyond = Some(r.event.id);
        }
        if let Err(f) = walk.check(&r.event, &r.hash) {
            return (beyond, Err(f));
        }
        if let Some((sequence, expected)) = anchor
            && let Err(f) = domain::check_anchor(&r.event, &r.hash, *sequence, expected)
        {
            return (beyond, Err(f));
        }
    }
    (beyond, Ok(()))
}
