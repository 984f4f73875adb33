//! The per-service binary `foundry-identity`, as a split deployment runs
//! it: a separate process, configured by environment, migrating an empty
//! database with `--migrate`, serving health and the identity API, and
//! stopping cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use foundry_proto::foundry::identity::v1 as pb;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn refuses_to_start_without_a_database_url() {
    let out = Command::new(env!("CARGO_BIN_EXE_foundry-identity"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs DATABASE_URL"), "stderr: {err}");
}

#[tokio::test]
async fn migrates_serves_and_stops_on_sigterm() {
    let url = foundry_testkit::empty_database().await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_foundry-identity"))
        .env("DATABASE_URL", &url)
        .env("FOUNDRY_LISTEN", format!("127.0.0.1:{port}"))
        .env("FOUNDRY_LOG_FORMAT", "json")
        .arg("--migrate")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let channel = loop {
        if let Ok(c) = tonic::transport::Channel::from_shared(endpoint.clone())
            .unwrap()
            .connect()
            .await
        {
            break c;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "foundry-identity exited early"
        );
        assert!(Instant::now() < deadline, "foundry-identity did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let health = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: "foundry.identity.v1.AuthService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
    // The schema was migrated and signing keys were made: JWKS answers.
    let jwks = pb::auth_service_client::AuthServiceClient::new(channel.clone())
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!jwks.keys.is_empty());
    // The tenancy layer is on: an org-scoped call without a token is refused.
    let r = pb::organization_service_client::OrganizationServiceClient::new(channel)
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await;
    assert_eq!(r.unwrap_err().code(), tonic::Code::Unauthenticated);

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let signalled = Instant::now();
    let deadline = signalled + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "foundry-identity did not exit after SIGTERM"
        );
        // An async sleep: the client connection must keep being driven to
        // see the server's GOAWAY and close, as a real client would.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(
        signalled.elapsed() < foundry_tenancy::server::DRAIN_DEADLINE,
        "an idle connection was drained at once, not cut at the deadline"
    );
}
