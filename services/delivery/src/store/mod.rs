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

/// Row lock taken by a read (PostgreSQL's four row lock modes).
///
/// The order that keeps the delivery rules race free: writers of a row take
/// `NoKeyUpdate` (as their `UPDATE` would); deleters take `Update`; a create
/// takes `KeyShare` on its parent (the parent cannot vanish before commit,
/// yet concurrent edits of the parent do not wait); whoever must see a
/// stable set of a row's children takes `NoKeyUpdate` on the row, and
/// children writers that could break the rule take `Share` on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// A plain read.
    None,
    /// `FOR KEY SHARE`.
    KeyShare,
    /// `FOR SHARE`.
    Share,
    /// `FOR NO KEY UPDATE`.
    NoKeyUpdate,
    /// `FOR UPDATE`.
    Update,
}

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

impl Lock {
    fn sql(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::KeyShare => " FOR KEY SHARE",
            Lock::Share => " FOR SHARE",
            Lock::NoKeyUpdate => " FOR NO KEY UPDATE",
            Lock::Update => " FOR UPDATE",
        }
    }
}
