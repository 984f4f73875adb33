//! Checkpoints of the caller organization's chain, and the public keys
//! that sign them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use foundry_platform::Error;
use foundry_platform::convert::timestamp;
use foundry_platform::validate::Violations;
use foundry_proto::foundry::audit::v1 as pb;
use foundry_tenancy::caller;
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::checkpoint_to_proto;
use crate::domain::checkpoints::Reason;
use crate::maintenance;
use crate::store::checkpoints as store;

fn not_found() -> Error {
    Error::not_found("AUDIT_CHECKPOINT_NOT_FOUND", "audit checkpoint")
}

/// `CreateAuditCheckpoint`.
pub async fn create_audit_checkpoint(
    state: &State,
    req: Request<pb::CreateAuditCheckpointRequest>,
) -> Result<Response<pb::AuditCheckpoint>, Status> {
    let org_id = caller(&req)?.org_id()?;
    let row = maintenance::create_checkpoint(state, org_id, Reason::OnDemand, false)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("no checkpoint written")))?;
    Ok(Response::new(checkpoint_to_proto(&row)))
}

/// `GetAuditCheckpoint`.
pub async fn get_audit_checkpoint(
    state: &State,
    req: Request<pb::GetAuditCheckpointRequest>,
) -> Result<Response<pb::AuditCheckpoint>, Status> {
    let org_id = caller(&req)?.org_id()?;
    let id = Violations::require_id("id", &req.get_ref().id)?;
    let mut conn = state.db.read(org_id).await?;
    let row = store::get_checkpoint(&mut conn, org_id, id)
        .await?
        .ok_or_else(not_found)?;
    drop(conn);
    Ok(Response::new(checkpoint_to_proto(&row)))
}

/// `ListAuditCheckpoints`.
pub async fn list_audit_checkpoints(
    state: &State,
    req: Request<pb::ListAuditCheckpointsRequest>,
) -> Result<Response<pb::ListAuditCheckpointsResponse>, Status> {
    let org_id = caller(&req)?.org_id()?;
    let req = req.into_inner();
    let page = state.pages.parse(req.page_size, &req.page_token, "")?;
    let mut conn = state.db.read(org_id).await?;
    let mut rows = store::list_checkpoints(&mut conn, org_id, page.after, page.limit()).await?;
    drop(conn);
    let next_page_token = state.pages.finish(&page, &mut rows, |r| r.checkpoint.id);
    Ok(Response::new(pb::ListAuditCheckpointsResponse {
        audit_checkpoints: rows.iter().map(checkpoint_to_proto).collect(),
        next_page_token,
    }))
}

/// `GetAuditSigningKeys` (public). The signing key is created on first
/// use, so a fresh service already publishes the key that will sign.
pub async fn get_audit_signing_keys(
    state: &State,
    _req: Request<pb::GetAuditSigningKeysRequest>,
) -> Result<Response<pb::GetAuditSigningKeysResponse>, Status> {
    state.signer().await?;
    let keys = store::public_keys(state.db.pool()).await?;
    Ok(Response::new(pb::GetAuditSigningKeysResponse {
        keys: keys
            .into_iter()
            .map(|(kid, public_key, created_at)| pb::AuditSigningKey {
                key_id: kid,
                key_type: "OKP".into(),
                curve: "Ed25519".into(),
                public_key: URL_SAFE_NO_PAD.encode(public_key),
                create_time: Some(timestamp(created_at)),
            })
            .collect(),
    }))
}
