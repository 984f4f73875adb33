//! End-to-end tests against the machine's real PostgreSQL binaries.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use foundry_pgembed::{EmbeddedPg, PgError, PgOptions, find_bin_dir_with};
use sqlx::{Connection, PgConnection, Row};

async fn connect(pg: &EmbeddedPg) -> PgConnection {
    PgConnection::connect(&pg.url("postgres"))
        .await
        .expect("connect to the embedded cluster")
}

fn accepts_tcp(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

#[tokio::test]
async fn an_ephemeral_cluster_answers_select_1_over_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = EmbeddedPg::start(PgOptions::ephemeral(dir.path()))
        .await
        .expect("start");
    assert!(
        pg.url("app").starts_with("postgres://foundry:")
            && pg
                .url("app")
                .ends_with(&format!("@127.0.0.1:{}/app", pg.port())),
        "the URL names the superuser with its password"
    );

    let mut conn = connect(&pg).await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .expect("select 1");
    assert_eq!(one, 1);
    let fsync: String = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&mut conn)
        .await
        .expect("show fsync");
    assert_eq!(fsync, "off");
    conn.close().await.expect("close");

    let port = pg.port();
    pg.stop().await.expect("stop");
    assert!(!accepts_tcp(port), "port {port} still open after stop");
}

#[tokio::test]
async fn a_stopped_cluster_restarts_on_the_same_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");

    let pg = EmbeddedPg::start(PgOptions::persistent(dir.path()))
        .await
        .expect("first start");
    let mut conn = connect(&pg).await;
    sqlx::query("CREATE TABLE kept (v text)")
        .execute(&mut conn)
        .await
        .expect("create table");
    sqlx::query("INSERT INTO kept VALUES ('still here')")
        .execute(&mut conn)
        .await
        .expect("insert");
    conn.close().await.expect("close");
    pg.stop().await.expect("stop");

    let pg = EmbeddedPg::start(PgOptions::persistent(dir.path()))
        .await
        .expect("second start");
    let mut conn = connect(&pg).await;
    let row = sqlx::query("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await
        .expect("table survived the restart");
    assert_eq!(row.get::<String, _>("v"), "still here");
    conn.close().await.expect("close");
    pg.stop().await.expect("stop again");

    assert!(dir.path().join("postgres.log").exists());
}

#[tokio::test]
async fn a_second_start_on_a_live_data_dir_reports_the_running_pid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = EmbeddedPg::start(PgOptions::ephemeral(dir.path()))
        .await
        .expect("start");

    let err = EmbeddedPg::start(PgOptions::ephemeral(dir.path()))
        .await
        .expect_err("second start must fail");
    match &err {
        PgError::AlreadyRunning { pid } => assert_eq!(*pid, pg.pid()),
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    assert!(err.to_string().contains(&pg.pid().to_string()));

    // The failed start must not have disturbed the running server.
    let mut conn = connect(&pg).await;
    sqlx::query("SELECT 1")
        .execute(&mut conn)
        .await
        .expect("still serving");
    conn.close().await.expect("close");
    pg.stop().await.expect("stop");
}

#[tokio::test]
async fn a_stale_postmaster_pid_from_a_crash_is_cleared() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = EmbeddedPg::start(PgOptions::ephemeral(dir.path()))
        .await
        .expect("start");
    let lock = std::fs::read_to_string(dir.path().join("postmaster.pid")).expect("pid file");
    pg.stop().await.expect("stop");

    // A pid that certainly belongs to no live process: a child we have already reaped.
    let mut gone = std::process::Command::new("true").spawn().expect("spawn");
    let gone_pid = gone.id();
    gone.wait().expect("reap");
    let mut lines: Vec<String> = lock.lines().map(str::to_owned).collect();
    lines[0] = gone_pid.to_string();
    std::fs::write(dir.path().join("postmaster.pid"), lines.join("\n") + "\n")
        .expect("write stale pid file");

    let pg = EmbeddedPg::start(PgOptions::ephemeral(dir.path()))
        .await
        .expect("start over a stale pid file");
    assert_ne!(pg.pid(), gone_pid);
    pg.stop().await.expect("stop");
}

#[tokio::test]
async fn a_non_cluster_directory_is_refused_rather_than_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("precious.txt"), "data").expect("write");
    let err = EmbeddedPg::start(PgOptions::ephemeral(dir.path()))
        .await
        .expect_err("must refuse");
    assert!(matches!(err, PgError::NotACluster { .. }), "{err:?}");
    assert!(dir.path().join("precious.txt").exists());
}

#[test]
fn a_bogus_bin_dir_override_names_the_package_to_install() {
    let err = find_bin_dir_with(Some(Path::new("/nonexistent/pg/bin")))
        .expect_err("bogus dir must be rejected");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/pg/bin"), "{msg}");
    assert!(msg.contains("apt-get install postgresql"), "{msg}");
    assert!(msg.contains("FOUNDRY_PG_BIN_DIR"), "{msg}");
}

#[test]
fn the_server_binaries_of_this_machine_are_found() {
    let dir = find_bin_dir_with(None).expect("PostgreSQL is installed on test machines");
    assert!(dir.join("initdb").exists() && dir.join("postgres").exists());
}

#[tokio::test]
async fn the_server_stops_when_the_process_that_started_it_dies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut owner = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn stand-in owner");
    let pg = EmbeddedPg::start_watching(PgOptions::ephemeral(dir.path()), owner.id())
        .await
        .expect("start");
    let port = pg.port();
    assert!(accepts_tcp(port));

    // As with kill -9 of a test process: no Drop, no stop(), just gone.
    owner.kill().expect("kill owner");
    owner.wait().expect("reap owner");

    let deadline = Instant::now() + Duration::from_secs(5);
    while accepts_tcp(port) {
        assert!(
            Instant::now() < deadline,
            "postgres on port {port} outlived its owner by 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The postmaster itself must be gone, not merely the listener.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{}", pg.pid())).exists() {
        assert!(Instant::now() < deadline, "postmaster {} lingers", pg.pid());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An ephemeral cluster's files go with it: no data left behind.
    let deadline = Instant::now() + Duration::from_secs(5);
    while dir.path().join("PG_VERSION").exists() {
        assert!(
            Instant::now() < deadline,
            "the ephemeral data directory was left behind"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stopping an already-stopped cluster is fine.
    pg.stop().await.expect("stop after the watchdog");
}

/// The effective uid of this process (from `/proc`, no unsafe code).
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|uid| uid.parse().ok())
        .expect("Uid line")
}

/// `psql` as another OS user (a uid that owns nothing here), asking for no password.
fn psql_as_stranger(port: u16) -> std::process::Output {
    let psql = find_bin_dir_with(None).expect("binaries").join("psql");
    std::process::Command::new("setpriv")
        .args(["--reuid=4242", "--regid=4242", "--clear-groups", "--"])
        .arg(psql)
        .args(["-w", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-U",
            foundry_pgembed::SUPERUSER,
            "-d",
            "postgres",
            "-Atc",
            "SELECT 1",
        ])
        .env("HOME", "/nonexistent")
        .env_remove("PGPASSWORD")
        .current_dir("/")
        .output()
        .expect("run psql through setpriv")
}

#[tokio::test]
async fn embedded_postgres_is_open_to_every_local_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = EmbeddedPg::start(PgOptions::ephemeral(dir.path()))
        .await
        .expect("start");

    // The owner's URL works.
    connect(&pg).await.close().await.expect("close");

    // The superuser without its password is refused.
    let bare = format!(
        "postgres://{}@127.0.0.1:{}/postgres",
        foundry_pgembed::SUPERUSER,
        pg.port()
    );
    let err = PgConnection::connect(&bare)
        .await
        .expect_err("a connection without the password must be refused");
    assert!(
        err.to_string().contains("password"),
        "refused for the password, not something else: {err}"
    );

    // No line of pg_hba.conf trusts anyone.
    let hba = std::fs::read_to_string(dir.path().join("pg_hba.conf")).expect("pg_hba.conf");
    let trusting: Vec<&str> = hba
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| l.split_whitespace().any(|w| w == "trust"))
        .collect();
    assert!(trusting.is_empty(), "pg_hba.conf trusts: {trusting:?}");

    // Another OS user can neither connect nor read the password.
    assert_eq!(
        effective_uid(),
        0,
        "the tests run as root, to act as another uid"
    );
    let out = psql_as_stranger(pg.port());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("no password supplied"),
        "another uid must be asked for the password it cannot have: {} {said}",
        String::from_utf8_lossy(&out.stdout)
    );
    let password = pg.password_file();
    assert_eq!(password, dir.path().join(foundry_pgembed::PASSWORD_FILE));
    let read = std::process::Command::new("setpriv")
        .args([
            "--reuid=4242",
            "--regid=4242",
            "--clear-groups",
            "--",
            "cat",
        ])
        .arg(&password)
        .output()
        .expect("cat as another uid");
    assert!(
        !read.status.success()
            && String::from_utf8_lossy(&read.stderr).contains("Permission denied"),
        "another uid read {}",
        password.display()
    );
    let meta = std::fs::metadata(&password).expect("the password file exists");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    pg.stop().await.expect("stop");
}

#[tokio::test]
async fn a_data_dir_of_an_earlier_version_is_secured_on_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = EmbeddedPg::start(PgOptions::persistent(dir.path()))
        .await
        .expect("first start");
    let mut conn = connect(&pg).await;
    sqlx::raw_sql("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        .execute(&mut conn)
        .await
        .expect("seed");
    conn.close().await.expect("close");
    pg.stop().await.expect("stop");

    // As an earlier version left it: trust on loopback, no password file, no password set.
    std::fs::write(
        dir.path().join("pg_hba.conf"),
        "host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n",
    )
    .expect("old pg_hba.conf");
    std::fs::remove_file(dir.path().join(foundry_pgembed::PASSWORD_FILE)).expect("rm password");
    let pg = EmbeddedPg::start(PgOptions::persistent(dir.path()))
        .await
        .expect("start the old directory");
    let old_url = format!(
        "postgres://{}@127.0.0.1:{}/postgres",
        foundry_pgembed::SUPERUSER,
        pg.port()
    );
    let refused = PgConnection::connect(&old_url).await;
    assert!(refused.is_err(), "the old directory still lets anyone in");
    let mut conn = connect(&pg).await;
    let kept: String = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await
        .expect("data kept");
    assert_eq!(kept, "still here");
    conn.close().await.expect("close");
    let url = pg.url("postgres");
    pg.stop().await.expect("stop");

    // The next start keeps the same password.
    let pg = EmbeddedPg::start(PgOptions::persistent(dir.path()))
        .await
        .expect("third start");
    assert_eq!(pg.url("postgres").split('@').next(), url.split('@').next());
    connect(&pg).await.close().await.expect("close");
    pg.stop().await.expect("stop");
}
