//! The database role a service acts as, checked at start-up: a deployment
//! whose login role is not a superuser migrates, and a service whose role
//! would step around row-level security (superuser, BYPASSRLS, owner of its
//! tables) refuses to start, saying why. On a cluster of the test's own, as
//! roles are the cluster's, not one database's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use foundry_pgembed::{EmbeddedPg, PgOptions};
use sqlx::{Connection, Executor, PgConnection};

mod common;

/// `foundry-delivery` started on `url`: its exit within 30 s, and its
/// standard error.
fn delivery_exit(url: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_foundry-delivery"))
        .env("DATABASE_URL", url)
        .env(
            "FOUNDRY_LISTEN",
            format!("127.0.0.1:{}", common::free_port()),
        )
        .env("FOUNDRY_IDENTITY_ENDPOINT", "http://127.0.0.1:9")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("foundry-delivery did not refuse to start");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.success(), err)
}

#[tokio::test]
async fn a_service_refuses_to_start_as_a_role_that_steps_around_row_level_security() {
    let dir = common::data_dir();
    let pg = EmbeddedPg::start(PgOptions::ephemeral(dir.path().join("pg")))
        .await
        .unwrap();
    foundry::ensure_database(&pg.url("postgres"), "foundry")
        .await
        .unwrap();
    let mut admin = PgConnection::connect(&pg.url("foundry")).await.unwrap();
    // What deploy/k8s/README.md asks of a DBA: the service role, and a
    // login role (no superuser) that is a member of it and may create the
    // schema.
    admin
        .execute(
            "CREATE ROLE foundry_delivery NOLOGIN NOSUPERUSER NOBYPASSRLS; \
             CREATE ROLE delivery_login LOGIN PASSWORD 'login-secret' NOSUPERUSER NOBYPASSRLS; \
             GRANT foundry_delivery TO delivery_login; \
             GRANT CREATE ON DATABASE foundry TO delivery_login",
        )
        .await
        .unwrap();
    let login = format!(
        "postgres://delivery_login:login-secret@127.0.0.1:{}/foundry",
        pg.port()
    );

    // Migrations run as the non-superuser login role.
    common::migrate_only(env!("CARGO_BIN_EXE_foundry-delivery"), &login);
    // And the pool's role passes the check.
    let db = foundry_platform::db::Db::connect(&login, "delivery", 1)
        .await
        .unwrap();
    db.close().await;

    for (make, undo, why) in [
        (
            "ALTER ROLE foundry_delivery BYPASSRLS",
            "ALTER ROLE foundry_delivery NOBYPASSRLS",
            "has BYPASSRLS",
        ),
        (
            "ALTER ROLE foundry_delivery SUPERUSER",
            "ALTER ROLE foundry_delivery NOSUPERUSER",
            "is a superuser",
        ),
        (
            "ALTER TABLE delivery.programs OWNER TO foundry_delivery",
            "ALTER TABLE delivery.programs OWNER TO delivery_login",
            "owns its tables programs",
        ),
    ] {
        admin.execute(make).await.unwrap();
        let (ok, err) = delivery_exit(&login);
        assert!(!ok, "{make}: it started");
        assert!(
            err.contains("refusing to start") && err.contains(why),
            "{make}: {err}"
        );
        admin.execute(undo).await.unwrap();
    }
    pg.stop().await.unwrap();
}
