//! Invitations.

use chrono::{DateTime, Utc};
use foundry_platform::db::Tx;
use foundry_platform::error::is_unique_violation;
use foundry_platform::{Error, Result};
use uuid::Uuid;

/// An invitation row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub org_id: Uuid,
    pub id: Uuid,
    pub email: String,
    pub role: String,
    pub invited_by: Uuid,
    pub state: String,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "org_id, id, email, role, invited_by, state, expires_at, accepted_at, version, created_at, updated_at";

/// State filters of a list; `expired` is a pending invitation past its expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationFilter {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

pub async fn insert_invitation(
    tx: &mut Tx,
    org_id: Uuid,
    email: &str,
    role: &str,
    token_hash: &[u8],
    invited_by: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<InvitationRow> {
    sqlx::query_as(&format!(
        "INSERT INTO invitations (org_id, id, email, role, token_hash, invited_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(role)
    .bind(token_hash)
    .bind(invited_by)
    .bind(expires_at)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "invitations_pending_email_key") {
            Error::already_exists(
                "INVITATION_PENDING",
                "invitation.email",
                "this email already has a pending invitation; resend it instead",
            )
        } else {
            e.into()
        }
    })
}

pub async fn get_invitation(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<InvitationRow>> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM invitations WHERE org_id = $1 AND id = $2{lock}"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn list_invitations(
    tx: &mut Tx,
    org_id: Uuid,
    filter: Option<InvitationFilter>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<InvitationRow>> {
    let cond = match filter {
        None => "TRUE",
        Some(InvitationFilter::Pending) => "state = 'pending' AND expires_at > now()",
        Some(InvitationFilter::Expired) => "state = 'pending' AND expires_at <= now()",
        Some(InvitationFilter::Accepted) => "state = 'accepted'",
        Some(InvitationFilter::Revoked) => "state = 'revoked'",
    };
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM invitations WHERE org_id = $1 AND {cond} AND ($2::uuid IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(org_id)
    .bind(before)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn revoke_invitation(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<InvitationRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE invitations SET state = 'revoked', version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn reissue_invitation(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<InvitationRow> {
    Ok(sqlx::query_as(&format!(
        "UPDATE invitations SET token_hash = $3, expires_at = $4, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(id)
    .bind(token_hash)
    .bind(expires_at)
    .fetch_one(&mut **tx)
    .await?)
}

/// Finds an invitation by its token hash across tenants (the invitee does
/// not act in the organization yet: system transaction), locked.
pub async fn find_invitation_by_token(
    tx: &mut Tx,
    token_hash: &[u8],
) -> Result<Option<InvitationRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM invitations WHERE token_hash = $1 FOR UPDATE"
    ))
    .bind(token_hash)
    .fetch_optional(&mut **tx)
    .await?)
}

pub async fn mark_invitation_accepted(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE invitations SET state = 'accepted', accepted_at = now(), version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
