//! A transaction's last writes sent with its `COMMIT`
//! (`foundry_platform::commit::with`): they commit with the transaction or
//! not at all, values that look like SQL stay values, and the connection
//! comes back to the pool clean (the transaction the trailing `BEGIN`
//! opened is rolled back before anyone takes it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use foundry_platform::commit::{self, Statement};
use foundry_platform::db::Db;
use uuid::Uuid;

const INSERT: &str = "INSERT INTO jobs (id, org_id, kind, args, state, run_at, max_attempts, \
                      created_at) VALUES ($1, $2, $3, $4, 'scheduled', now(), 1, now())";

fn job(org: Uuid, kind: &str) -> (Uuid, Statement) {
    let id = Uuid::now_v7();
    let args = serde_json::json!({ "kind": kind, "quote": "it's", "slash": "a\\b" });
    let s = Statement::new(INSERT)
        .bind(id)
        .bind(org)
        .bind(kind.to_owned())
        .bind(args);
    (id, s)
}

/// Inserts a job of `kind` in `tx` (a statement of its own, values bound).
async fn insert(tx: &mut foundry_platform::db::Tx, org: Uuid, kind: &str) {
    sqlx::query(INSERT)
        .bind(Uuid::now_v7())
        .bind(org)
        .bind(kind)
        .bind(serde_json::json!({}))
        .execute(&mut **tx)
        .await
        .expect("insert");
}

/// The kind and args of `org`'s jobs, oldest first (read as the
/// organization).
async fn jobs(db: &Db, org: Uuid) -> Vec<(String, serde_json::Value)> {
    let mut read = db.read(org).await.expect("read");
    sqlx::query_as("SELECT kind, args FROM jobs ORDER BY id")
        .fetch_all(&mut *read)
        .await
        .expect("jobs")
}

#[tokio::test]
async fn last_writes_commit_with_the_transaction_or_not_at_all() {
    let url = foundry_testkit::fresh_database().await;
    // One connection: each transaction below takes the one before's.
    let db = Db::connect(&url, "delivery", 1).await.expect("pool");
    let org = Uuid::now_v7();

    // A write before, two with the commit; values quoted as SQL stay text.
    let tricky = "x'); DELETE FROM jobs; --\\'";
    let mut tx = db.tenant(org).await.expect("tx");
    insert(&mut tx, org, "before").await;
    commit::with(tx, vec![job(org, tricky).1, job(org, "é ☃").1])
        .await
        .expect("commit");
    let kinds: Vec<String> = jobs(&db, org).await.into_iter().map(|j| j.0).collect();
    assert_eq!(kinds, ["before", tricky, "é ☃"]);
    let args = &jobs(&db, org).await[1].1;
    assert_eq!(args["quote"], "it's");
    assert_eq!(args["slash"], "a\\b");

    // The next transaction on the connection is a transaction of its own
    // (begun after the commit, not the empty one the commit's `BEGIN`
    // opened), and the last one's setting did not outlive it.
    let committed: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut *db.read(org).await.expect("read"))
        .await
        .expect("clock");
    let other = Uuid::now_v7();
    let mut tx = db.tenant(other).await.expect("tx");
    let (began, setting): (chrono::DateTime<chrono::Utc>, String) =
        sqlx::query_as("SELECT now(), current_setting('app.org_id')")
            .fetch_one(&mut *tx)
            .await
            .expect("state");
    assert!(began > committed, "{began} after {committed}");
    assert_eq!(setting, other.to_string());
    tx.rollback().await.expect("rollback");
    let mut tx = db.tenant(org).await.expect("tx");
    let (_, s) = job(org, "rolled back");
    sqlx::query(&s.sql().unwrap())
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.rollback().await.expect("rollback");
    assert_eq!(jobs(&db, org).await.len(), 3);

    // A last write that fails takes the whole transaction with it.
    let mut tx = db.tenant(org).await.expect("tx");
    insert(&mut tx, org, "lost").await;
    let (id, first) = job(org, "first");
    let again = Statement::new(INSERT)
        .bind(id)
        .bind(org)
        .bind("again")
        .bind(serde_json::json!({}));
    let e = commit::with(tx, vec![first, again]).await;
    assert!(e.is_err(), "a duplicate key fails the commit");
    assert_eq!(jobs(&db, org).await.len(), 3, "nothing of it committed");

    // And the connection still works, in a transaction of its own.
    let (_, s) = job(org, "after");
    let tx = db.tenant(org).await.expect("tx");
    commit::with(tx, vec![s]).await.expect("commit");
    assert_eq!(jobs(&db, org).await.len(), 4);
    // Another organization's transaction on it sees none of these.
    let tx = db.tenant(Uuid::now_v7()).await.expect("tx");
    commit::with(tx, vec![]).await.expect("commit");
    assert_eq!(jobs(&db, Uuid::now_v7()).await.len(), 0);
}
