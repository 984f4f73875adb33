use foundry_identity::domain::Role as R;
use foundry_testkit::identity::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use uuid::Uuid;

fn new_sa(name: &str, description: &str) -> CreateServiceAccountRequest {
    CreateServiceAccountRequest {
        service_account: Some(ServiceAccount {
            name: name.into(),
            description: description.into(),
            ..Default::default()
        }),
    }
}

async fn exchange(app: &TestApp, key: &str) -> Result<ExchangeTokenResponse, tonic::Status> {
    app.auth()
        .exchange_token(ExchangeTokenRequest {
            grant: Some(exchange_token_request::Grant::ServiceAccountKey(key.into())),
            org_id: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// A service account seeded in process, its key exchanged for an access
/// token: the way a relay authenticates.
async fn service_caller(app: &TestApp) -> (Uuid, String) {
    let (id, key) = app
        .suite
        .identity
        .create_service_account(
            "bootstrap",
            "tests",
            "",
            &["identity.service_accounts.admin"],
        )
        .await
        .expect("service account");
    let resp = exchange(app, &key).await.expect("exchange");
    assert_eq!(resp.subject, id.to_string());
    assert!(resp.org_id.is_empty(), "service accounts act in no org");
    (id, resp.access_token)
}

/// The ids of the service accounts the suite made for itself (identity's
/// relay account, whose relay to delivery's inbox always runs), oldest
/// first.
async fn the_suites_own(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT id::text FROM identity.service_accounts WHERE name = 'identity-relay' ORDER BY id",
    )
    .fetch_all(&mut app.admin_db().await)
    .await
    .expect("the suite's service accounts")
}

async fn create(app: &TestApp, token: &str, name: &str) -> ServiceAccount {
    app.service_accounts()
        .create_service_account(authed(token, new_sa(name, "relays the outbox")))
        .await
        .expect("create service account")
        .into_inner()
}

#[tokio::test]
async fn user_tokens_even_an_owners_are_refused() {
    let app = TestApp::start().await;
    let (sa, _) = service_caller(&app).await;
    let admin = app.new_member(&app.alice, R::Admin).await;
    let user_only = app.token(app.alice.user_id, None, None);
    for token in [&app.alice.token, &app.bob.token, &admin.token, &user_only] {
        let r = app
            .service_accounts()
            .create_service_account(authed(token, new_sa("sneaky", "")))
            .await;
        assert_status(r, Code::PermissionDenied, "INTERNAL_METHOD");
        let r = app
            .service_accounts()
            .list_service_accounts(authed(token, ListServiceAccountsRequest::default()))
            .await;
        assert_status(r, Code::PermissionDenied, "INTERNAL_METHOD");
        let r = app
            .service_accounts()
            .disable_service_account(authed(
                token,
                DisableServiceAccountRequest { id: sa.to_string() },
            ))
            .await;
        assert_status(r, Code::PermissionDenied, "INTERNAL_METHOD");
    }
    let r = app
        .service_accounts()
        .list_service_accounts(ListServiceAccountsRequest::default())
        .await;
    assert_status(r, Code::Unauthenticated, "TOKEN_MISSING");

    let rows: Vec<(String, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT name, disabled_at FROM identity.service_accounts \
         WHERE name <> 'identity-relay'",
    )
    .fetch_all(&mut app.admin_db().await)
    .await
    .expect("rows");
    assert_eq!(rows, [("bootstrap".to_owned(), None)], "nothing changed");
}

#[tokio::test]
async fn a_service_account_key_is_shown_once_and_only_its_hash_is_stored() {
    let app = TestApp::start().await;
    let (_, svc) = service_caller(&app).await;
    let created = app
        .service_accounts()
        .create_service_account(authed(
            &svc,
            new_sa("outbox-relay", "  delivers outbox events  "),
        ))
        .await
        .expect("create")
        .into_inner();
    assert!(created.key.starts_with("fnd_svc_"), "{}", created.key);
    assert_eq!(created.name, "outbox-relay");
    assert_eq!(created.description, "delivers outbox events", "trimmed");
    assert!(created.create_time.is_some());
    assert!(created.disable_time.is_none());
    Uuid::try_parse(&created.id).expect("uuid id");

    let listed = app
        .service_accounts()
        .list_service_accounts(authed(&svc, ListServiceAccountsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        listed.service_accounts.len(),
        2 + the_suites_own(&app).await.len()
    );
    assert!(listed.service_accounts.iter().all(|s| s.key.is_empty()));
    let mine = listed
        .service_accounts
        .iter()
        .find(|s| s.id == created.id)
        .expect("listed");
    assert_eq!(mine.name, created.name);

    // At rest: the SHA-256, nowhere the key.
    let row: (Vec<u8>, String) = sqlx::query_as(
        "SELECT key_hash, row_to_json(s)::text FROM identity.service_accounts s WHERE id = $1::uuid",
    )
    .bind(&created.id)
    .fetch_one(&mut app.admin_db().await)
    .await
    .expect("row");
    use sha2::Digest;
    assert_eq!(row.0, sha2::Sha256::digest(created.key.as_bytes()).to_vec());
    assert!(!row.1.contains(&created.key["fnd_svc_".len()..]));

    // The new key authenticates as the new account, which holds no
    // capability (none was given): it may call no internal method.
    let token = exchange(&app, &created.key).await.expect("exchange");
    assert_eq!(token.subject, created.id);
    let r = app
        .service_accounts()
        .list_service_accounts(authed(
            &token.access_token,
            ListServiceAccountsRequest::default(),
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    // A service account acts in no organization.
    let r = app
        .members()
        .list_memberships(authed(
            &token.access_token,
            ListMembershipsRequest::default(),
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "NO_ACTIVE_ORGANIZATION");
    let r = app
        .auth()
        .exchange_token(ExchangeTokenRequest {
            grant: Some(exchange_token_request::Grant::ServiceAccountKey(
                created.key.clone(),
            )),
            org_id: app.alice.org_id.to_string(),
        })
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["org_id"]);
}

#[tokio::test]
async fn service_account_creation_is_validated() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let cases: Vec<(CreateServiceAccountRequest, &[&str])> = vec![
        (
            CreateServiceAccountRequest::default(),
            &["service_account.name"],
        ),
        (
            new_sa("", &"x".repeat(1001)),
            &["service_account.name", "service_account.description"],
        ),
        (new_sa("Outbox Relay", ""), &["service_account.name"]),
        (new_sa("ab", ""), &["service_account.name"]),
        (new_sa("relay-", ""), &["service_account.name"]),
        (new_sa("1relay", ""), &["service_account.name"]),
        (new_sa(&"a".repeat(64), ""), &["service_account.name"]),
        (
            new_sa("relay", "line\u{7}bell"),
            &["service_account.description"],
        ),
    ];
    for (req, fields) in cases {
        let r = app
            .service_accounts()
            .create_service_account(authed(&svc, req.clone()))
            .await;
        let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&s), fields, "{req:?}");
    }
    // Bounds are inclusive; a description is optional.
    create(&app, &svc, &"a".repeat(63)).await;
    let bare = app
        .service_accounts()
        .create_service_account(authed(&svc, new_sa("bare", "")))
        .await
        .expect("no description")
        .into_inner();
    assert_eq!(bare.description, "");

    create(&app, &svc, "relay").await;
    let r = app
        .service_accounts()
        .create_service_account(authed(&svc, new_sa("relay", "again")))
        .await;
    assert_status(r, Code::AlreadyExists, "NAME_TAKEN");
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM identity.service_accounts WHERE name <> 'identity-relay'",
    )
    .fetch_one(&mut app.admin_db().await)
    .await
    .expect("count");
    assert_eq!(n, 4, "the caller's, the 63-character one, bare and relay");
}

#[tokio::test]
async fn service_accounts_are_listed_oldest_first_and_paged() {
    let app = TestApp::start().await;
    let mut ids = the_suites_own(&app).await;
    let (first, svc) = service_caller(&app).await;
    ids.push(first.to_string());
    // Five in all: three pages of two.
    while ids.len() < 5 {
        let i = ids.len();
        ids.push(create(&app, &svc, &format!("relay-{i}")).await.id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let resp = app
            .service_accounts()
            .list_service_accounts(authed(
                &svc,
                ListServiceAccountsRequest {
                    page_size: 2,
                    page_token: token,
                },
            ))
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(resp.service_accounts.len() <= 2);
        seen.extend(resp.service_accounts.into_iter().map(|s| s.id));
        token = resp.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every account once, oldest first");

    let r = app
        .service_accounts()
        .list_service_accounts(authed(
            &svc,
            ListServiceAccountsRequest {
                page_size: -1,
                page_token: String::new(),
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["page_size"]);
    let r = app
        .service_accounts()
        .list_service_accounts(authed(
            &svc,
            ListServiceAccountsRequest {
                page_size: 2,
                page_token: "not-a-token".into(),
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["page_token"]);
}

#[tokio::test]
async fn a_disabled_service_account_can_no_longer_exchange_its_key() {
    let app = TestApp::start().await;
    let (_, svc) = service_caller(&app).await;
    let relay = create(&app, &svc, "relay").await;
    exchange(&app, &relay.key)
        .await
        .expect("exchange while enabled");

    let disabled = app
        .service_accounts()
        .disable_service_account(authed(
            &svc,
            DisableServiceAccountRequest {
                id: relay.id.clone(),
            },
        ))
        .await
        .expect("disable")
        .into_inner();
    assert_eq!(disabled.id, relay.id);
    assert!(disabled.key.is_empty());
    let when = disabled.disable_time.expect("disable_time");

    let r = exchange(&app, &relay.key).await;
    assert_status(r, Code::Unauthenticated, "CREDENTIAL_INVALID");

    // Disabling again is a no-op that keeps the first time.
    let again = app
        .service_accounts()
        .disable_service_account(authed(
            &svc,
            DisableServiceAccountRequest {
                id: relay.id.clone(),
            },
        ))
        .await
        .expect("disable again")
        .into_inner();
    assert_eq!(again.disable_time, Some(when));
    let listed = app
        .service_accounts()
        .list_service_accounts(authed(&svc, ListServiceAccountsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    let row = listed
        .service_accounts
        .iter()
        .find(|s| s.id == relay.id)
        .expect("still listed");
    assert_eq!(row.disable_time, Some(when));

    let r = app
        .service_accounts()
        .disable_service_account(authed(
            &svc,
            DisableServiceAccountRequest {
                id: Uuid::now_v7().to_string(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "SERVICE_ACCOUNT_NOT_FOUND");
    for id in ["", "nope"] {
        let r = app
            .service_accounts()
            .disable_service_account(authed(&svc, DisableServiceAccountRequest { id: id.into() }))
            .await;
        let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&s), ["id"]);
    }
}

fn delivery_event(
    org: Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> foundry_testkit::audit::AuditEvent {
    use foundry_testkit::audit::{ActorType, AuditEvent};
    let id = Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        at.timestamp() as u64,
        at.timestamp_subsec_nanos(),
    ));
    AuditEvent {
        id: id.to_string(),
        org_id: org.to_string(),
        occur_time: Some(foundry_platform::convert::timestamp(at)),
        actor_type: ActorType::System as i32,
        action: "delivery.task.update".into(),
        resource_type: "delivery.task".into(),
        resource_id: Uuid::now_v7().to_string(),
        service: "delivery".into(),
        ..Default::default()
    }
}

async fn append_as(
    app: &TestApp,
    token: &str,
    events: Vec<foundry_testkit::audit::AuditEvent>,
) -> Result<foundry_testkit::audit::AppendAuditEventsResponse, tonic::Status> {
    app.audit_ingest()
        .append_audit_events(authed(
            token,
            foundry_testkit::audit::AppendAuditEventsRequest {
                audit_events: events,
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// Issue 13, finding 9: any service account (delivery's relay key among
/// them) could append events to any organization as any service at any
/// time, create service accounts, disable the relay's and rotate signing
/// keys. Now each holds only its capabilities: a relay appends only its
/// own service's events, not from the future; administering service
/// accounts and keys needs capabilities of their own, which only a holder
/// can grant; and verification finds a backdated event.
#[tokio::test]
async fn every_service_account_holds_platform_wide_power() {
    use foundry_testkit::audit::{ChainProblem, VerifyAuditChainRequest};
    let app = TestApp::start().await;
    let relay = app
        .service_token_with("delivery", &["audit.events.append"])
        .await;
    let (other, _) = service_caller(&app).await;

    // Nothing but appending.
    let r = app
        .service_accounts()
        .create_service_account(authed(&relay, new_sa("sneaky", "")))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let r = app
        .service_accounts()
        .disable_service_account(authed(
            &relay,
            DisableServiceAccountRequest {
                id: other.to_string(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let r = app
        .auth()
        .rotate_signing_key(authed(&relay, RotateSigningKeyRequest {}))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let r = app
        .audit_ingest()
        .apply_audit_retention(authed(
            &relay,
            foundry_testkit::audit::ApplyAuditRetentionRequest {
                org_id: app.alice.org_id.to_string(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");

    // Its own service's events only, none from the future.
    let org = Uuid::now_v7();
    let now = chrono::Utc::now();
    let mut as_identity = delivery_event(org, now);
    as_identity.service = "identity".into();
    as_identity.action = "identity.user.update".into();
    as_identity.resource_type = "identity.user".into();
    let r = append_as(&app, &relay, vec![as_identity]).await;
    assert_status(r, Code::PermissionDenied, "SERVICE_MISMATCH");
    let r = append_as(
        &app,
        &relay,
        vec![delivery_event(org, now + chrono::TimeDelta::hours(1))],
    )
    .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["audit_events[0].occur_time"]);
    let appended = append_as(&app, &relay, vec![delivery_event(org, now)])
        .await
        .expect("its own event");
    assert_eq!(appended.appended, 1);

    // A backdated event of the same service is found.
    append_as(
        &app,
        &relay,
        vec![delivery_event(org, now - chrono::TimeDelta::hours(1))],
    )
    .await
    .expect("appended");
    let owner = app.token(Uuid::now_v7(), Some(org), Some(R::Owner));
    let v = app
        .audit()
        .verify_audit_chain(authed(&owner, VerifyAuditChainRequest::default()))
        .await
        .expect("verify")
        .into_inner();
    assert!(!v.valid, "{v:?}");
    assert_eq!(
        (v.problem, v.problem_sequence),
        (ChainProblem::TimeOrder as i32, 2),
        "{v:?}"
    );

    // An administrator of service accounts grants only what it holds.
    let admin = app
        .service_token_with("", &["identity.service_accounts.admin"])
        .await;
    let mut req = new_sa("escalate", "");
    req.service_account.as_mut().unwrap().capabilities = vec!["audit.events.append".into()];
    let r = app
        .service_accounts()
        .create_service_account(authed(&admin, req))
        .await;
    assert_status(r, Code::PermissionDenied, "CAPABILITY_NOT_HELD");
    let mut req = new_sa("root", "");
    req.service_account.as_mut().unwrap().capabilities = vec!["*".into()];
    req.service_account.as_mut().unwrap().service = "Delivery!".into();
    let r = app
        .service_accounts()
        .create_service_account(authed(&admin, req))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&status),
        ["service_account.service", "service_account.capabilities[0]"]
    );
    let mut req = new_sa("deputy", "");
    req.service_account.as_mut().unwrap().capabilities =
        vec!["identity.service_accounts.admin".into()];
    let deputy = app
        .service_accounts()
        .create_service_account(authed(&admin, req))
        .await
        .expect("a capability it holds")
        .into_inner();
    assert_eq!(deputy.capabilities, ["identity.service_accounts.admin"]);
}

/// Issue 13, finding 9: a service account's token minted to act for a
/// user records both: the service as the actor, the user as whom it acted
/// for, set once where the event is built.
#[tokio::test]
async fn a_service_acting_for_a_user_records_both() {
    let app = TestApp::start().await;
    let (admin, _) = app
        .suite
        .identity
        .create_service_account(
            "integrations",
            "tests",
            "",
            &["identity.service_accounts.admin"],
        )
        .await
        .expect("service account");
    let obo = foundry_tenancy::OnBehalfOf {
        ptype: foundry_tenancy::PrincipalType::User,
        id: app.alice.user_id,
    };
    let token = app
        .suite
        .identity
        .mint_service_token_for(admin, Some(obo), std::time::Duration::from_secs(60))
        .await
        .expect("token");
    let made = create(&app, &token, "for-alice").await;
    let payload: serde_json::Value = sqlx::query_scalar(
        "SELECT payload FROM identity.outbox WHERE payload->>'resource_id' = $1",
    )
    .bind(&made.id)
    .fetch_one(&mut app.admin_db().await)
    .await
    .expect("the event");
    assert_eq!(payload["actor_type"], "service");
    assert_eq!(payload["actor_id"], admin.to_string());
    assert_eq!(
        payload["on_behalf_of"],
        serde_json::json!({"actor_type": "user", "id": app.alice.user_id})
    );
}
