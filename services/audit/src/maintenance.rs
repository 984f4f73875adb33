//! Work on a whole chain: signing checkpoints (on demand, periodically, and
//! before retention) and applying retention. Each unit is one transaction
//! of the organization, holding its maintenance lock, so two replicas never
//! checkpoint or cut one chain at once and appends are never blocked.

use chrono::{SubsecRound, Utc};
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use uuid::Uuid;

use crate::State;
use crate::chain;
use crate::domain::checkpoints::{Checkpoint, Reason, SignedCheckpoint};
use crate::domain::{ChainWalk, GENESIS};
use crate::keys::verifying_key;
use crate::store::checkpoints;
use crate::store::settings::{self as settings, Watermark};
use crate::store::{self, Head};

fn chain_invalid(org_id: Uuid, detail: String) -> Error {
    // The alarm: a chain that stopped verifying is tampering (or a bug).
    tracing::error!(%org_id, detail, "audit chain does not verify; no checkpoint signed");
    Error::failed_precondition(
        "AUDIT_CHAIN_INVALID",
        format!("the audit chain does not verify, so no checkpoint is signed for it: {detail}"),
    )
}

/// The chain's head, and where retention last cut it (position 0 and the
/// genesis hash if never).
async fn head_and_watermark(tx: &mut Tx, org_id: Uuid) -> Result<(Head, Watermark)> {
    let head = store::get_head(tx, org_id).await?.unwrap_or(Head {
        sequence: 0,
        hash: GENESIS.to_vec(),
    });
    let mark = settings::get_watermark(tx, org_id)
        .await?
        .unwrap_or(Watermark {
            sequence: 0,
            hash: GENESIS.to_vec(),
        });
    Ok((head, mark))
}

/// Checks that the chain still extends the newest checkpoint and verifies
/// from it to the head: the service never signs a chain that was
/// truncated or rewritten behind its back. Incremental (it walks only the
/// events since that checkpoint; the first checkpoint walks the retained
/// chain) and bounded by the head read, so appends committing meanwhile
/// are not taken for tampering.
async fn check_continuity(
    tx: &mut Tx,
    org_id: Uuid,
    head: &Head,
    mark: &Watermark,
    previous: Option<&SignedCheckpoint>,
) -> Result<()> {
    let (start, prev_hash) = match previous {
        Some(s) if s.checkpoint.sequence > mark.sequence => {
            let p = &s.checkpoint;
            let genuine = checkpoints::public_key(&mut **tx, &p.key_id)
                .await?
                .and_then(|k| verifying_key(&k))
                .is_some_and(|k| s.checkpoint.verify(&k, &s.signature));
            if !genuine {
                return Err(chain_invalid(
                    org_id,
                    format!("stored checkpoint {} does not verify with its key", p.id),
                ));
            }
            if p.sequence > head.sequence {
                return Err(chain_invalid(
                    org_id,
                    format!(
                        "checkpoint {} covers events up to {} but the head is event {}: the newest events were removed",
                        p.id, p.sequence, head.sequence
                    ),
                ));
            }
            if store::hash_at(tx, org_id, p.sequence).await?.as_deref() != Some(&p.head_hash[..]) {
                return Err(chain_invalid(
                    org_id,
                    format!(
                        "event {} no longer has the hash checkpoint {} signed: the chain was rewritten",
                        p.sequence, p.id
                    ),
                ));
            }
            (p.sequence + 1, p.head_hash.clone())
        }
        _ => (mark.sequence + 1, mark.hash.clone()),
    };
    let mut walk = ChainWalk::new(start, prev_hash);
    let walked = chain::walk_events(
        tx,
        org_id,
        &mut walk,
        Some(head.sequence),
        head.sequence,
        None,
    )
    .await?;
    walked
        .and_then(|_| walk.finish_head(head.sequence, &head.hash, None))
        .map_err(|f| chain_invalid(org_id, f.detail))
}

/// Signs and stores a checkpoint of the organization's chain as `tx` sees
/// it, after [`check_continuity`]. `tx` holds the maintenance lock.
async fn write_checkpoint(
    state: &State,
    tx: &mut Tx,
    org_id: Uuid,
    reason: Reason,
    previous: Option<&SignedCheckpoint>,
) -> Result<SignedCheckpoint> {
    let signer = state.signer().await?;
    let (head, mark) = head_and_watermark(tx, org_id).await?;
    check_continuity(tx, org_id, &head, &mark, previous).await?;
    let (first, last) = if head.sequence > mark.sequence {
        let first = store::event_at(tx, org_id, mark.sequence + 1).await?;
        let last = store::event_at(tx, org_id, head.sequence).await?;
        (first.map(|(_, _, t)| t), last.map(|(_, _, t)| t))
    } else {
        (None, None)
    };
    let c = Checkpoint {
        id: Uuid::now_v7(),
        org_id,
        reason,
        sequence: head.sequence,
        head_hash: head.hash,
        event_count: head.sequence - mark.sequence,
        first_occurred_at: first,
        last_occurred_at: last,
        // Stored as timestamptz: microseconds, so what was signed is what
        // is read back.
        created_at: Utc::now().trunc_subsecs(6),
        key_id: signer.key_id().to_owned(),
    };
    let signature = signer.sign(&c);
    checkpoints::insert_checkpoint(tx, &c, &signature).await?;
    Ok(SignedCheckpoint {
        checkpoint: c,
        signature,
        public_key: signer.public_key().to_vec(),
    })
}

/// Signs a checkpoint of the organization's chain now; with `if_moved`,
/// only if the head is not where the newest checkpoint saw it (`None`
/// otherwise).
pub async fn create_checkpoint(
    state: &State,
    org_id: Uuid,
    reason: Reason,
    if_moved: bool,
) -> Result<Option<SignedCheckpoint>> {
    let mut tx = state.db.tenant(org_id).await?;
    checkpoints::lock_maintenance(&mut tx, org_id).await?;
    let previous = checkpoints::latest_checkpoint(&mut tx, org_id).await?;
    if if_moved {
        let head = store::get_head(&mut tx, org_id).await?;
        let head = head.map_or(0, |h| h.sequence);
        if previous.as_ref().map_or(0, |p| p.checkpoint.sequence) == head {
            tx.commit().await?;
            return Ok(None);
        }
    }
    let row = write_checkpoint(state, &mut tx, org_id, reason, previous.as_ref()).await?;
    tx.commit().await?;
    Ok(Some(row))
}

/// What retention did to one chain.
#[derive(Debug, Clone)]
pub struct Retained {
    /// Events removed now.
    pub removed: i64,
    /// The last position removed, ever (0: none).
    pub retained_after: i64,
    /// The checkpoint signed before the removal.
    pub checkpoint: Option<SignedCheckpoint>,
}

/// Removes the organization's events older than its retention, as the
/// longest prefix of the chain they form, in one transaction: a checkpoint
/// of the chain as it is first (refused, and nothing removed, if the chain
/// does not verify since the previous one), then the removal and the
/// watermark by the database function (see the migration).
pub async fn apply_retention(state: &State, org_id: Uuid) -> Result<Retained> {
    let mut tx = state.db.tenant(org_id).await?;
    checkpoints::lock_maintenance(&mut tx, org_id).await?;
    let days = state.retention.effective_days(
        settings::get_settings(&mut tx, org_id, false)
            .await?
            .and_then(|s| s.retention_days),
    );
    let (_, mark) = head_and_watermark(&mut tx, org_id).await?;
    let nothing = Retained {
        removed: 0,
        retained_after: mark.sequence,
        checkpoint: None,
    };
    let Some(days) = days else {
        tx.commit().await?;
        return Ok(nothing);
    };
    let end = settings::retention_end(&mut tx, org_id, mark.sequence, days).await?;
    if end <= mark.sequence {
        tx.commit().await?;
        return Ok(nothing);
    }
    let previous = checkpoints::latest_checkpoint(&mut tx, org_id).await?;
    let checkpoint =
        write_checkpoint(state, &mut tx, org_id, Reason::Retention, previous.as_ref()).await?;
    let removed = settings::remove_prefix(&mut tx, org_id, end).await?;
    tx.commit().await?;
    tracing::info!(%org_id, removed, retained_after = end, "audit retention applied");
    Ok(Retained {
        removed,
        retained_after: end,
        checkpoint: Some(checkpoint),
    })
}

/// Makes an organization's pending retention reduction, if due, its
/// retention: recorded in its chain as the system's change, in the
/// transaction that makes it.
pub async fn promote_reduction(state: &State, org_id: Uuid) -> Result<()> {
    let mut tx = state.db.tenant(org_id).await?;
    let Some(before) = settings::get_settings(&mut tx, org_id, true).await? else {
        tx.commit().await?;
        return Ok(());
    };
    let mut after = before.clone();
    if after.promote_due(chrono::Utc::now()) {
        let system = foundry_outbox::Actor::system("audit");
        crate::api::settings::record_change(&mut tx, &system, org_id, before, &after).await?;
        tracing::info!(%org_id, retention_days = ?after.retention_days, "audit retention reduction took effect");
    }
    tx.commit().await?;
    Ok(())
}

/// What one round of maintenance did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Checkpoints written (retention's included).
    pub checkpoints: usize,
    /// Events removed by retention.
    pub removed: i64,
    /// Organizations whose work was refused or failed (logged).
    pub failed: usize,
}

/// One round: retention for every organization that has one, then a
/// checkpoint of every chain whose head moved since its newest checkpoint.
/// A failure in one organization is logged and the others go on.
pub async fn round(state: &State) -> Result<Round> {
    let mut out = Round::default();
    let mut tx = state.db.system().await?;
    let due = settings::orgs_with_due_reduction(&mut tx).await?;
    tx.commit().await?;
    for org_id in due {
        if let Err(e) = promote_reduction(state, org_id).await {
            out.failed += 1;
            tracing::error!(%org_id, error = %e, "audit retention reduction failed");
        }
    }
    let mut tx = state.db.system().await?;
    let with_retention = settings::orgs_with_retention(&mut tx).await?;
    tx.commit().await?;
    for org_id in with_retention {
        match apply_retention(state, org_id).await {
            Ok(r) => {
                out.removed += r.removed;
                out.checkpoints += usize::from(r.checkpoint.is_some());
            }
            Err(e) => {
                out.failed += 1;
                tracing::error!(%org_id, error = %e, "audit retention failed");
            }
        }
    }
    let mut tx = state.db.system().await?;
    let due = checkpoints::orgs_due(&mut tx).await?;
    tx.commit().await?;
    for org_id in due {
        match create_checkpoint(state, org_id, Reason::Periodic, true).await {
            Ok(written) => out.checkpoints += usize::from(written.is_some()),
            Err(e) => {
                out.failed += 1;
                tracing::error!(%org_id, error = %e, "audit checkpoint failed");
            }
        }
    }
    Ok(out)
}
