//! SQL of the delivery service: runtime `query_as` into `FromRow` rows,
//! columns listed, every query led by `org_id` and served by an index that
//! starts with it. Lists with optional filters are assembled from fixed
//! fragments ([`sqlx::QueryBuilder`]) so that each filter combination is its
//! own statement whose plan uses the index for that filter. Constraint
//! names map to errors in the file of their table and nowhere else.

mod dependencies;
mod features;
mod gates;
mod goals;
mod planner_phases;
mod programs;
mod requirements;
mod risks;
mod sprints;
mod subtasks;
mod tasks;
mod work_orders;
mod workstreams;

pub use dependencies::*;
pub use features::*;
pub use gates::*;
pub use goals::*;
pub use planner_phases::*;
pub use programs::*;
pub use requirements::*;
pub use risks::*;
pub use sprints::*;
pub use subtasks::*;
pub use tasks::*;
pub use work_orders::*;
pub use workstreams::*;

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
    q: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
    key: &str,
    before: Option<uuid::Uuid>,
    limit: i64,
) {
    if let Some(before) = before {
        q.push(format!(" AND {key} < ")).push_bind(before);
    }
    q.push(format!(" ORDER BY {key} DESC LIMIT "))
        .push_bind(limit);
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

/// The UUIDs of typed ids, to bind as a `uuid[]`.
pub(crate) fn uuids<K: ?Sized>(ids: &[foundry_domain::Id<K>]) -> Vec<uuid::Uuid> {
    ids.iter().map(|i| i.uuid()).collect()
}

/// The assignee index of a program's children (tasks, work orders): a
/// `table` of `(org_id, <key>, user_id, program_id)` kept equal to each
/// child's `assignee_ids`, walked by `<table>_user_idx` to list a user's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Assignees {
    /// The index table.
    pub table: &'static str,
    /// Its column holding the child's id.
    pub key: &'static str,
}

impl Assignees {
    /// Makes the index hold exactly `users` for child `id` of `program_id`.
    pub(crate) async fn set(
        self,
        tx: &mut foundry_platform::db::Tx,
        org_id: uuid::Uuid,
        id: uuid::Uuid,
        program_id: uuid::Uuid,
        users: &[uuid::Uuid],
    ) -> foundry_platform::Result<()> {
        let Assignees { table, key } = self;
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE org_id = $1 AND {key} = $2 AND NOT (user_id = ANY($3))"
        ))
        .bind(org_id)
        .bind(id)
        .bind(users)
        .execute(&mut **tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO {table} (org_id, {key}, user_id, program_id) \
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
    /// in `children AS alias`: through this index (joined by key) when
    /// listing an `assignee`'s, else the children's table alone. Returns
    /// the keyset column of the walked index.
    pub(crate) fn scan_children(
        self,
        q: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>,
        children: &'static str,
        alias: &'static str,
        org_id: uuid::Uuid,
        program_id: uuid::Uuid,
        assignee: Option<uuid::Uuid>,
    ) -> String {
        let Assignees { table, key } = self;
        if let Some(user) = assignee {
            q.push(format!(
                "{table} a JOIN {children} {alias} \
                 ON {alias}.org_id = a.org_id AND {alias}.id = a.{key} WHERE a.org_id = "
            ))
            .push_bind(org_id)
            .push(" AND a.program_id = ")
            .push_bind(program_id)
            .push(" AND a.user_id = ")
            .push_bind(user);
            format!("a.{key}")
        } else {
            q.push(format!("{children} {alias} WHERE {alias}.org_id = "))
                .push_bind(org_id)
                .push(format!(" AND {alias}.program_id = "))
                .push_bind(program_id);
            format!("{alias}.id")
        }
    }
}
