//! Invitations.

use async_trait::async_trait;
use chrono::Utc;
use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_platform::page::Page;
use foundry_resource::Resource;
use sqlx::{PgConnection, QueryBuilder};
use uuid::Uuid;

use super::{InsertWithSecret, Walk, find_by, one, page_of, select};

use crate::domain::{INVITATION_TTL, Invitation, InvitationId, NewInvitation, Secret, SecretKind};

impl Resource for Invitation {
    type New = NewInvitation;
    foundry_resource::names!("identity", "invitation", "invitations");
    const COLUMNS: &'static str = COLS;
}

/// Every column but the token's hash, which is never read.
const COLS: &str = "org_id, id, email, role, invited_by, state, expires_at, accepted_at, version, created_at, updated_at";

/// State filters of a list; `expired` is a pending invitation past its expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationFilter {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

/// Its token lives [`INVITATION_TTL`] from now.
#[async_trait]
impl InsertWithSecret for Invitation {
    fn secret_kind(_: &NewInvitation) -> SecretKind {
        SecretKind::Invitation
    }

    async fn insert(
        new: &NewInvitation,
        token: &Secret,
        tx: &mut Tx,
        org_id: Uuid,
        invited_by: Uuid,
    ) -> Result<Invitation> {
        let sql = format!(
            "INSERT INTO invitations (org_id, id, email, role, token_hash, invited_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLS}"
        );
        let q = sqlx::query(&sql)
            .bind(org_id)
            .bind(Uuid::now_v7())
            .bind(&new.email)
            .bind(new.role.as_str())
            .bind(&token.hash)
            .bind(invited_by)
            .bind(Utc::now() + INVITATION_TTL);
        one(tx, q).await
    }
}

pub async fn list_invitations(
    conn: &mut PgConnection,
    org_id: Uuid,
    filter: Option<InvitationFilter>,
    page: Page,
) -> Result<Vec<Invitation>> {
    let cond = match filter {
        None => "TRUE",
        Some(InvitationFilter::Pending) => "state = 'pending' AND expires_at > now()",
        Some(InvitationFilter::Expired) => "state = 'pending' AND expires_at <= now()",
        Some(InvitationFilter::Accepted) => "state = 'accepted'",
        Some(InvitationFilter::Revoked) => "state = 'revoked'",
    };
    let mut q = QueryBuilder::new(format!(
        "{} WHERE {cond} AND org_id = ",
        select::<Invitation>()
    ));
    q.push_bind(org_id);
    page_of(conn, q, ("id", Walk::Newest), page).await
}

pub async fn revoke_invitation(tx: &mut Tx, org_id: Uuid, id: InvitationId) -> Result<Invitation> {
    set_state(tx, (org_id, id), "state = 'revoked'").await
}

/// Moves the invitation `id` of `org_id` on (`set`: its assignments), a new
/// version; returns it.
async fn set_state(
    tx: &mut Tx,
    (org_id, id): (Uuid, InvitationId),
    set: &str,
) -> Result<Invitation> {
    let sql = format!(
        "UPDATE invitations SET {set}, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    );
    one(tx, sqlx::query(&sql).bind(org_id).bind(id.uuid())).await
}

/// Gives the invitation `id` a new token (its hash), which lives
/// [`INVITATION_TTL`] from now.
pub async fn reissue_invitation(
    tx: &mut Tx,
    org_id: Uuid,
    id: InvitationId,
    token_hash: &[u8],
) -> Result<Invitation> {
    let sql = format!(
        "UPDATE invitations SET token_hash = $3, expires_at = $4, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {COLS}"
    );
    let q = sqlx::query(&sql).bind(org_id).bind(id.uuid());
    one(tx, q.bind(token_hash).bind(Utc::now() + INVITATION_TTL)).await
}

/// Finds an invitation by its token hash across tenants (the invitee does
/// not act in the organization yet: system transaction), locked.
pub async fn find_invitation_by_token(
    tx: &mut Tx,
    token_hash: &[u8],
) -> Result<Option<Invitation>> {
    find_by(tx, ("token_hash", token_hash), true).await
}

pub async fn mark_invitation_accepted(
    tx: &mut Tx,
    org_id: Uuid,
    id: InvitationId,
) -> Result<Invitation> {
    set_state(tx, (org_id, id), "state = 'accepted', accepted_at = now()").await
}
