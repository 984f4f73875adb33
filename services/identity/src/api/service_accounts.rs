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
use crate::api::{actor, committed, page_of};
use crate::domain::{self, NewServiceAccount, SecretKind, ServiceAccount};
use crate::store;
use foundry_outbox::{Actor, PLATFORM_ORG};
use foundry_platform::db::Tx;

const RESOURCE: &str = "identity.service_account";

/// Handlers of `ServiceAccountService`.
#[derive(Clone, Debug)]
pub struct ServiceAccounts(pub Arc<State>);

fn sa_to_proto(sa: &ServiceAccount) -> pb::ServiceAccount {
    pb::ServiceAccount {
        id: sa.id.to_string(),
        name: sa.fields.name.clone(),
        description: sa.fields.description.clone(),
        create_time: Some(timestamp(sa.created_at)),
        disable_time: opt_timestamp(sa.disabled_at),
        key: String::new(),
        service: sa.fields.service.clone(),
        capabilities: sa.fields.capabilities.clone(),
    }
}

/// A `CreateServiceAccountRequest` as a [`NewServiceAccount`]; `holds`
/// says whether the caller holds a capability (it may grant only those).
fn parse_create(
    req: &pb::CreateServiceAccountRequest,
    holds: impl Fn(&str) -> bool,
) -> Result<NewServiceAccount, Error> {
    let empty = pb::ServiceAccount::default();
    let sa = req.service_account.as_ref().unwrap_or(&empty);
    let mut v = Violations::new();
    let name = v.slug("service_account.name", &sa.name);
    let description = v.text("service_account.description", &sa.description, 0, 1000);
    let service_ok = sa.service.is_empty()
        || (sa.service.len() <= 64
            && sa.service.starts_with(|c: char| c.is_ascii_lowercase())
            && sa
                .service
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    if !service_ok {
        v.add(
            "service_account.service",
            "must be empty or a service name: a-z, 0-9 and '_', starting with a letter, at most 64 characters",
        );
    }
    let mut capabilities = Vec::with_capacity(sa.capabilities.len());
    for (i, c) in sa.capabilities.iter().enumerate() {
        let field = format!("service_account.capabilities[{i}]");
        if !domain::CAPABILITIES.contains(&c.as_str()) {
            v.add(
                field,
                format!("must be one of {}", domain::CAPABILITIES.join(", ")),
            );
        } else if capabilities.contains(c) {
            v.add(field, "is given twice");
        } else {
            capabilities.push(c.clone());
        }
    }
    let new = v.finish_with(|| {
        Some(NewServiceAccount {
            name: name?,
            description: description?,
            service: sa.service.clone(),
            capabilities,
        })
    })?;
    match new.capabilities.iter().find(|c| !holds(c)) {
        Some(c) => Err(Error::permission_denied(
            "CAPABILITY_NOT_HELD",
            format!(
                "a service account may grant only capabilities it holds, and the caller does not hold {c}"
            ),
        )),
        None => Ok(new),
    }
}

/// Creates a service account with its audit event; returns it and its key
/// (shown once). Shared by the RPC and the suite's own bootstrap.
pub(crate) async fn create(
    tx: &mut Tx,
    actor: &Actor,
    new: &NewServiceAccount,
) -> Result<(ServiceAccount, String), Error> {
    let key = domain::mint_secret(SecretKind::Service);
    let sa = store::insert_service_account(tx, new, &key.hash).await?;
    actor
        .event("identity.service_account.create", RESOURCE, sa.id)
        .org(PLATFORM_ORG)
        .created(&sa)
        .record(tx)
        .await?;
    Ok((sa, key.value))
}

/// Grants the service account `before` those of `capabilities` it lacks
/// (a relay account made by an earlier version, before its service had a
/// subscriber that needs one), recording `identity.service_account.update`;
/// its id.
pub(crate) async fn grant_missing(
    tx: &mut Tx,
    actor: &Actor,
    before: ServiceAccount,
    capabilities: &[String],
) -> Result<domain::ServiceAccountId, Error> {
    let missing: Vec<&String> = capabilities
        .iter()
        .filter(|c| !before.fields.capabilities.contains(c))
        .collect();
    if missing.is_empty() {
        return Ok(before.id);
    }
    let mut after = before.clone();
    after
        .fields
        .capabilities
        .extend(missing.into_iter().cloned());
    store::set_service_account_capabilities(tx, after.id, &after.fields.capabilities).await?;
    actor
        .event("identity.service_account.update", RESOURCE, after.id)
        .org(PLATFORM_ORG)
        .diff(&before, &after)
        .record(tx)
        .await?;
    Ok(after.id)
}

#[tonic::async_trait]
impl ServiceAccountService for ServiceAccounts {
    #[tracing::instrument(skip_all)]
    async fn create_service_account(
        &self,
        req: Request<pb::CreateServiceAccountRequest>,
    ) -> Result<Response<pb::ServiceAccount>, Status> {
        let actor = actor(&req);
        let caller = foundry_tenancy::caller(&req)?;
        let new = parse_create(req.get_ref(), |c| caller.can(c))?;
        let mut tx = self.0.db.system().await?;
        let (sa, key) = create(&mut tx, &actor, &new).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ServiceAccount {
            key,
            ..sa_to_proto(&sa)
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn disable_service_account(
        &self,
        req: Request<pb::DisableServiceAccountRequest>,
    ) -> Result<Response<pb::ServiceAccount>, Status> {
        let actor = actor(&req);
        let id = Violations::require_id_of("id", &req.get_ref().id)?;
        let missing = || Error::not_found("SERVICE_ACCOUNT_NOT_FOUND", "service account");
        let mut tx = self.0.db.system().await?;
        let before = store::get_service_account(&mut tx, id)
            .await?
            .ok_or_else(missing)?;
        let sa = store::disable_service_account(&mut tx, id)
            .await?
            .ok_or_else(missing)?;
        if before != sa {
            actor
                .event("identity.service_account.disable", RESOURCE, id)
                .org(PLATFORM_ORG)
                .diff(&before, &sa)
                .record(&mut tx)
                .await?;
        }
        Ok(committed(tx, &sa, sa_to_proto).await?)
    }

    #[tracing::instrument(skip_all)]
    async fn list_service_accounts(
        &self,
        req: Request<pb::ListServiceAccountsRequest>,
    ) -> Result<Response<pb::ListServiceAccountsResponse>, Status> {
        let req = req.into_inner();
        let page = self.0.pages.parse(req.page_size, &req.page_token, "")?;
        let mut out = pb::ListServiceAccountsResponse::default();
        let mut tx = self.0.db.system().await?;
        let rows = store::list_service_accounts(&mut tx, page).await?;
        tx.commit().await.map_err(Error::from)?;
        (out.service_accounts, out.next_page_token) =
            page_of(&self.0, &page, rows, |s| s.id.uuid(), sa_to_proto);
        Ok(Response::new(out))
    }
}
