//! Service accounts.

use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_platform::page::Page;
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::{Stored, Walk, find_by, page_of, taken};

use crate::domain::{NewServiceAccount, ServiceAccount, ServiceAccountId};

impl Stored for ServiceAccount {
    const TABLE: &'static str = "service_accounts";
}

/// Every column but the key's hash, which is never read.
const SA_COLS: &str = "id, name, description, created_at, disabled_at";
const SELECT_SA: &str =
    "SELECT id, name, description, created_at, disabled_at FROM service_accounts";

/// Inserts a service account whose key hashes to `key_hash`.
pub async fn insert_service_account(
    tx: &mut Tx,
    sa: &NewServiceAccount,
    key_hash: &[u8],
) -> Result<ServiceAccount> {
    let row = sqlx::query(&format!(
        "INSERT INTO service_accounts (id, name, description, key_hash) VALUES ($1, $2, $3, $4) \
         RETURNING {SA_COLS}"
    ))
    .bind(Uuid::now_v7())
    .bind(&sa.name)
    .bind(&sa.description)
    .bind(key_hash)
    .fetch_one(&mut **tx)
    .await
    .map_err(taken(
        "service_accounts_name_key",
        (
            "NAME_TAKEN",
            "service_account.name",
            "a service account with this name exists",
        ),
    ))?;
    ServiceAccount::read(&row)
}

/// The service account a key belongs to.
pub async fn find_service_account(tx: &mut Tx, key_hash: &[u8]) -> Result<Option<ServiceAccount>> {
    let by = ("key_hash", key_hash.to_vec());
    find_by(tx, SELECT_SA, by, false).await
}

pub async fn get_service_account(
    tx: &mut Tx,
    id: ServiceAccountId,
) -> Result<Option<ServiceAccount>> {
    find_by(tx, SELECT_SA, ("id", id.uuid()), false).await
}

pub async fn list_service_accounts(tx: &mut Tx, page: Page) -> Result<Vec<ServiceAccount>> {
    let q = QueryBuilder::new(format!("SELECT {SA_COLS} FROM service_accounts WHERE TRUE"));
    page_of(tx, q, ("id", Walk::Oldest), page).await
}

pub async fn disable_service_account(
    tx: &mut Tx,
    id: ServiceAccountId,
) -> Result<Option<ServiceAccount>> {
    let row = sqlx::query(&format!(
        "UPDATE service_accounts SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1 RETURNING {SA_COLS}"
    ))
    .bind(id.uuid())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(ServiceAccount::read).transpose()
}
