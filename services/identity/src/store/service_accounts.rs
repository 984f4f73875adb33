//! Service accounts.

use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_platform::page::Page;
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::{Stored, Walk, find_by, maybe, one, page_of, select};

use crate::domain::{NewServiceAccount, ServiceAccount, ServiceAccountId};

impl Stored for ServiceAccount {
    const TABLE: &'static str = "service_accounts";
    const COLUMNS: &'static str = SA_COLS;
}

/// Every column but the key's hash, which is never read.
const SA_COLS: &str = "id, name, description, service, capabilities, created_at, disabled_at";

/// Inserts a service account whose key hashes to `key_hash`.
pub async fn insert_service_account(
    tx: &mut Tx,
    sa: &NewServiceAccount,
    key_hash: &[u8],
) -> Result<ServiceAccount> {
    let sql = format!(
        "INSERT INTO service_accounts (id, name, description, service, capabilities, key_hash) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SA_COLS}"
    );
    let q = sqlx::query(&sql)
        .bind(Uuid::now_v7())
        .bind(&sa.name)
        .bind(&sa.description)
        .bind(&sa.service)
        .bind(&sa.capabilities)
        .bind(key_hash);
    one(tx, q).await
}

/// The service account a key belongs to.
pub async fn find_service_account(tx: &mut Tx, key_hash: &[u8]) -> Result<Option<ServiceAccount>> {
    find_by(tx, ("key_hash", key_hash), false).await
}

/// The service account `name`, its row locked `FOR UPDATE` when `lock`.
pub async fn find_service_account_named(
    tx: &mut Tx,
    name: &str,
    lock: bool,
) -> Result<Option<ServiceAccount>> {
    find_by(tx, ("name", name), lock).await
}

/// Sets a service account's capabilities.
pub async fn set_service_account_capabilities(
    tx: &mut Tx,
    id: ServiceAccountId,
    capabilities: &[String],
) -> Result<()> {
    sqlx::query("UPDATE service_accounts SET capabilities = $2 WHERE id = $1")
        .bind(id.uuid())
        .bind(capabilities)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn get_service_account(
    tx: &mut Tx,
    id: ServiceAccountId,
) -> Result<Option<ServiceAccount>> {
    find_by(tx, ("id", id.uuid()), false).await
}

pub async fn list_service_accounts(tx: &mut Tx, page: Page) -> Result<Vec<ServiceAccount>> {
    let q = QueryBuilder::new(format!("{} WHERE TRUE", select::<ServiceAccount>()));
    page_of(tx, q, ("id", Walk::Oldest), page).await
}

pub async fn disable_service_account(
    tx: &mut Tx,
    id: ServiceAccountId,
) -> Result<Option<ServiceAccount>> {
    let sql = format!(
        "UPDATE service_accounts SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1 RETURNING {SA_COLS}"
    );
    maybe(tx, sqlx::query(&sql).bind(id.uuid())).await
}
