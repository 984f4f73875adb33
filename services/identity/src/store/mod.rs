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

use async_trait::async_trait;
use foundry_platform::db::Tx;
use foundry_platform::error::constraint_violation;
use foundry_platform::page::Page;
use foundry_platform::page::{Walk, push_keyset};
use foundry_platform::{Error, Result};
use foundry_resource::{Resource, row};
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::{Secret, SecretKind};

/// A domain value read from the rows of its table by the names of its
/// fields ([`row::decode`]); a [`Resource`] is read as it says.
pub(crate) trait Stored: DeserializeOwned {
    /// The table.
    const TABLE: &'static str;
    /// The columns it is read from: never a secret's hash.
    const COLUMNS: &'static str = "*";

    /// The value of a row.
    fn read(row: &PgRow) -> Result<Self> {
        row::decode(row, Self::TABLE)
    }
}

impl<R: Resource> Stored for R {
    const TABLE: &'static str = R::TABLE;
    const COLUMNS: &'static str = R::COLUMNS;

    fn read(row: &PgRow) -> Result<R> {
        R::decode(row)
    }
}

/// How a resource made with a secret shown once (an API key, an
/// invitation's token) is inserted: with the hash of the secret minted for
/// it, never the secret. What [`Resource::insert`] is to the
/// resources `foundry_resource::create` makes, this is to
/// `api::create_with_secret`.
#[async_trait]
pub trait InsertWithSecret: Resource {
    /// The kind of secret `new` is made with.
    fn secret_kind(new: &Self::New) -> SecretKind;

    /// Inserts `new` with `secret`'s hash, made by `created_by`.
    async fn insert(
        new: &Self::New,
        secret: &Secret,
        tx: &mut Tx,
        org_id: Uuid,
        created_by: Uuid,
    ) -> Result<Self>;
}

/// What a write that violates the unique `constraint` is told, if the
/// constraint is one a caller can run into: every constraint name of the
/// schema that maps to an error is here.
fn violated(constraint: &str) -> Option<Error> {
    let taken = Error::already_exists;
    Some(match constraint {
        "users_email_key" => taken("EMAIL_TAKEN", "email", "a user with this email exists"),
        "organizations_slug_key" => taken(
            "SLUG_TAKEN",
            "organization.slug",
            "an organization with this slug exists",
        ),
        "memberships_org_user_key" => {
            taken("ALREADY_MEMBER", "user_id", "the user is already a member")
        }
        "invitations_pending_email_key" => taken(
            "INVITATION_PENDING",
            "invitation.email",
            "this email already has a pending invitation; resend it instead",
        ),
        "service_accounts_name_key" => taken(
            "NAME_TAKEN",
            "service_account.name",
            "a service account with this name exists",
        ),
        "linked_accounts_issuer_subject_key" => Error::aborted(
            "CONCURRENT_SIGN_IN",
            "the same account signed in twice at once; retry",
        ),
        _ => return None,
    })
}

/// A failed write as its caller sees it: the violation of a unique
/// constraint it can run into as what [`violated`] says, anything else as
/// itself.
pub(crate) fn refused(e: sqlx::Error) -> Error {
    let known = constraint_violation(&e)
        .filter(|(_, code)| code == "23505")
        .and_then(|(constraint, _)| violated(constraint));
    known.unwrap_or_else(|| e.into())
}

/// A statement with its binds.
pub(crate) type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// The row `q` returns, read as a `T`; a violated constraint is what
/// [`refused`] says.
pub(crate) async fn one<T: Stored>(tx: &mut Tx, q: Query<'_>) -> Result<T> {
    let row = q.fetch_one(&mut **tx).await.map_err(refused)?;
    T::read(&row)
}

/// The row `q` returns if any, read as a `T` (in a transaction, or on a
/// `Db::read` connection).
pub(crate) async fn maybe<T: Stored>(conn: &mut PgConnection, q: Query<'_>) -> Result<Option<T>> {
    let row = q.fetch_optional(conn).await.map_err(refused)?;
    row.as_ref().map(T::read).transpose()
}

/// `SELECT <columns> FROM <table>` of a `T`.
pub(crate) fn select<T: Stored>() -> String {
    format!("SELECT {} FROM {}", T::COLUMNS, T::TABLE)
}

/// The one `T` whose `column` is `value`, its row locked `FOR UPDATE`
/// when `lock`.
pub(crate) async fn find_by<T, V>(
    tx: &mut Tx,
    (column, value): (&str, V),
    lock: bool,
) -> Result<Option<T>>
where
    T: Stored,
    V: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
{
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("{} WHERE {column} = $1{lock}", select::<T>());
    maybe(tx, sqlx::query(&sql).bind(value)).await
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
/// `id`, the order and the limit are added here. One statement: in a
/// transaction, or on a `Db::read` connection.
pub(crate) async fn page_of<T: Stored>(
    conn: &mut PgConnection,
    mut q: QueryBuilder<'_, Postgres>,
    (id, order): (&str, Walk),
    page: Page,
) -> Result<Vec<T>> {
    push_keyset(&mut q, id, order, page.after, page.limit());
    let rows = q.build().fetch_all(conn).await?;
    rows.iter().map(T::read).collect()
}
