//! SQL of the identity service: runtime queries whose rows are read into
//! domain types by the names of their fields ([`Stored`], stored enums
//! loudly), every tenant query led by `org_id`. Constraint names map to errors here
//! and nowhere else. One module per aggregate.

mod api_keys;
mod invitations;
mod linked;
mod memberships;
mod organizations;
mod service_accounts;
mod sessions;
mod users;

pub use api_keys::*;
pub use invitations::*;
pub use linked::*;
pub use memberships::*;
pub use organizations::*;
pub use service_accounts::*;
pub use sessions::*;
pub use users::*;

use foundry_platform::db::Tx;
use foundry_platform::error::is_unique_violation;
use foundry_platform::page::Page;
use foundry_platform::page::{Walk, push_keyset};
use foundry_platform::{Error, Result};
use foundry_resource::{Resource, row};
use serde::de::DeserializeOwned;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

/// A domain value read from the rows of its table by the names of its
/// fields ([`row::decode`]); a [`Resource`] is read as it says.
pub(crate) trait Stored: DeserializeOwned {
    /// The table (named when a row does not decode).
    const TABLE: &'static str;

    /// The value of a row.
    fn read(row: &PgRow) -> Result<Self> {
        row::decode(row, Self::TABLE)
    }
}

impl<R: Resource> Stored for R {
    const TABLE: &'static str = R::TABLE;

    fn read(row: &PgRow) -> Result<R> {
        R::decode(row)
    }
}

/// Maps a violation of the unique `constraint` to `error`, any other
/// failure to itself.
pub(crate) fn unique(
    constraint: &str,
    error: impl FnOnce() -> Error,
) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| {
        if is_unique_violation(&e, constraint) {
            error()
        } else {
            e.into()
        }
    }
}

/// Maps a violation of the unique `constraint` to `ALREADY_EXISTS` with
/// `(reason, field, message)`, any other failure to itself.
pub(crate) fn taken(
    constraint: &'static str,
    (reason, field, message): (&'static str, &'static str, &'static str),
) -> impl FnOnce(sqlx::Error) -> Error {
    unique(constraint, move || {
        Error::already_exists(reason, field, message)
    })
}

/// The one row `select` (a `SELECT … FROM …`) finds where `column` is
/// `value`, `FOR UPDATE` when `lock`.
pub(crate) async fn find_by<T, V>(
    tx: &mut Tx,
    select: &str,
    (column, value): (&str, V),
    lock: bool,
) -> Result<Option<T>>
where
    T: Stored,
    V: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
{
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!("{select} WHERE {column} = $1{lock}"))
        .bind(value)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(T::read).transpose()
}

/// `select` (a `SELECT … FROM …`) where `org` (column, id) is the
/// organization, and `filter` (column, value) holds when it has a value:
/// the start of an organization's list.
pub(crate) fn of_org<'a>(
    select: &str,
    (org_column, org_id): (&str, Uuid),
    (column, value): (&str, Option<&'static str>),
) -> QueryBuilder<'a, Postgres> {
    let mut q = QueryBuilder::new(format!("{select} WHERE {org_column} = "));
    q.push_bind(org_id);
    if let Some(value) = value {
        q.push(format!(" AND {column} = ")).push_bind(value);
    }
    q
}

/// One page of a list: `q` is the query up to its own conditions (a
/// `WHERE` clause to be continued with `AND`); the page's condition on
/// `id`, the order and the limit are added here.
pub(crate) async fn page_of<T: Stored>(
    tx: &mut Tx,
    mut q: QueryBuilder<'_, Postgres>,
    (id, order): (&str, Walk),
    page: Page,
) -> Result<Vec<T>> {
    push_keyset(&mut q, id, order, page.after, page.limit());
    let rows = q.build().fetch_all(&mut **tx).await?;
    rows.iter().map(T::read).collect()
}
