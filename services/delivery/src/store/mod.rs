//! SQL of the delivery service: rows read into domain values by the names
//! of their fields (`foundry_resource::row`), every query led by `org_id` and served by an index that
//! starts with it. Lists with optional filters are assembled from fixed
//! fragments ([`sqlx::QueryBuilder`]) so that each filter combination is its
//! own statement whose plan uses the index for that filter. Constraint
//! names map to errors in the file of their table and nowhere else.

mod dependencies;
pub use dependencies::*;
mod features;
pub use features::*;
mod gates;
pub use gates::*;
mod goals;
mod members;
pub use members::*;
mod planner_phases;
mod programs;
pub use programs::*;
mod requirements;
pub use requirements::*;
mod risks;
mod sprints;
pub use sprints::*;
mod subtasks;
mod tasks;
pub use tasks::*;
mod work_orders;
pub use work_orders::*;
mod workstreams;
pub use workstreams::*;

use foundry_platform::page::Walk;
use foundry_resource::Resource;
use sqlx::{Column, Postgres, QueryBuilder, Row};

/// Row locks: see [`Lock`]'s documentation for the order that keeps the
/// delivery rules race free.
pub use foundry_platform::db::Lock;

/// A column list (`"a, b"`) with every column qualified by `alias`
/// (`"t.a, t.b"`), for queries that join.
pub(crate) fn qualified(columns: &str, alias: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ends a newest-first keyset list whose key column is `key`: rows before
/// the cursor, if any, in descending key order, at most `limit`.
pub(crate) fn newest_first(
    q: &mut QueryBuilder<'_, Postgres>,
    key: &str,
    before: Option<uuid::Uuid>,
    limit: i64,
) {
    foundry_platform::page::push_keyset(q, key, Walk::Newest, before, limit);
}

/// The start of a list of `R`: its columns from its table, of `org_id`.
/// Continue it with filters (` AND …`) and an order ([`newest_first`],
/// [`in_position_order`]), then [`fetch_rows`].
pub(crate) fn select<R: Resource>(org_id: uuid::Uuid) -> QueryBuilder<'static, Postgres> {
    let mut q = QueryBuilder::new("");
    push_select::<R>(&mut q, org_id);
    q
}

/// Pushes the start of [`select`] onto `q`.
pub(crate) fn push_select<R: Resource>(q: &mut QueryBuilder<'_, Postgres>, org_id: uuid::Uuid) {
    q.push(format!(
        "SELECT {} FROM {} WHERE org_id = ",
        R::COLUMNS,
        R::TABLE
    ))
    .push_bind(org_id);
}

/// The result column of an [`under`] statement between the parent's
/// columns and the children's: true on the parent's row.
const PARENT_ROW: &str = "parent row";

/// A list of children read with their parent in one statement, so one
/// round trip: the row of `P` keyed `parent` in `org_id` (`None` when the
/// organization has none; whether the caller sees it is the caller's to
/// check, `foundry_resource::seen`), and the rows of `R` that `children`
/// selects. `children` pushes one `SELECT` of `R`'s columns, in the order
/// of `order` and limited, with binds of its own; in it `$1` is `org_id`
/// and `$2` the parent's id.
///
/// The statement: `WITH parent AS (SELECT <P's columns> FROM <P's table>
/// WHERE org_id = $1 AND id = $2) SELECT p.*, <PARENT_ROW>, c.* FROM parent
/// p FULL JOIN (<children>) c ON false ORDER BY <order>`: one row for the
/// parent, beside none of a child, and one for each child, beside none of
/// the parent; each is decoded from its own columns
/// ([`Resource::decode_columns`]), the parent's row not repeated.
pub async fn under<P: Resource, R: Resource>(
    conn: &mut sqlx::PgConnection,
    org_id: uuid::Uuid,
    parent: P::Key,
    order: Cursor,
    children: impl FnOnce(&mut QueryBuilder<'static, Postgres>),
) -> foundry_platform::Result<(Option<P>, Vec<R>)> {
    let mut q = under_query::<P>(org_id, parent.into(), order, children);
    let rows = q.build().fetch_all(conn).await?;
    let (mut found, mut listed) = (None, Vec::with_capacity(rows.len()));
    let Some(first) = rows.first() else {
        return Ok((found, listed));
    };
    let at = first.try_column(PARENT_ROW)?.ordinal();
    for row in &rows {
        if row.try_get::<bool, _>(at)? {
            found = Some(P::decode_columns(row, 0..at)?);
        } else {
            listed.push(R::decode_columns(row, at + 1..row.len())?);
        }
    }
    Ok((found, listed))
}

/// The statement of [`under`] (public for the tests that `EXPLAIN` it).
pub fn under_query<P: Resource>(
    org_id: uuid::Uuid,
    parent: uuid::Uuid,
    order: Cursor,
    children: impl FnOnce(&mut QueryBuilder<'static, Postgres>),
) -> QueryBuilder<'static, Postgres> {
    let mut q = QueryBuilder::new(format!(
        "WITH parent AS (SELECT {} FROM {} WHERE org_id = ",
        P::COLUMNS,
        P::TABLE
    ));
    q.push_bind(org_id)
        .push(" AND id = ")
        .push_bind(parent)
        .push(format!(
            ") SELECT p.*, p.id IS NOT NULL AS \"{PARENT_ROW}\", c.* \
             FROM parent p FULL JOIN ("
        ));
    children(&mut q);
    q.push(format!(") c ON false ORDER BY {}", order.outer()));
    q
}

/// Ends a keyset list in `(position, id)` order: rows after the cursor, if
/// any, at most `limit` (on the table's `<table>_position_idx`).
pub(crate) fn in_position_order(
    q: &mut QueryBuilder<'_, Postgres>,
    after: Option<(i64, uuid::Uuid)>,
    limit: i64,
) {
    if let Some((position, id)) = after {
        q.push(" AND (position, id) > (")
            .push_bind(position)
            .push("::integer, ")
            .push_bind(id)
            .push(")");
    }
    q.push(" ORDER BY position, id LIMIT ").push_bind(limit);
}

/// Runs a `SELECT` of `R`'s columns: its rows, decoded.
pub(crate) async fn fetch_rows<R: Resource>(
    mut q: QueryBuilder<'_, Postgres>,
    conn: &mut sqlx::PgConnection,
) -> foundry_platform::Result<Vec<R>> {
    let rows = q.build().fetch_all(conn).await?;
    rows.iter().map(R::decode).collect()
}

/// A text column of `R` that a list filters on, and the value it must have
/// (`None`: no filter).
pub type Filter = (&'static str, Option<&'static str>);

/// Where a page of a keyset list starts, and so its order.
#[derive(Clone, Copy, Debug)]
pub enum Cursor {
    /// Newest first, before this id (the parent's `<table>_<column>_key`
    /// index or a filter's leads).
    Before(Option<uuid::Uuid>),
    /// By `(position, id)`, after this pair (`<table>_position_idx`).
    After(Option<(i64, uuid::Uuid)>),
}

impl Cursor {
    /// Its order of the rows of an [`under`] statement's children (`c`).
    fn outer(self) -> &'static str {
        match self {
            Cursor::Before(_) => "c.id DESC",
            Cursor::After(_) => "c.position, c.id",
        }
    }
}

/// One page of `R` under its parent `P`, with the parent ([`under`]):
/// the rows whose `column` is `parent`, matching every set filter, from
/// `cursor` on, at most `limit`. The statement is fixed per filter
/// combination, so each plans on its own index.
pub async fn list_children<P: Resource, R: Resource>(
    conn: &mut sqlx::PgConnection,
    org_id: uuid::Uuid,
    (column, parent): (&'static str, P::Key),
    filters: &[Filter],
    cursor: Cursor,
    limit: i64,
) -> foundry_platform::Result<(Option<P>, Vec<R>)> {
    under(conn, org_id, parent, cursor, |q| {
        push_select::<R>(q, org_id);
        q.push(format!(" AND {column} = ")).push_bind(parent.into());
        for (column, value) in filters {
            if let Some(value) = value {
                q.push(format!(" AND {column} = ")).push_bind(*value);
            }
        }
        match cursor {
            Cursor::Before(before) => newest_first(q, "id", before, limit),
            Cursor::After(after) => in_position_order(q, after, limit),
        }
    })
    .await
}

/// Sets one column of the row of `key` (`assignment` binds `value` as
/// `$3`), bumping its version; returns the stored value.
pub(crate) async fn set_column<R, V>(
    tx: &mut foundry_platform::db::Tx,
    org_id: uuid::Uuid,
    key: R::Key,
    assignment: &str,
    value: V,
) -> foundry_platform::Result<R>
where
    R: Resource,
    V: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send,
{
    let row = sqlx::query(&format!(
        "UPDATE {} SET {assignment}, version = version + 1, updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {}",
        R::TABLE,
        R::COLUMNS
    ))
    .bind(org_id)
    .bind(key.into())
    .bind(value)
    .fetch_one(&mut **tx)
    .await
    .map_err(R::write_error)?;
    R::decode(&row)
}

/// Deletes the rows of `table` whose `column` is `id` in `org_id`;
/// returns how many went.
pub(crate) async fn delete_where(
    tx: &mut foundry_platform::db::Tx,
    table: &'static str,
    column: &'static str,
    org_id: uuid::Uuid,
    id: uuid::Uuid,
) -> foundry_platform::Result<u64> {
    Ok(sqlx::query(&format!(
        "DELETE FROM {table} WHERE org_id = $1 AND {column} = $2"
    ))
    .bind(org_id)
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// The count `sql` selects (`SELECT count(*) … WHERE org_id = $1 AND … =
/// $2`) for `org_id` and `id`.
pub(crate) async fn count(
    tx: &mut foundry_platform::db::Tx,
    sql: &str,
    org_id: uuid::Uuid,
    id: uuid::Uuid,
) -> foundry_platform::Result<u64> {
    let n: i64 = sqlx::query_scalar(sql)
        .bind(org_id)
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
    Ok(n.unsigned_abs())
}

/// `e` as `taken()` when it violates the unique `constraint`, else as
/// itself: a unique constraint's error, mapped in its table's file.
pub(crate) fn unique_or(
    e: sqlx::Error,
    constraint: &str,
    taken: impl FnOnce() -> foundry_platform::Error,
) -> foundry_platform::Error {
    if foundry_platform::error::is_unique_violation(&e, constraint) {
        taken()
    } else {
        e.into()
    }
}

/// What a program's child is made within: its program (`program_id`), held
/// by its insert ([`foundry_resource::Within`]).
pub(crate) const fn program_child<N>(id: fn(&N) -> uuid::Uuid) -> foundry_resource::Within<N> {
    foundry_resource::Within::project::<crate::domain::Program>("program_id", id)
}

/// The UUIDs of typed ids, to bind as a `uuid[]`.
pub(crate) fn uuids<K: ?Sized>(ids: &[foundry_domain::Id<K>]) -> Vec<uuid::Uuid> {
    ids.iter().map(|i| i.uuid()).collect()
}

/// A program's children with assignees (tasks, work orders): their
/// assignee index.
pub trait Assigned: Resource {
    /// Its assignee index.
    const ASSIGNEES: Assignees;
}

/// Filters of a list of a program's assigned children (ListTasks,
/// ListWorkOrders); all that are set apply.
#[derive(Clone, Copy, Debug)]
pub struct AssignedFilter {
    pub program_id: uuid::Uuid,
    /// A stored status.
    pub status: Option<&'static str>,
    pub assignee_id: Option<uuid::Uuid>,
    /// Two columns naming a link (`requirement_id`, `sprint_id`), each
    /// with the id it must hold, if any.
    pub links: [(&'static str, Option<uuid::Uuid>); 2],
}

/// The `R` of a program that `f` selects, newest first, with the program
/// ([`under`]). The leading index follows the most selective filter: an
/// assignee walks the assignee index's `<table>_user_idx` and joins each
/// row by key; a link its `<table>_<link>_idx` (`tasks_sprint_idx`); a
/// status `<table>_status_idx`; none `<table>_program_id_key`. The other
/// filters are checked on the rows found.
pub async fn list_assigned<R: Assigned>(
    conn: &mut sqlx::PgConnection,
    org_id: uuid::Uuid,
    f: AssignedFilter,
    before: Option<uuid::Uuid>,
    limit: i64,
) -> foundry_platform::Result<(Option<crate::domain::Program>, Vec<R>)> {
    let program = crate::domain::ProgramId::from_uuid(f.program_id);
    under(conn, org_id, program, Cursor::Before(before), |q| {
        let cols = qualified(R::COLUMNS, "r");
        q.push(format!("SELECT {cols} FROM "));
        // The keyset column of the walked index.
        let key = R::ASSIGNEES.scan_children(q, R::TABLE, org_id, f.program_id, f.assignee_id);
        for (column, id) in f.links {
            if let Some(id) = id {
                q.push(format!(" AND r.{column} = ")).push_bind(id);
            }
        }
        if let Some(s) = f.status {
            q.push(" AND r.status = ").push_bind(s);
        }
        newest_first(q, &key, before, limit);
    })
    .await
}

/// Moves the `R` of `key` to `status` (its `status` column), bumping its
/// version; returns the stored value.
pub async fn set_status<R: Resource, S: crate::domain::StoredEnum>(
    tx: &mut foundry_platform::db::Tx,
    org_id: uuid::Uuid,
    key: R::Key,
    status: S,
) -> foundry_platform::Result<R> {
    set_column(tx, org_id, key, "status = $3", status.as_str()).await
}

/// The assignee index of a program's children (tasks, work orders): a
/// `table` of `(org_id, <key>, user_id, program_id)` kept equal to each
/// child's `assignee_ids`, walked by `<table>_user_idx` to list a user's.
#[derive(Clone, Copy, Debug)]
pub struct Assignees {
    /// The index table.
    pub table: &'static str,
    /// Its column holding the child's id.
    pub key: &'static str,
}

impl Assignees {
    /// Makes the index hold exactly `users` for child `id` of `program_id`,
    /// whose users were `held` (none: it is new, so the index holds nothing
    /// of it). No statement when that is so already (a new child with no
    /// users, an update that keeps them), else one.
    pub(crate) async fn set<K: ?Sized, P: ?Sized, U: ?Sized>(
        self,
        tx: &mut foundry_platform::db::Tx,
        org_id: uuid::Uuid,
        (id, program_id): (foundry_domain::Id<K>, foundry_domain::Id<P>),
        held: Option<&[foundry_domain::Id<U>]>,
        users: &[foundry_domain::Id<U>],
    ) -> foundry_platform::Result<()> {
        let Assignees { table, key } = self;
        let same = |held: &[foundry_domain::Id<U>]| {
            held.len() == users.len() && users.iter().all(|u| held.contains(u))
        };
        // Those no longer listed leave (an update's); the listed are added.
        let gone = match held {
            None if users.is_empty() => return Ok(()),
            Some(held) if same(held) => return Ok(()),
            None => "",
            Some(_) => &format!(
                "WITH gone AS (DELETE FROM {table} \
                 WHERE org_id = $1 AND {key} = $2 AND NOT (user_id = ANY($3))) "
            ),
        };
        let (id, program_id, users) = (id.uuid(), program_id.uuid(), uuids(users));
        sqlx::query(&format!(
            "{gone}INSERT INTO {table} (org_id, {key}, user_id, program_id) \
             SELECT $1, $2, u, $4 FROM unnest($3::uuid[]) AS u ON CONFLICT DO NOTHING"
        ))
        .bind(org_id)
        .bind(id)
        .bind(users)
        .bind(program_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Removes child `id` from the index.
    pub(crate) async fn remove(
        self,
        tx: &mut foundry_platform::db::Tx,
        org_id: uuid::Uuid,
        id: uuid::Uuid,
    ) -> foundry_platform::Result<()> {
        delete_where(tx, self.table, self.key, org_id, id).await?;
        Ok(())
    }

    /// Continues `q` (`SELECT … FROM `) with the children of `program_id`
    /// in `children AS r`: through this index (joined by key) when listing
    /// an `assignee`'s, else the children's table alone. Returns the keyset
    /// column of the walked index.
    fn scan_children(
        self,
        q: &mut QueryBuilder<'_, Postgres>,
        children: &'static str,
        org_id: uuid::Uuid,
        program_id: uuid::Uuid,
        assignee: Option<uuid::Uuid>,
    ) -> String {
        let Assignees { table, key } = self;
        if let Some(user) = assignee {
            q.push(format!(
                "{table} a JOIN {children} r \
                 ON r.org_id = a.org_id AND r.id = a.{key} WHERE a.org_id = "
            ))
            .push_bind(org_id)
            .push(" AND a.program_id = ")
            .push_bind(program_id)
            .push(" AND a.user_id = ")
            .push_bind(user);
            format!("a.{key}")
        } else {
            q.push(format!("{children} r WHERE r.org_id = "))
                .push_bind(org_id)
                .push(" AND r.program_id = ")
                .push_bind(program_id);
            "r.id".to_owned()
        }
    }
}
