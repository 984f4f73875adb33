//! The tenant pool pings a connection before a transaction takes it only
//! when it has been idle a while: one killed while idle (a PostgreSQL
//! restart) is replaced, not handed to a call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use foundry_platform::db::Db;
use sqlx::Connection;
use uuid::Uuid;

#[tokio::test]
async fn a_connection_killed_while_idle_is_replaced_before_a_transaction_takes_it() {
    let url = foundry_testkit::fresh_database().await;
    let db = Db::connect(&url, "delivery", 1).await.expect("pool");
    let org = Uuid::now_v7();
    let pid: i32 = {
        let mut tx = db.tenant(org).await.expect("tx");
        let pid = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *tx)
            .await
            .expect("pid");
        tx.commit().await.expect("commit");
        pid
    };
    let mut admin = sqlx::PgConnection::connect(&url).await.expect("admin");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .expect("terminate");
    assert!(killed);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut tx = db.tenant(org).await.expect("a live connection");
    let now: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *tx)
        .await
        .expect("pid");
    assert_ne!(now, pid, "a new connection");
    tx.commit().await.expect("commit");
}
