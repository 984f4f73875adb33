//! Seeding at scale with `COPY`: organizations and tasks with
//! deterministic ids, so a pgbench script can name the same rows the gRPC
//! callers ask for (`('00000001-0000-7000-8000-' || lpad(to_hex(:i), 12, '0'))::uuid`).
//!
//! Rows are streamed as COPY text in chunks. Foreign-key triggers are
//! skipped (`session_replication_role = replica`): every row references the
//! one program the bench created, so there is nothing for them to find.

use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

/// The id tag of seeded tasks.
pub const TASK: u32 = 1;
/// The id tag of seeded organizations.
pub const ORG: u32 = 2;

/// The `n`th seeded row of kind `tag`.
pub fn id(tag: u32, n: u64) -> Uuid {
    Uuid::from_u128(
        ((tag as u128) << 96) | (0x7000_8000u128 << 48) | (n as u128 & 0xffff_ffff_ffff),
    )
}

/// The same id as SQL over an integer expression (for pgbench scripts).
pub fn id_sql(tag: u32, expr: &str) -> String {
    format!("('{tag:08x}-0000-7000-8000-' || lpad(to_hex(({expr})::bigint), 12, '0'))::uuid")
}

/// Task statuses, cycled through by seeded rows.
pub const STATUSES: [&str; 6] = [
    "backlog",
    "todo",
    "in_progress",
    "in_review",
    "done",
    "blocked",
];

const CHUNK: usize = 1 << 20;

async fn copy(
    url: &str,
    statement: &str,
    range: std::ops::Range<u64>,
    line: impl Fn(u64, &mut String),
) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    conn.execute("SET session_replication_role = replica")
        .await?;
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut buf = String::with_capacity(CHUNK + 512);
    for n in range {
        line(n, &mut buf);
        if buf.len() >= CHUNK {
            copy.send(buf.as_bytes()).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_bytes()).await?;
    }
    copy.finish().await?;
    conn.close().await?;
    Ok(())
}

/// Tasks `range` (by seed number) in one program of one organization.
pub async fn tasks(
    url: &str,
    org: Uuid,
    program: Uuid,
    creator: Uuid,
    range: std::ops::Range<u64>,
) -> anyhow::Result<()> {
    use std::fmt::Write;
    copy(
        url,
        "COPY delivery.tasks (org_id, id, program_id, title, description, status, created_by) FROM STDIN",
        range,
        |n, buf| {
            let _ = writeln!(
                buf,
                "{org}\t{}\t{program}\tSeeded task {n}\tA task the benchmark seeded, about as long as a real one's first line.\t{}\t{creator}",
                id(TASK, n),
                STATUSES[(n % 6) as usize],
            );
        },
    )
    .await
}

/// Organizations `range` (by seed number).
pub async fn organizations(url: &str, range: std::ops::Range<u64>) -> anyhow::Result<()> {
    use std::fmt::Write;
    copy(
        url,
        "COPY identity.organizations (id, name, slug) FROM STDIN",
        range,
        |n, buf| {
            let _ = writeln!(buf, "{}\tSeeded organization {n}\tseed-{n}", id(ORG, n));
        },
    )
    .await
}

/// Refreshes the planner's statistics after a seed.
pub async fn analyze(url: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    conn.execute("ANALYZE identity.organizations; ANALYZE delivery.tasks; CHECKPOINT")
        .await?;
    conn.close().await?;
    Ok(())
}

/// Rows in a table.
pub async fn count(url: &str, table: &str) -> anyhow::Result<i64> {
    let mut conn = PgConnection::connect(url).await?;
    let n = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_the_same_in_rust_and_sql() {
        assert_eq!(
            id(TASK, 0x1234).to_string(),
            "00000001-0000-7000-8000-000000001234"
        );
        assert_eq!(
            id_sql(ORG, ":i"),
            "('00000002-0000-7000-8000-' || lpad(to_hex((:i)::bigint), 12, '0'))::uuid"
        );
    }
}
