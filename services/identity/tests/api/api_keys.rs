use foundry_identity::domain::Role as R;
use foundry_testkit::identity::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

fn new_key(kind: ApiKeyKind, scopes: &[&str]) -> CreateApiKeyRequest {
    CreateApiKeyRequest {
        api_key: Some(ApiKey {
            kind: kind as i32,
            display_name: "deploy bot".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn an_api_key_is_shown_once_and_only_its_hash_is_stored() {
    let app = TestApp::start().await;
    let created = app
        .api_keys()
        .create_api_key(authed(
            &app.alice.token,
            new_key(ApiKeyKind::ApiKey, &["identity.*.read"]),
        ))
        .await
        .expect("create")
        .into_inner();
    assert!(created.secret.starts_with("fnd_key_"));
    assert!(created.secret.starts_with(&created.prefix));
    assert_eq!(created.state, ApiKeyState::Active as i32);

    let got = app
        .api_keys()
        .get_api_key(authed(
            &app.alice.token,
            GetApiKeyRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert!(got.secret.is_empty(), "never shown twice");
    let listed = app
        .api_keys()
        .list_api_keys(authed(&app.alice.token, ListApiKeysRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.api_keys.iter().all(|k| k.secret.is_empty()));

    // At rest: the SHA-256, nowhere the secret.
    let mut db = app.admin_db().await;
    let row: (Vec<u8>, String) = sqlx::query_as(
        "SELECT secret_hash, row_to_json(k)::text FROM identity.api_keys k WHERE id = $1::uuid",
    )
    .bind(&created.id)
    .fetch_one(&mut db)
    .await
    .expect("row");
    use sha2::Digest;
    assert_eq!(
        row.0,
        sha2::Sha256::digest(created.secret.as_bytes()).to_vec()
    );
    assert!(!row.1.contains(&created.secret[created.prefix.len()..]));
}

#[tokio::test]
async fn a_key_exchanges_for_a_token_with_its_scopes_until_revoked() {
    let app = TestApp::start().await;
    let key = app
        .api_keys()
        .create_api_key(authed(
            &app.alice.token,
            new_key(ApiKeyKind::ApiKey, &["identity.organizations.read"]),
        ))
        .await
        .expect("create")
        .into_inner();
    let exchange = |secret: String| ExchangeTokenRequest {
        grant: Some(exchange_token_request::Grant::ApiKey(secret)),
        org_id: String::new(),
    };
    let resp = app
        .auth()
        .exchange_token(exchange(key.secret.clone()))
        .await
        .expect("exchange")
        .into_inner();
    assert_eq!(resp.org_id, app.alice.org_id.to_string());
    assert_eq!(resp.subject, key.id);
    app.orgs()
        .get_organization(authed(
            &resp.access_token,
            GetOrganizationRequest {
                id: app.alice.org_id.to_string(),
            },
        ))
        .await
        .expect("scope grants org read");
    let r = app
        .members()
        .list_memberships(authed(
            &resp.access_token,
            ListMembershipsRequest::default(),
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");

    let revoked = app
        .api_keys()
        .revoke_api_key(authed(
            &app.alice.token,
            RevokeApiKeyRequest {
                id: key.id.clone(),
                etag: key.etag.clone(),
            },
        ))
        .await
        .expect("revoke")
        .into_inner();
    assert_eq!(revoked.state, ApiKeyState::Revoked as i32);
    let r = app.auth().exchange_token(exchange(key.secret)).await;
    assert_status(r, Code::Unauthenticated, "CREDENTIAL_INVALID");
}

#[tokio::test]
async fn an_agent_token_is_not_an_api_key() {
    let app = TestApp::start().await;
    let agent = app
        .api_keys()
        .create_api_key(authed(&app.alice.token, new_key(ApiKeyKind::Agent, &[])))
        .await
        .expect("create")
        .into_inner();
    assert!(agent.secret.starts_with("fnd_agt_"));
    assert_eq!(agent.scopes, ["*.*.read"], "empty scopes mean read-only");
    let r = app
        .auth()
        .exchange_token(ExchangeTokenRequest {
            grant: Some(exchange_token_request::Grant::ApiKey(agent.secret.clone())),
            org_id: String::new(),
        })
        .await;
    assert_status(r, Code::Unauthenticated, "CREDENTIAL_INVALID");
    let ok = app
        .auth()
        .exchange_token(ExchangeTokenRequest {
            grant: Some(exchange_token_request::Grant::AgentToken(agent.secret)),
            org_id: String::new(),
        })
        .await
        .expect("agent")
        .into_inner();
    assert_eq!(ok.org_id, app.alice.org_id.to_string());
    let agents = app
        .api_keys()
        .list_api_keys(authed(
            &app.alice.token,
            ListApiKeysRequest {
                kind: ApiKeyKind::Agent as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(agents.api_keys.len(), 1);
}

#[tokio::test]
async fn key_creation_validates_every_field_and_caps_scopes_at_the_callers() {
    let app = TestApp::start().await;
    let mut bad = new_key(ApiKeyKind::Unspecified, &["not a scope"]);
    if let Some(k) = bad.api_key.as_mut() {
        k.display_name = String::new();
        k.project_id = "nope".into();
        k.expire_time = Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        });
    }
    let r = app
        .api_keys()
        .create_api_key(authed(&app.alice.token, bad))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        [
            "api_key.kind",
            "api_key.display_name",
            "api_key.project_id",
            "api_key.expire_time",
            "api_key.scopes[0]"
        ]
    );
    let admin = app.new_member(&app.alice, R::Admin).await;
    let r = app
        .api_keys()
        .create_api_key(authed(
            &admin.token,
            new_key(ApiKeyKind::ApiKey, &["billing.*.write"]),
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["api_key.scopes[0]"]);
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let r = app
        .api_keys()
        .create_api_key(authed(&viewer.token, new_key(ApiKeyKind::ApiKey, &[])))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
}

#[tokio::test]
async fn a_repeat_create_returns_the_first_key_without_its_secret() {
    let app = TestApp::start().await;
    let mut req = new_key(ApiKeyKind::ApiKey, &[]);
    req.request_id = uuid::Uuid::now_v7().to_string();
    let first = app
        .api_keys()
        .create_api_key(authed(&app.alice.token, req.clone()))
        .await
        .expect("first")
        .into_inner();
    let again = app
        .api_keys()
        .create_api_key(authed(&app.alice.token, req))
        .await
        .expect("again")
        .into_inner();
    assert!(!first.secret.is_empty());
    assert_eq!(again.id, first.id);
    assert!(again.secret.is_empty());
}
