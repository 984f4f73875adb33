//! The per-service binaries as a split deployment runs them: separate
//! processes configured by environment, each migrating its own schema of
//! one database with `--migrate`, serving health and their API, talking to
//! each other over gRPC (audit and delivery verify tokens with identity's
//! JWKS; identity's outbox relay delivers to audit, and so does delivery's,
//! with a service-account key exchanged at identity), stopping cleanly on
//! SIGTERM; and Envoy in front of them as the split deployment configures
//! it (`deploy/compose/envoy.yaml`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use foundry_proto::foundry::audit::v1 as audit;
use foundry_proto::foundry::identity::v1 as pb;
use foundry_testkit::authed;
use tonic::transport::Channel;

mod common;

use common::free_port;
use common::split::{Split, identity_and_audit, owner_token, seed, spawn};

#[test]
fn service_binaries_refuse_to_start_without_a_database_url() {
    for exe in [
        env!("CARGO_BIN_EXE_foundry-identity"),
        env!("CARGO_BIN_EXE_foundry-audit"),
        env!("CARGO_BIN_EXE_foundry-delivery"),
    ] {
        let out = Command::new(exe)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("needs DATABASE_URL"), "{exe}: {err}");
    }
}

#[tokio::test]
async fn binaries_that_keep_private_keys_refuse_to_start_without_a_key_encryption_key() {
    let url = foundry_testkit::empty_database().await;
    for exe in [
        env!("CARGO_BIN_EXE_foundry-identity"),
        env!("CARGO_BIN_EXE_foundry-audit"),
    ] {
        let out = Command::new(exe)
            .env("DATABASE_URL", &url)
            .env_remove("FOUNDRY_KEY_ENCRYPTION_KEY")
            .env_remove("FOUNDRY_KEY_ENCRYPTION_KEY_FILE")
            .env("FOUNDRY_LISTEN", format!("127.0.0.1:{}", free_port()))
            .arg("--migrate")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{exe} started without one");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("FOUNDRY_KEY_ENCRYPTION_KEY"), "{exe}: {err}");
    }
}

#[tokio::test]
async fn migrate_only_applies_the_schema_and_exits() {
    let url = foundry_testkit::empty_database().await;
    common::migrate_only(env!("CARGO_BIN_EXE_foundry-audit"), &url);
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(url.as_str())
        .await
        .unwrap();
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'audit' AND table_name IN ('events', 'outbox')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(tables, 2);
}

#[tokio::test]
async fn identity_and_audit_as_separate_processes_carry_a_mutation_into_the_log() {
    let url = foundry_testkit::empty_database().await;
    let audit_port = free_port();
    let mut identity = spawn(
        env!("CARGO_BIN_EXE_foundry-identity"),
        "foundry-identity",
        free_port(),
        &[
            ("DATABASE_URL", url.clone()),
            (
                "FOUNDRY_AUDIT_ENDPOINT",
                format!("http://127.0.0.1:{audit_port}"),
            ),
        ],
    );
    let identity_channel = identity.ready("foundry.identity.v1.AuthService").await;
    let mut audit_proc = spawn(
        env!("CARGO_BIN_EXE_foundry-audit"),
        "foundry-audit",
        audit_port,
        &[
            ("DATABASE_URL", url.clone()),
            ("FOUNDRY_IDENTITY_ENDPOINT", identity.endpoint()),
        ],
    );
    let audit_channel = audit_proc.ready("foundry.audit.v1.AuditService").await;

    // A user and a token, from the keys identity keeps in the database.
    let seed = seed(&url).await;
    let user = seed
        .create_user("split@example.com", "Split")
        .await
        .unwrap();
    let token = seed
        .mint_member_token(user, None, None, Duration::from_secs(300))
        .unwrap();

    // The mutation, in the identity process.
    let org = pb::organization_service_client::OrganizationServiceClient::new(identity_channel)
        .create_organization(authed(
            &token,
            pb::CreateOrganizationRequest {
                organization: Some(pb::Organization {
                    name: "Split".into(),
                    slug: "split-deploy".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let owner = owner_token(&seed, user, org.id.parse().unwrap());

    // Its event, in the audit process (which verified the token remotely).
    let deadline = Instant::now() + Duration::from_secs(30);
    let events = loop {
        let events = audit::audit_service_client::AuditServiceClient::new(audit_channel.clone())
            .list_audit_events(authed(&owner, audit::ListAuditEventsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        if events.len() >= 2 {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "the event did not arrive: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert!(
        actions.contains(&"identity.organization.create"),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"identity.membership.create"),
        "{actions:?}"
    );
    assert!(events.iter().all(|e| e.actor_id == user.to_string()));

    audit_proc.stop().await;
    identity.stop().await;
}

#[tokio::test]
async fn delivery_as_its_own_process_relays_its_events_with_an_exchanged_token() {
    use foundry_proto::foundry::delivery::v1 as delivery;
    let url = foundry_testkit::empty_database().await;
    let mut split = Split::start(&url, &[], &[]).await;
    let audit_channel = split.audit.ready("foundry.audit.v1.AuditService").await;
    let (delivery_channel, dev, owner) = split.delivery_owner("split-delivery").await;
    let program = delivery::program_service_client::ProgramServiceClient::new(delivery_channel)
        .create_program(authed(
            &owner,
            delivery::CreateProgramRequest {
                program: Some(delivery::Program {
                    name: "Split".into(),
                    slug: "split".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();

    // Delivery verified the token with identity's keys, and its relay,
    // authenticated by the exchanged key, carried the event to audit.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = audit::audit_service_client::AuditServiceClient::new(audit_channel.clone())
            .list_audit_events(authed(&owner, audit::ListAuditEventsRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .audit_events;
        if let Some(e) = events
            .iter()
            .find(|e| e.action == "delivery.program.create")
        {
            assert_eq!(e.resource_id, program.id);
            assert_eq!(e.project_id, program.id);
            assert_eq!(e.service, "delivery");
            assert_eq!(e.actor_id, dev.user_id.to_string());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the event did not arrive: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    split.stop().await;
}

/// Issue 15, finding 2a, split: identity's relay carries membership events
/// to delivery's inbox in another process, and delivery checks user
/// references against its replica of them.
#[tokio::test]
async fn membership_changes_in_identity_reach_delivery_as_separate_processes() {
    use foundry_proto::foundry::delivery::v1 as delivery;
    let url = foundry_testkit::empty_database().await;
    let mut split = Split::start(&url, &[], &[]).await;
    let (delivery_channel, dev, owner) = split.delivery_owner("split-members").await;
    let identity_channel = split
        .identity
        .ready("foundry.identity.v1.MembershipService")
        .await;
    let program =
        delivery::program_service_client::ProgramServiceClient::new(delivery_channel.clone())
            .create_program(authed(
                &owner,
                delivery::CreateProgramRequest {
                    program: Some(delivery::Program {
                        name: "Members".into(),
                        slug: "members".into(),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
    let assign = |user: uuid::Uuid| {
        let (channel, owner, program) =
            (delivery_channel.clone(), owner.clone(), program.id.clone());
        async move {
            delivery::task_service_client::TaskServiceClient::new(channel)
                .create_task(authed(
                    &owner,
                    delivery::CreateTaskRequest {
                        task: Some(delivery::Task {
                            program_id: program,
                            title: "assigned".into(),
                            assignee_ids: vec![user.to_string()],
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    },
                ))
                .await
        }
    };
    let until = |what: &'static str, user: uuid::Uuid, member: bool| {
        let assign = &assign;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match assign(user).await {
                    Ok(_) if member => return,
                    Err(s) if !member && s.code() == tonic::Code::InvalidArgument => return,
                    _ => {}
                }
                assert!(Instant::now() < deadline, "{what}: not within 30 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };

    // The owner, and a member added later, once their events reached
    // delivery; a stranger never.
    until("the owner assignable", dev.user_id, true).await;
    let carol = split
        .seed
        .create_user("carol@split.example.com", "Carol")
        .await
        .unwrap();
    split
        .seed
        .add_member(dev.org_id, carol, foundry_identity::domain::Role::Editor)
        .await
        .unwrap();
    until("carol assignable", carol, true).await;
    let stranger = assign(uuid::Uuid::now_v7()).await.unwrap_err();
    assert_eq!(
        stranger.code(),
        tonic::Code::InvalidArgument,
        "{stranger:?}"
    );

    // Removed through identity's API: refused once the removal arrives.
    let mut members = pb::membership_service_client::MembershipServiceClient::new(identity_channel);
    let listed = members
        .list_memberships(authed(&owner, pb::ListMembershipsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .memberships;
    let m = listed
        .iter()
        .find(|m| m.user_id == carol.to_string())
        .expect("carol is listed");
    members
        .delete_membership(authed(
            &owner,
            pb::DeleteMembershipRequest {
                id: m.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    until("carol refused", carol, false).await;

    split.stop().await;
}

/// The split deployment's gateway config (`deploy/compose/envoy.yaml`) with
/// each service's host at its local port, the descriptor set at
/// `descriptor` and HTTP (and gRPC) on `port`.
fn split_gateway_config(
    port: u16,
    descriptor: &std::path::Path,
    services: &[(&str, u16)],
) -> String {
    let mut config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/compose/envoy.yaml"
    ))
    .unwrap()
    .replace("port_value: 8080", &format!("port_value: {port}"))
    .replace(
        "/etc/foundry/descriptors/foundry.binpb",
        &descriptor.display().to_string(),
    );
    for (host, port) in services {
        let from = format!("{{ address: {host}, port_value: 50051 }}");
        assert!(config.contains(&from), "no cluster {host}");
        config = config.replace(
            &from,
            &format!("{{ address: 127.0.0.1, port_value: {port} }}"),
        );
    }
    config
}

/// Through the split gateway, a `google.longrunning.Operations` call goes
/// to the service its operation's name carries: a gRPC call (the name is in
/// its body) and an HTTP one (in its path) alike.
#[tokio::test]
async fn the_split_gateway_routes_operations_to_the_service_their_name_carries() {
    use foundry_proto::google::longrunning::{self as lro, operations_client::OperationsClient};

    let url = foundry_testkit::empty_database().await;
    let (identity, mut audit_proc) = identity_and_audit(&url, free_port(), &[]).await;
    audit_proc.ready("foundry.audit.v1.AuditService").await;
    let seed = seed(&url).await;
    let dev = seed
        .create_user_with_org("gateway@example.com", "Gateway", "split-gateway")
        .await
        .unwrap();
    let owner = owner_token(&seed, dev.user_id, dev.org_id);

    let dir = common::data_dir();
    let descriptor = common::descriptors(dir.path());
    let port = free_port();
    let config = dir.path().join("envoy.yaml");
    let services = [
        ("identity", identity.port),
        ("audit", audit_proc.port),
        // Not started: nothing here routes to it.
        ("delivery", free_port()),
    ];
    std::fs::write(&config, split_gateway_config(port, &descriptor, &services)).unwrap();
    let _envoy = common::Envoy::start(&config);
    let http = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/healthz"))
        .call()
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "envoy did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gateway = Channel::from_shared(base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();

    // Started at audit (its package's route), then followed by name.
    let started = audit::audit_service_client::AuditServiceClient::new(gateway.clone())
        .start_audit_chain_verification(authed(
            &owner,
            audit::StartAuditChainVerificationRequest {
                verification: Some(audit::VerifyAuditChainRequest::default()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(started.name.starts_with("operations/audit/"), "{started:?}");
    let mut operations = OperationsClient::new(gateway);
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let op = operations
            .get_operation(authed(
                &owner,
                lro::GetOperationRequest {
                    name: started.name.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        if op.done {
            break op;
        }
        assert!(Instant::now() < deadline, "not done: {op:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done.name, started.name);
    let listed = operations
        .list_operations(authed(
            &owner,
            lro::ListOperationsRequest {
                name: "operations/audit".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.operations.iter().any(|o| o.name == started.name),
        "{listed:?}"
    );
    // An identity operation is looked up at identity, which has no such one.
    let elsewhere = operations
        .get_operation(authed(
            &owner,
            lro::GetOperationRequest {
                name: format!("operations/identity/{}", uuid::Uuid::now_v7()),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), tonic::Code::NotFound, "{elsewhere:?}");

    // The same operation over HTTP/JSON, routed by its path.
    let mut resp = http
        .get(format!("{base}/v1/{}", started.name))
        .header("authorization", format!("Bearer {owner}"))
        .call()
        .unwrap();
    let body = resp.body_mut().read_to_string().unwrap();
    assert_eq!(resp.status(), 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["name"], started.name.as_str(), "{json}");
    assert_eq!(json["done"], true, "{json}");

    audit_proc.stop().await;
    identity.stop().await;
}
