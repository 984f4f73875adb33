//! SQL of signing keys and checkpoints. The service's role inserts and
//! reads both and can change or remove neither (see the migrations), but
//! for resealing a signing key's private half.

use chrono::{DateTime, Utc};
use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use sqlx::PgConnection;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::StoredEnum;
use crate::domain::checkpoints::{Checkpoint, Reason, SignedCheckpoint};

/// A signing key as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    /// The key id.
    pub kid: String,
    /// The Ed25519 seed (32 bytes), sealed (`foundry_keyring`).
    pub private_key: Vec<u8>,
    /// The Ed25519 public key (32 bytes).
    pub public_key: Vec<u8>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Serializes the creation of the first key among replicas starting
/// together, for the rest of the transaction.
pub async fn lock_key_creation(tx: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('foundry_audit_signing_key'))")
        .execute(tx)
        .await?;
    Ok(())
}

/// The newest key, if any.
pub async fn newest_key<'c>(conn: impl PgExecutor<'c>) -> Result<Option<KeyRow>> {
    Ok(sqlx::query_as(
        "SELECT kid, private_key, public_key, created_at FROM signing_keys \
         ORDER BY created_at DESC, kid DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?)
}

/// Stores a key.
pub async fn insert_key<'c>(
    conn: impl PgExecutor<'c>,
    kid: &str,
    private_key: &[u8],
    public_key: &[u8],
) -> Result<()> {
    sqlx::query("INSERT INTO signing_keys (kid, private_key, public_key) VALUES ($1, $2, $3)")
        .bind(kid)
        .bind(private_key)
        .bind(public_key)
        .execute(conn)
        .await?;
    Ok(())
}

/// The public key of a key id, if it is one of ours.
pub async fn public_key<'c>(conn: impl PgExecutor<'c>, kid: &str) -> Result<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar("SELECT public_key FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .fetch_optional(conn)
            .await?,
    )
}

/// Every key's public half, oldest first.
pub async fn public_keys<'c>(
    conn: impl PgExecutor<'c>,
) -> Result<Vec<(String, Vec<u8>, DateTime<Utc>)>> {
    Ok(sqlx::query_as(
        "SELECT kid, public_key, created_at FROM signing_keys ORDER BY created_at, kid",
    )
    .fetch_all(conn)
    .await?)
}

/// A checkpoint row, as read.
#[derive(Debug, Clone, sqlx::FromRow)]
struct CheckpointRow {
    org_id: Uuid,
    id: Uuid,
    reason: String,
    sequence: i64,
    head_hash: Vec<u8>,
    event_count: i64,
    first_occurred_at: Option<DateTime<Utc>>,
    last_occurred_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    key_id: String,
    signature: Vec<u8>,
    public_key: Vec<u8>,
}

impl TryFrom<CheckpointRow> for SignedCheckpoint {
    type Error = Error;

    fn try_from(r: CheckpointRow) -> Result<SignedCheckpoint> {
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint {
                id: r.id,
                org_id: r.org_id,
                reason: Reason::decode("checkpoints", "reason", &r.reason)?,
                sequence: r.sequence,
                head_hash: r.head_hash,
                event_count: r.event_count,
                first_occurred_at: r.first_occurred_at,
                last_occurred_at: r.last_occurred_at,
                created_at: r.created_at,
                key_id: r.key_id,
            },
            signature: r.signature,
            public_key: r.public_key,
        })
    }
}

const CHECKPOINT_COLS: &str = "c.org_id, c.id, c.reason, c.sequence, c.head_hash, c.event_count, \
     c.first_occurred_at, c.last_occurred_at, c.created_at, c.key_id, c.signature, k.public_key";

/// Stores a signed checkpoint.
pub async fn insert_checkpoint(tx: &mut Tx, c: &Checkpoint, signature: &[u8]) -> Result<()> {
    sqlx::query(
        "INSERT INTO checkpoints (org_id, id, reason, sequence, head_hash, event_count, \
           first_occurred_at, last_occurred_at, created_at, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(c.org_id)
    .bind(c.id)
    .bind(c.reason.as_str())
    .bind(c.sequence)
    .bind(&c.head_hash)
    .bind(c.event_count)
    .bind(c.first_occurred_at)
    .bind(c.last_occurred_at)
    .bind(c.created_at)
    .bind(&c.key_id)
    .bind(signature)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One checkpoint of an organization.
pub async fn get_checkpoint(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<SignedCheckpoint>> {
    let row: Option<CheckpointRow> = sqlx::query_as(&format!(
        "SELECT {CHECKPOINT_COLS} FROM checkpoints c JOIN signing_keys k ON k.kid = c.key_id \
         WHERE c.org_id = $1 AND c.id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(SignedCheckpoint::try_from).transpose()
}

/// A page of an organization's checkpoints, newest first: ids below
/// `before` (on the primary key).
pub async fn list_checkpoints(
    conn: &mut PgConnection,
    org_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<SignedCheckpoint>> {
    let rows: Vec<CheckpointRow> = sqlx::query_as(&format!(
        "SELECT {CHECKPOINT_COLS} FROM checkpoints c JOIN signing_keys k ON k.kid = c.key_id \
         WHERE c.org_id = $1 AND ($2::uuid IS NULL OR c.id < $2) \
         ORDER BY c.id DESC LIMIT $3"
    ))
    .bind(org_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(SignedCheckpoint::try_from).collect()
}

/// The checkpoint of an organization's furthest head (the newest among
/// equals).
pub async fn latest_checkpoint(tx: &mut Tx, org_id: Uuid) -> Result<Option<SignedCheckpoint>> {
    let row: Option<CheckpointRow> = sqlx::query_as(&format!(
        "SELECT {CHECKPOINT_COLS} FROM checkpoints c JOIN signing_keys k ON k.kid = c.key_id \
         WHERE c.org_id = $1 ORDER BY c.sequence DESC, c.id DESC LIMIT 1"
    ))
    .bind(org_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(SignedCheckpoint::try_from).transpose()
}

/// Serializes checkpoint writing and retention of one organization (among
/// replicas too) for the rest of the transaction, without blocking appends.
pub async fn lock_maintenance(tx: &mut Tx, org_id: Uuid) -> Result<()> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('foundry_audit_maintenance'), hashtext($1::text))",
    )
    .bind(org_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Organizations whose head is not where their newest checkpoint saw it:
/// it moved on, or (tampering, which the next checkpoint refuses and
/// reports) back. System scope: every organization.
pub async fn orgs_due(tx: &mut Tx) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT h.org_id FROM chain_heads h \
         WHERE h.sequence <> coalesce( \
           (SELECT max(c.sequence) FROM checkpoints c WHERE c.org_id = h.org_id), 0) \
         ORDER BY h.org_id",
    )
    .fetch_all(&mut **tx)
    .await?)
}
