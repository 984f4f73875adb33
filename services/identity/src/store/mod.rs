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

use foundry_platform::Result;
use foundry_platform::db::Tx;
use foundry_platform::page::Page;
use sqlx::{Postgres, QueryBuilder};

/// Which way a list runs by id.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Order {
    /// Ascending: the page goes on after the last id.
    Oldest,
    /// Descending: the page goes on before the last id.
    Newest,
}

/// One page of a list: `q` is the query up to its own conditions (a
/// `WHERE` clause to be continued with `AND`); the page's condition on
/// `id`, the order and the limit are added here, and each row is
/// converted with `convert`.
pub(crate) async fn page_of<R, T>(
    tx: &mut Tx,
    mut q: QueryBuilder<'_, Postgres>,
    (id, order): (&str, Order),
    page: Page,
    convert: impl Fn(R) -> Result<T>,
) -> Result<Vec<T>>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let (cmp, dir) = match order {
        Order::Oldest => (">", "ASC"),
        Order::Newest => ("<", "DESC"),
    };
    if let Some(after) = page.after {
        q.push(format!(" AND {id} {cmp} ")).push_bind(after);
    }
    q.push(format!(" ORDER BY {id} {dir} LIMIT "))
        .push_bind(page.limit());
    let rows: Vec<R> = q.build_query_as().fetch_all(&mut **tx).await?;
    rows.into_iter().map(convert).collect()
}
