//! Tenant reads in one round trip (`Db::read`) never serve one
//! organization's statement under another's setting: many organizations
//! interleaved on a pool of one read connection, with reads cancelled at
//! every stage, failing statements and abandoned transactions in between,
//! and each statement (no `WHERE org_id`: row-level security alone) sees
//! its own organization's rows and no other's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use foundry_platform::db::{Db, ReadPath};
use rand::Rng;
use sqlx::Connection;
use uuid::Uuid;

/// `n` jobs of `org` in delivery's `jobs` table (any tenant table would
/// do: its policy admits the rows of `app.org_id`).
async fn seed(db: &Db, org: Uuid, n: usize) {
    let mut tx = db.tenant(org).await.expect("tx");
    for _ in 0..n {
        sqlx::query(
            "INSERT INTO jobs (id, org_id, kind, args, state, run_at, max_attempts, created_at) \
             VALUES ($1, $2, 'seed', '{}', 'scheduled', now() + interval '1 day', 1, now())",
        )
        .bind(Uuid::now_v7())
        .bind(org)
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");
}

/// What `org`'s read sees: each organization's row count.
async fn counts(db: &Db, org: Uuid) -> Vec<(Uuid, i64)> {
    let mut read = db.read(org).await.expect("read");
    sqlx::query_as("SELECT org_id, count(*) FROM jobs GROUP BY org_id ORDER BY org_id")
        .fetch_all(&mut *read)
        .await
        .expect("select")
}

#[tokio::test]
async fn interleaved_organizations_on_one_read_connection_each_see_only_their_own_rows() {
    let url = foundry_testkit::fresh_database().await;
    // One connection: every read below takes the same one in turn.
    let db = Db::connect(&url, "delivery", 1).await.expect("pool");
    let orgs: Vec<(Uuid, i64)> = (1..=6).map(|n| (Uuid::now_v7(), n)).collect();
    for (org, n) in &orgs {
        seed(&db, *org, *n as usize).await;
    }
    let mut rng = rand::thread_rng();
    let (mut checked, mut cancelled, mut failed) = (0, 0, 0);
    for round in 0..400 {
        let (org, n) = orgs[rng.gen_range(0..orgs.len())];
        match round % 4 {
            // A read cancelled somewhere between its checkout (the
            // setting) and the end of its statement.
            1 => {
                let wait = Duration::from_micros(rng.gen_range(0..3_000));
                let read = tokio::time::timeout(wait, async {
                    let mut read = db.read(org).await.expect("read");
                    sqlx::query("SELECT pg_sleep(0.002), org_id FROM jobs")
                        .fetch_all(&mut *read)
                        .await
                });
                if read.await.is_err() {
                    cancelled += 1;
                }
            }
            // A statement that fails.
            2 => {
                let mut read = db.read(org).await.expect("read");
                let r = sqlx::query("SELECT 1 / (count(*) - count(*)) FROM jobs")
                    .fetch_one(&mut *read)
                    .await;
                assert!(r.is_err(), "division by zero");
                failed += 1;
            }
            // A transaction begun on a read, its setting changed to
            // another organization's, then dropped unfinished.
            3 if round % 8 == 3 => {
                use sqlx::Connection;
                let mut read = db.read(org).await.expect("read");
                let mut tx = read.begin().await.expect("begin");
                let (other, _) = orgs[(round / 8) % orgs.len()];
                sqlx::query("SELECT set_config('app.org_id', $1, true)")
                    .bind(other.to_string())
                    .execute(&mut *tx)
                    .await
                    .expect("set");
                drop(tx);
            }
            _ => {
                assert_eq!(
                    counts(&db, org).await,
                    vec![(org, n)],
                    "round {round}: the read of {org} sees its {n} rows alone"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 150, "{checked} reads checked");
    assert!(cancelled > 0, "some reads were cancelled");
    assert!(failed > 0, "some statements failed");
    // After all of it, every organization still reads its own rows.
    for (org, n) in &orgs {
        assert_eq!(counts(&db, *org).await, vec![(*org, *n)]);
    }
}

#[tokio::test]
async fn a_read_of_an_organization_with_no_rows_sees_nothing_of_the_last_one_read() {
    let url = foundry_testkit::fresh_database().await;
    let db = Db::connect(&url, "delivery", 1).await.expect("pool");
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    seed(&db, a, 3).await;
    assert_eq!(counts(&db, a).await, vec![(a, 3)]);
    assert_eq!(counts(&db, b).await, vec![], "b has no rows");
    // And a again, on the connection b set last.
    assert_eq!(counts(&db, a).await, vec![(a, 3)]);
}

#[tokio::test]
async fn reads_in_transactions_see_their_own_organization_and_leave_nothing_open() {
    let url = foundry_testkit::fresh_database().await;
    let db = Db::connect(&url, "delivery", 1).await.expect("pool");
    db.set_read_path(ReadPath::Transaction);
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    seed(&db, a, 2).await;
    seed(&db, b, 1).await;
    for _ in 0..5 {
        assert_eq!(counts(&db, a).await, vec![(a, 2)]);
        assert_eq!(counts(&db, b).await, vec![(b, 1)]);
    }
    // A read is then a transaction of the pool, committed when dropped:
    // the pool has one connection, so each read above (and the one below)
    // got it only because the one before had given it back.
    let read = db.read(a).await.expect("read");
    assert!(read.is_in_transaction(), "the read runs in a transaction");
    drop(read);
    // And back on the session path, the same answers.
    db.set_read_path(ReadPath::Session);
    assert_eq!(counts(&db, a).await, vec![(a, 2)]);
    assert_eq!(counts(&db, b).await, vec![(b, 1)]);
}
