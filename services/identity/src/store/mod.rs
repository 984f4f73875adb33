//! SQL of the identity service: runtime `query_as` into private `FromRow`
//! rows decoded into domain types (stored enums loudly), columns listed,
//! every tenant query led by `org_id`. Constraint names map to errors here
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
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::Revision;

/// The stored half of a [`Revision`]: flatten it into a row
/// (`#[sqlx(flatten)]`) that reads `version, created_at, updated_at`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct RevisionRow {
    version: i64,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<RevisionRow> for Revision {
    fn from(r: RevisionRow) -> Revision {
        Revision {
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A row as a query reads it.
pub(crate) trait Row:
    for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin
{
}

impl<R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin> Row for R {}

/// A row decoded into its domain value by a conversion that cannot fail,
/// in the form [`find_by`] and [`page_of`] take.
pub(crate) fn decoded<R: Into<T>, T>(row: R) -> Result<T> {
    Ok(row.into())
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
/// `value`, `FOR UPDATE` when `lock`, converted with `convert`.
pub(crate) async fn find_by<R, T, V>(
    tx: &mut Tx,
    select: &str,
    (column, value): (&str, V),
    lock: bool,
    convert: impl FnOnce(R) -> Result<T>,
) -> Result<Option<T>>
where
    R: Row,
    V: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
{
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row: Option<R> = sqlx::query_as(&format!("{select} WHERE {column} = $1{lock}"))
        .bind(value)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(convert).transpose()
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
/// `id`, the order and the limit are added here, and each row is
/// converted with `convert`.
pub(crate) async fn page_of<R: Row, T>(
    tx: &mut Tx,
    mut q: QueryBuilder<'_, Postgres>,
    (id, order): (&str, Walk),
    page: Page,
    convert: impl Fn(R) -> Result<T>,
) -> Result<Vec<T>> {
    push_keyset(&mut q, id, order, page.after, page.limit());
    let rows: Vec<R> = q.build_query_as().fetch_all(&mut **tx).await?;
    rows.into_iter().map(convert).collect()
}
