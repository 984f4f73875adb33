//! The requirement dependency graph.

use foundry_platform::db::Tx;
use foundry_platform::{Error, Result};
use foundry_resource::{Resource, row};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Cursor, newest_first, qualified, under, under_query, unique_or};
use crate::domain::{Dependency, ProgramId, Requirement, RequirementId};

/// The columns of an edge, as [`Dependency`] reads them.
const COLS: &str = "program_id, requirement_id, depends_on_id, created_by, created_at";

/// An edge as read.
fn edge(row: &PgRow) -> Result<Dependency> {
    row::decode(row, "requirement_dependencies")
}

/// The edges of a program, `(requirement, depends_on)`, on
/// `requirement_dependencies_program_idx` (index only), at most `limit`.
pub async fn program_edges(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: ProgramId,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>> {
    Ok(sqlx::query_as(
        "SELECT requirement_id, depends_on_id FROM requirement_dependencies \
         WHERE org_id = $1 AND program_id = $2 LIMIT $3",
    )
    .bind(org_id)
    .bind(program_id.uuid())
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

/// The requirements `from` depends on, directly or not: a walk on the
/// primary key, each requirement visited once (`UNION`).
const WALK_UPSTREAM: &str = "\
WITH RECURSIVE walk(id) AS ( \
  SELECT $2::uuid \
  UNION \
  SELECT d.depends_on_id FROM requirement_dependencies d JOIN walk w \
    ON d.org_id = $1 AND d.requirement_id = w.id)";

/// Whether `from` depends on `to`, directly or not: the cycle check of a
/// new edge `to → from`. It walks only what `from` depends on, in the
/// database, and stops once it meets `to`; nothing comes back but the
/// answer.
pub async fn depends_on(tx: &mut Tx, org_id: Uuid, from: Uuid, to: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar(&format!(
        "{WALK_UPSTREAM} SELECT EXISTS (SELECT 1 FROM walk WHERE id = $3)"
    ))
    .bind(org_id)
    .bind(from)
    .bind(to)
    .fetch_one(&mut **tx)
    .await?)
}

/// The edges out of everything `from` depends on (itself included), at
/// most `limit`: where a cycle through `from` is named from, once
/// [`depends_on`] found one.
pub async fn edges_upstream(
    tx: &mut Tx,
    org_id: Uuid,
    from: Uuid,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid)>> {
    Ok(sqlx::query_as(&format!(
        "{WALK_UPSTREAM} SELECT d.requirement_id, d.depends_on_id \
         FROM requirement_dependencies d JOIN walk w \
           ON d.org_id = $1 AND d.requirement_id = w.id LIMIT $3"
    ))
    .bind(org_id)
    .bind(from)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

/// Whether the edge `requirement → depends_on` exists.
pub async fn has_dependency(
    tx: &mut Tx,
    org_id: Uuid,
    requirement: Uuid,
    depends_on: Uuid,
) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM requirement_dependencies \
         WHERE org_id = $1 AND requirement_id = $2 AND depends_on_id = $3)",
    )
    .bind(org_id)
    .bind(requirement)
    .bind(depends_on)
    .fetch_one(&mut **tx)
    .await?)
}

pub async fn insert_dependency(
    tx: &mut Tx,
    org_id: Uuid,
    program_id: ProgramId,
    requirement_id: RequirementId,
    depends_on_id: RequirementId,
    created_by: Uuid,
) -> Result<Dependency> {
    let row = sqlx::query(&format!(
        "INSERT INTO requirement_dependencies (org_id, program_id, requirement_id, depends_on_id, created_by) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(program_id.uuid())
    .bind(requirement_id.uuid())
    .bind(depends_on_id.uuid())
    .bind(created_by)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| unique_or(e, "requirement_dependencies_pkey", dependency_exists))?;
    edge(&row)
}

/// `ALREADY_EXISTS` for an edge that is there.
pub fn dependency_exists() -> Error {
    Error::already_exists(
        "DEPENDENCY_EXISTS",
        "depends_on_id",
        "the requirement already depends on that requirement",
    )
}

pub async fn delete_dependency(
    tx: &mut Tx,
    org_id: Uuid,
    requirement_id: RequirementId,
    depends_on_id: RequirementId,
) -> Result<Option<Dependency>> {
    let row = sqlx::query(&format!(
        "DELETE FROM requirement_dependencies \
         WHERE org_id = $1 AND requirement_id = $2 AND depends_on_id = $3 RETURNING {COLS}"
    ))
    .bind(org_id)
    .bind(requirement_id.uuid())
    .bind(depends_on_id.uuid())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(edge).transpose()
}

/// Which way to walk the edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From a requirement to what it depends on (the primary key).
    Upstream,
    /// From a requirement to what depends on it
    /// (`requirement_dependencies_depends_on_idx`).
    Downstream,
}

/// The requirements one step (or, `transitive`, any number of steps) away
/// from `requirement_id`, newest first after `before`, with the
/// requirement itself ([`under`]): [`dependencies_sql`].
pub async fn list_dependencies(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
    requirement_id: RequirementId,
    (direction, transitive): (Direction, bool),
    before: Option<Uuid>,
    limit: i64,
) -> Result<(Option<Requirement>, Vec<Requirement>)> {
    under(conn, org_id, requirement_id, Cursor::Before(before), |q| {
        push_dependencies(q, (direction, transitive), before, limit);
    })
    .await
}

/// The statement of [`list_dependencies`] (for the tests that `EXPLAIN`
/// it), binding `$1` org, `$2` requirement, then the cursor if
/// `after_cursor`, then the limit.
pub fn dependencies_sql(direction: Direction, transitive: bool, after_cursor: bool) -> String {
    let before = after_cursor.then(Uuid::nil);
    under_query::<Requirement>(Uuid::nil(), Uuid::nil(), Cursor::Before(before), |q| {
        push_dependencies(q, (direction, transitive), before, 0);
    })
    .sql()
    .to_owned()
}

/// The children of [`list_dependencies`], whose `$1` is the organization
/// and `$2` the requirement. The walk is a recursive CTE whose every step
/// is an index look-up; `UNION` keeps each requirement once (and would
/// stop on a cycle, which is never stored).
fn push_dependencies(
    q: &mut QueryBuilder<'static, Postgres>,
    (direction, transitive): (Direction, bool),
    before: Option<Uuid>,
    limit: i64,
) {
    let (from, to) = match direction {
        Direction::Upstream => ("requirement_id", "depends_on_id"),
        Direction::Downstream => ("depends_on_id", "requirement_id"),
    };
    let step = if transitive {
        format!(
            " UNION SELECT d.{to} FROM requirement_dependencies d JOIN walk w \
             ON d.org_id = $1 AND d.{from} = w.id"
        )
    } else {
        String::new()
    };
    let cols = qualified(Requirement::COLUMNS, "r");
    q.push(format!(
        "WITH RECURSIVE walk(id) AS (\
           SELECT {to} FROM requirement_dependencies WHERE org_id = $1 AND {from} = $2{step}) \
         SELECT {cols} FROM requirements r JOIN walk w ON r.id = w.id WHERE r.org_id = $1"
    ));
    newest_first(q, "r.id", before, limit);
}
