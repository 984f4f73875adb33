//! `ServiceAccountService` (internal: service accounts only).

use std::sync::Arc;

use foundry_platform::Error;
use foundry_platform::convert::{opt_timestamp, timestamp};
use foundry_platform::validate::Violations;
use foundry_proto::foundry::identity::v1::{
    self as pb, service_account_service_server::ServiceAccountService,
};
use tonic::{Request, Response, Status};

use crate::State;
use crate::api::actor;
use crate::domain::{self, SecretKind};
use crate::store::{self, ServiceAccountFull};
use foundry_outbox::{Actor, PLATFORM_ORG};
use foundry_platform::db::Tx;
use uuid::Uuid;

/// Handlers of `ServiceAccountService`.
#[derive(Clone, Debug)]
pub struct ServiceAccounts(pub Arc<State>);

fn sa_to_proto(r: ServiceAccountFull) -> pb::ServiceAccount {
    pb::ServiceAccount {
        id: r.id.to_string(),
        name: r.name,
        description: r.description,
        create_time: Some(timestamp(r.created_at)),
        disable_time: opt_timestamp(r.disabled_at),
        key: String::new(),
    }
}

/// Creates a service account with its audit event; returns its id and key
/// (shown once). Shared by the RPC and the suite's own bootstrap.
pub(crate) async fn create(
    tx: &mut Tx,
    actor: &Actor,
    name: &str,
    description: &str,
) -> Result<(Uuid, String), Error> {
    let key = domain::mint_secret(SecretKind::Service);
    let id = store::insert_service_account(tx, name, description, &key.hash).await?;
    actor
        .event(
            "identity.service_account.create",
            "identity.service_account",
            id,
        )
        .org(PLATFORM_ORG)
        .set("name", name)
        .set("description", description)
        .record(tx)
        .await?;
    Ok((id, key.value))
}

#[tonic::async_trait]
impl ServiceAccountService for ServiceAccounts {
    #[tracing::instrument(skip_all)]
    async fn create_service_account(
        &self,
        req: Request<pb::CreateServiceAccountRequest>,
    ) -> Result<Response<pb::ServiceAccount>, Status> {
        let actor = actor(&req);
        let sa = req.into_inner().service_account.unwrap_or_default();
        let mut v = Violations::new();
        let name = v.slug("service_account.name", &sa.name);
        let description = v.text("service_account.description", &sa.description, 0, 1000);
        v.finish()?;
        let (Some(name), Some(description)) = (name, description) else {
            return Err(Error::invalid_field("service_account", "is required").into());
        };
        let mut tx = self.0.db.system().await?;
        let (id, key) = create(&mut tx, &actor, &name, &description).await?;
        let row = store::get_service_account(&mut tx, id)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("inserted row missing")))?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ServiceAccount {
            key,
            ..sa_to_proto(row)
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_service_accounts(
        &self,
        req: Request<pb::ListServiceAccountsRequest>,
    ) -> Result<Response<pb::ListServiceAccountsResponse>, Status> {
        let req = req.into_inner();
        let page = self.0.pages.parse(req.page_size, &req.page_token, "")?;
        let mut tx = self.0.db.system().await?;
        let mut rows = store::list_service_accounts(&mut tx, page.after, page.limit()).await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = self.0.pages.finish(&page, &mut rows, |r| r.id);
        Ok(Response::new(pb::ListServiceAccountsResponse {
            service_accounts: rows.into_iter().map(sa_to_proto).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn disable_service_account(
        &self,
        req: Request<pb::DisableServiceAccountRequest>,
    ) -> Result<Response<pb::ServiceAccount>, Status> {
        let actor = actor(&req);
        let id = Violations::require_id("id", &req.get_ref().id)?;
        let missing = || Error::not_found("SERVICE_ACCOUNT_NOT_FOUND", "service account");
        let mut tx = self.0.db.system().await?;
        let before = store::get_service_account(&mut tx, id)
            .await?
            .ok_or_else(missing)?;
        let row = store::disable_service_account(&mut tx, id)
            .await?
            .ok_or_else(missing)?;
        if before.disabled_at != row.disabled_at {
            actor
                .event(
                    "identity.service_account.disable",
                    "identity.service_account",
                    id,
                )
                .org(PLATFORM_ORG)
                .change("disable_time", before.disabled_at, row.disabled_at)
                .record(&mut tx)
                .await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(sa_to_proto(row)))
    }
}
