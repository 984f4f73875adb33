//! Organizations.

use async_trait::async_trait;
use foundry_platform::Result;
use foundry_platform::db::{Lock, Tx};
use foundry_platform::page::Page;
use foundry_resource::{self as resource, Resource};
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::{Walk, one, page_of};

use crate::domain::{NewOrganization, Organization};

/// An organization is its own tenant: its generated `org_id` is its id.
#[async_trait]
impl Resource for Organization {
    type New = NewOrganization;
    foundry_resource::names!("identity", "organization", "organizations");

    /// Its own fields (a taken slug: see [`super::refused`]).
    async fn write(&self, _: &Organization, tx: &mut Tx, _: Uuid) -> Result<Organization> {
        let sql = "UPDATE organizations SET name = $2, slug = $3, settings = $4, \
                   version = version + 1, updated_at = now() WHERE id = $1 RETURNING *";
        write_org(tx, sql, self.id, &self.fields).await
    }
}

/// Runs `sql` (an insert or update of one organization, binding `$1` id,
/// `$2` name, `$3` slug, `$4` settings, returning every column) and
/// returns what it wrote (a taken slug: see [`super::refused`]).
async fn write_org(tx: &mut Tx, sql: &str, id: Uuid, o: &NewOrganization) -> Result<Organization> {
    let q = sqlx::query(sql)
        .bind(id)
        .bind(&o.name)
        .bind(&o.slug)
        .bind(&o.settings);
    one(tx, q).await
}

pub async fn insert_org(tx: &mut Tx, id: Uuid, o: &NewOrganization) -> Result<Organization> {
    let sql =
        "INSERT INTO organizations (id, name, slug, settings) VALUES ($1, $2, $3, $4) RETURNING *";
    write_org(tx, sql, id, o).await
}

pub async fn get_org(tx: &mut Tx, id: Uuid, lock: Lock) -> Result<Option<Organization>> {
    resource::read::<Organization>(tx, id, id, lock).await
}

/// Whether organization `id` exists and is not deleted (read with `lock`).
pub async fn org_live(tx: &mut Tx, id: Uuid, lock: Lock) -> Result<bool> {
    Ok(get_org(tx, id, lock)
        .await?
        .is_some_and(|o| o.deleted_at.is_none()))
}

pub async fn list_user_orgs(tx: &mut Tx, user_id: Uuid, page: Page) -> Result<Vec<Organization>> {
    let mut q = QueryBuilder::new(
        "SELECT o.* FROM organizations o WHERE o.deleted_at IS NULL AND o.id IN \
         (SELECT m.org_id FROM memberships m WHERE m.user_id = ",
    );
    q.push_bind(user_id).push(")");
    page_of(tx, q, ("o.id", Walk::Oldest), page).await
}

pub async fn set_org_deleted(tx: &mut Tx, id: Uuid, deleted: bool) -> Result<Organization> {
    let sql = "UPDATE organizations SET deleted_at = CASE WHEN $2 THEN now() END, version = version + 1, updated_at = now() \
         WHERE id = $1 RETURNING *";
    one(tx, sqlx::query(sql).bind(id).bind(deleted)).await
}

/// Lets the transaction also act for `user_id` (`app.user_id`), beside the
/// organization it was begun for: a user-scoped create (a new
/// organization) claims its request id in the user's scope.
pub async fn act_for_user(tx: &mut Tx, user_id: Uuid) -> Result<()> {
    // A Uuid's text form cannot inject anything.
    sqlx::query(&format!("SET LOCAL app.user_id = '{user_id}'"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
