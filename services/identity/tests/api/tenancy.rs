//! The tenancy layer and row-level security, end to end.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use foundry_identity::domain::Role as R;
use foundry_platform::db::Db;
use foundry_tenancy::jwt::{self, Claims, PrincipalType};
use foundry_testkit::identity::*;
use foundry_testkit::{Code, TestApp, assert_status, authed};

fn get(app: &TestApp) -> GetOrganizationRequest {
    GetOrganizationRequest {
        id: app.alice.org_id.to_string(),
    }
}

fn claims(app: &TestApp) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: "https://identity.foundry.dev".into(),
        aud: "foundry".into(),
        sub: app.alice.user_id,
        iat: now,
        nbf: now,
        exp: now + 300,
        jti: uuid::Uuid::now_v7(),
        ptype: PrincipalType::User,
        org_id: Some(app.alice.org_id),
        org_role: Some("owner".into()),
        perms: vec!["*".into()],
        project_id: None,
        resource_id: None,
        cexp: None,
        sid: None,
        svc: None,
        obo: None,
    }
}

fn kid_of(token: &str) -> String {
    let h = token.split('.').next().expect("header");
    let v: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).expect("b64")).expect("json");
    v["kid"].as_str().expect("kid").to_owned()
}

#[tokio::test]
async fn a_call_without_a_token_is_unauthenticated() {
    let app = TestApp::start().await;
    let r = app.orgs().get_organization(get(&app)).await;
    assert_status(r, Code::Unauthenticated, "TOKEN_MISSING");
    let r = app.orgs().get_organization(authed("", get(&app))).await;
    assert_status(r, Code::Unauthenticated, "TOKEN_MISSING");
}

#[tokio::test]
async fn forged_alg_none_unknown_key_and_garbage_tokens_are_refused() {
    let app = TestApp::start().await;
    let kid = kid_of(&app.alice.token);
    let forger = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);

    let forged = jwt::sign(&claims(&app), &kid, &forger);
    let mut wrong_aud = claims(&app);
    wrong_aud.aud = "someone-else".into();
    let wrong_aud = jwt::sign(&wrong_aud, &kid, &forger);
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{kid}"}}"#)),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&app)).expect("json"))
    );
    let unknown_kid = jwt::sign(&claims(&app), "no-such-kid", &forger);

    for (token, reason) in [
        (forged.as_str(), "TOKEN_SIGNATURE"),
        (wrong_aud.as_str(), "TOKEN_SIGNATURE"),
        (none.as_str(), "TOKEN_ALGORITHM"),
        (unknown_kid.as_str(), "TOKEN_UNKNOWN_KEY"),
        ("not.a.jwt", "TOKEN_MALFORMED"),
    ] {
        let r = app.orgs().get_organization(authed(token, get(&app))).await;
        assert_status(r, Code::Unauthenticated, reason);
    }
}

#[tokio::test]
async fn a_genuinely_signed_but_expired_or_misaddressed_token_is_refused() {
    let app = TestApp::start().await;
    // Sign with the real private key read from the database and opened
    // with the suite's key-encryption key (test only).
    let mut db = app.admin_db().await;
    let (kid, sealed): (String, Vec<u8>) =
        sqlx::query_as("SELECT kid, private_key FROM identity.signing_keys LIMIT 1")
            .fetch_one(&mut db)
            .await
            .expect("key");
    let binding = foundry_keyring::Binding {
        purpose: foundry_identity::keys::SIGNING_KEY_PURPOSE,
        resource: &kid,
    };
    let seed = app
        .keyring
        .open_array::<32>(binding, &sealed)
        .await
        .expect("opens with the suite's key-encryption key");
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let mut expired = claims(&app);
    expired.iat -= 1000;
    expired.nbf -= 1000;
    expired.exp = expired.iat + 300;
    let mut aud = claims(&app);
    aud.aud = "other-audience".into();
    let mut iss = claims(&app);
    iss.iss = "https://evil.example".into();
    for (c, reason) in [
        (expired, "TOKEN_EXPIRED"),
        (aud, "TOKEN_AUDIENCE"),
        (iss, "TOKEN_ISSUER"),
    ] {
        let r = app
            .orgs()
            .get_organization(authed(&jwt::sign(&c, &kid, &key), get(&app)))
            .await;
        assert_status(r, Code::Unauthenticated, reason);
    }
    // And the same key with good claims works: the refusals were the claims.
    let ok = jwt::sign(&claims(&app), &kid, &key);
    app.orgs()
        .get_organization(authed(&ok, get(&app)))
        .await
        .expect("valid");
}

#[tokio::test]
async fn a_token_for_another_org_is_refused() {
    let app = TestApp::start().await;
    let r = app
        .orgs()
        .get_organization(authed(&app.bob.token, get(&app)))
        .await;
    assert_status(r, Code::PermissionDenied, "WRONG_ORGANIZATION");
}

#[tokio::test]
async fn an_undeclared_method_is_refused_before_routing() {
    let app = TestApp::start().await;
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static(
        "/foundry.identity.v1.OrganizationService/DropEverything",
    );
    let r: Result<tonic::Response<()>, tonic::Status> = grpc
        .unary(
            authed(&app.alice.token, ()),
            path,
            tonic_prost::ProstCodec::<(), ()>::default(),
        )
        .await;
    assert_status(r, Code::PermissionDenied, "METHOD_NOT_DECLARED");
}

#[tokio::test]
async fn health_and_reflection_need_no_token() {
    let app = TestApp::start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "foundry.identity.v1.OrganizationService".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn row_level_security_hides_other_tenants_from_an_unfiltered_query() {
    let app = TestApp::start().await;
    app.new_member(&app.bob, R::Viewer).await;
    let db = Db::connect(&app.database_url, "identity", 2)
        .await
        .expect("db");
    // No WHERE org_id at all: RLS alone decides.
    let count = |org| {
        let db = db.clone();
        async move {
            let mut tx = db.tenant(org).await.expect("tx");
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships")
                .fetch_one(&mut *tx)
                .await
                .expect("count");
            let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM organizations")
                .fetch_one(&mut *tx)
                .await
                .expect("count");
            (n, orgs)
        }
    };
    assert_eq!(count(app.alice.org_id).await, (1, 1));
    assert_eq!(count(app.bob.org_id).await, (2, 1));
    // Without a tenant, nothing.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships")
        .fetch_one(db.pool())
        .await
        .expect("count");
    assert_eq!(n, 0);
    // And writing into another tenant is refused by the policy.
    let mut tx = db.tenant(app.alice.org_id).await.expect("tx");
    let r = sqlx::query("UPDATE organizations SET name = 'x' WHERE id = $1")
        .bind(app.bob.org_id)
        .execute(&mut *tx)
        .await
        .expect("update");
    assert_eq!(r.rows_affected(), 0);
}

/// A transaction acting for a user alone (listing their organizations)
/// writes no membership: not its user's into another organization (as
/// owner), nor a higher role on one it has.
#[tokio::test]
async fn a_user_scoped_transaction_cannot_make_its_user_a_member_or_owner_anywhere() {
    let app = TestApp::start().await;
    let db = Db::connect(&app.database_url, "identity", 2)
        .await
        .expect("db");
    let viewer = app.new_member(&app.bob, R::Viewer).await;

    let mut tx = db.user(app.alice.user_id).await.expect("tx");
    let joined = sqlx::query(
        "INSERT INTO memberships (org_id, id, user_id, role) VALUES ($1, $2, $3, 'owner')",
    )
    .bind(app.bob.org_id)
    .bind(uuid::Uuid::now_v7())
    .bind(app.alice.user_id)
    .execute(&mut *tx)
    .await;
    let e = joined.expect_err("alice joined bob's organization as owner");
    assert!(e.to_string().contains("row-level security"), "{e}");
    drop(tx);

    let mut tx = db.user(viewer.user_id).await.expect("tx");
    let promoted = sqlx::query("UPDATE memberships SET role = 'owner' WHERE user_id = $1")
        .bind(viewer.user_id)
        .execute(&mut *tx)
        .await;
    let e = promoted.expect_err("a viewer made itself owner");
    assert!(e.to_string().contains("row-level security"), "{e}");
}
