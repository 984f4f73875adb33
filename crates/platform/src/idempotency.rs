//! Idempotent creates (AIP-155), as one wrapper around the create's
//! transaction: [`begin`] claims the request id (or answers a repeat), the
//! handler does the work in the [`Creating`] transaction it gets, and
//! [`Creating::finish`] stores the response and commits (with the create's
//! event, in one round trip). The claim, the work and the stored response
//! commit together or not at all.
//!
//! The first request with a `request_id` inserts the claim; a concurrent
//! repeat waits on that row's unique index until the first commits (then
//! replays its response) or rolls back (then runs itself). A repeat whose
//! body differs from the first (compared by SHA-256 of the encoded
//! request) is refused with `INVALID_ARGUMENT` `REQUEST_ID_REUSED`, as
//! Stripe refuses a reused idempotency key: answering it with the first
//! response would tell the caller a different thing was made. Claims are
//! kept for a retention window ([`sweep`] deletes older ones); a repeat
//! inside it is answered, after it the request runs anew.

use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::commit::Statement;
use crate::db::{Db, Tx};
use crate::error::Error;

/// How long claims are kept by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// What makes a create idempotent: who it is scoped to, the method, the
/// caller's request id, and a fingerprint of the request.
#[derive(Clone, Debug)]
pub struct Key {
    scope: Uuid,
    method: &'static str,
    request_id: Uuid,
    request_hash: Vec<u8>,
}

impl Key {
    /// The key of `request` under `method` in `scope` (the organization, or
    /// the user for user-scoped creates), when it has a request id.
    pub fn of<M: prost::Message>(
        scope: Uuid,
        method: &'static str,
        request_id: Option<Uuid>,
        request: &M,
    ) -> Option<Key> {
        Some(Key {
            scope,
            method,
            request_id: request_id?,
            request_hash: Sha256::digest(request.encode_to_vec()).to_vec(),
        })
    }
}

/// How a create's transaction began: as a repeat, answered with the first
/// response, or as new work.
#[derive(Debug)]
pub enum Begun<M> {
    /// A repeat of a request that committed: its response.
    Replay(M),
    /// New work: do it in this transaction, then [`Creating::finish`].
    New(Creating),
}

/// The transaction of a create that claimed its key. It derefs to the
/// transaction for the work; [`Creating::finish`] is the only way to commit
/// it, and stores the response for repeats first. Dropped, it rolls back
/// and releases the claim.
#[derive(Debug)]
pub struct Creating {
    tx: Tx,
    key: Option<Key>,
}

/// Begins a create in `tx`: claims the key (if the request has one), or
/// returns the first response for a repeat of the same request, or refuses
/// a repeat with another body (`REQUEST_ID_REUSED`).
pub async fn begin<M>(mut tx: Tx, key: Option<Key>) -> Result<Begun<M>, Error>
where
    M: prost::Message + Default,
{
    if let Some(key) = &key
        && let Some(previous) = claim_key(&mut tx, key).await?
    {
        return Ok(Begun::Replay(previous));
    }
    Ok(Begun::New(Creating { tx, key }))
}

impl Creating {
    /// Runs `last` (the create's event), stores `response` for repeats and
    /// commits, in one round trip ([`crate::commit::with`]).
    pub async fn finish<M: prost::Message>(
        self,
        response: &M,
        last: Vec<Statement>,
    ) -> Result<(), Error> {
        self.finish_redacted(response, last).await
    }

    /// [`Creating::finish`], storing `stored` (the response less a secret
    /// shown once) for repeats.
    pub async fn finish_redacted<M: prost::Message>(
        self,
        stored: &M,
        mut last: Vec<Statement>,
    ) -> Result<(), Error> {
        if let Some(key) = &self.key {
            last.push(response_stored(key, stored));
        }
        crate::commit::with(self.tx, last).await
    }
}

impl std::ops::Deref for Creating {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl std::ops::DerefMut for Creating {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

/// A claim as read back: the stored response (none while the first request
/// runs) and the first request's fingerprint (none for claims made before
/// fingerprints were kept).
type Claimed = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Claims the key, or returns the response of the request that did.
async fn claim_key<M: prost::Message + Default>(
    tx: &mut Tx,
    key: &Key,
) -> Result<Option<M>, Error> {
    let inserted = sqlx::query(
        "INSERT INTO request_ids (scope_id, method, request_id, request_hash) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(key.scope)
    .bind(key.method)
    .bind(key.request_id)
    .bind(&key.request_hash)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let row: Option<Claimed> = sqlx::query_as(
        "SELECT response, request_hash FROM request_ids \
         WHERE scope_id = $1 AND method = $2 AND request_id = $3",
    )
    .bind(key.scope)
    .bind(key.method)
    .bind(key.request_id)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        Some((_, Some(hash))) if hash != key.request_hash => Err(Error::invalid_reason(
            "REQUEST_ID_REUSED",
            "request_id",
            "was used for a different request; use a new request_id for a new request",
        )),
        Some((Some(bytes), _)) => M::decode(bytes.as_slice())
            .map(Some)
            .map_err(Error::internal),
        // Swept between our insert and this read, or claimed by a request
        // that has not committed a response: the caller retries.
        _ => Err(Error::aborted(
            "REQUEST_IN_FLIGHT",
            "a request with this request_id is still running; retry",
        )),
    }
}

/// The statement that stores `response` with its claim.
fn response_stored<M: prost::Message>(key: &Key, response: &M) -> Statement {
    Statement::new(
        "UPDATE request_ids SET response = $4 WHERE scope_id = $1 AND method = $2 AND request_id = $3",
    )
    .bind(key.scope)
    .bind(key.method)
    .bind(key.request_id)
    .bind(response.encode_to_vec())
}

/// How often [`sweep`] runs for a retention window: a twelfth of it
/// (two hours for the default day), at least a second, at most an hour.
pub fn sweep_interval(retention: Duration) -> Duration {
    (retention / 12).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Deletes claims older than `retention`, a batch at a time; returns how
/// many went.
pub async fn sweep(db: &Db, retention: Duration) -> Result<u64, Error> {
    crate::db::sweep(db, "request_ids", "created_at", retention).await
}
