//! Signing keys: rotation retires the replaced keys, revocation withdraws
//! one at once; verifiers refetch the JWKS on a timer.

use std::time::Duration;

use foundry_identity::domain::Role as R;
use foundry_testkit::identity::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

/// How often the suite's verifier refetches the keys in these tests.
const REFRESH: Duration = Duration::from_millis(300);

async fn published(app: &TestApp) -> Vec<String> {
    let jwks = app
        .auth()
        .get_jwks(GetJwksRequest {})
        .await
        .expect("jwks")
        .into_inner();
    jwks.keys.into_iter().map(|k| k.kid).collect()
}

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().expect("header");
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("base64"),
    )
    .expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

/// Alice's organization, read with `token`.
async fn get_org(app: &TestApp, token: &str) -> Result<Organization, tonic::Status> {
    app.orgs()
        .get_organization(authed(
            token,
            GetOrganizationRequest {
                id: app.alice.org_id.to_string(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// The call was refused because its token's key is gone.
fn assert_key_refused(r: Result<Organization, tonic::Status>, what: &str) {
    use tonic_types::StatusExt;
    let status = r.expect_err(what);
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    let reason = status
        .get_error_details()
        .error_info()
        .expect("ErrorInfo")
        .reason
        .clone();
    assert!(
        ["TOKEN_KEY_RETIRED", "TOKEN_UNKNOWN_KEY"].contains(&reason.as_str()),
        "{what}: {status:?}"
    );
}

fn alice_token(app: &TestApp) -> String {
    app.token(app.alice.user_id, Some(app.alice.org_id), Some(R::Owner))
}

#[tokio::test]
async fn rotation_does_not_retire_keys() {
    // A short clock: the new key signs at once, and the old one retires one
    // access-token lifetime (a second) later.
    let app = TestApp::start_configured(|c| {
        c.tokens.publish_ahead = Duration::ZERO;
        c.tokens.access_ttl = Duration::from_secs(1);
        c.tokens.retire_grace = Duration::ZERO;
        c.jwks_refresh = REFRESH;
    })
    .await;
    let before = published(&app).await;
    assert_eq!(before.len(), 1);
    let old = before[0].clone();

    // Two tokens of the old key that outlive it (five minutes): one used now,
    // so the verifier has it cached, one first shown after the retirement.
    let used = alice_token(&app);
    let unseen = alice_token(&app);
    assert_eq!(kid_of(&used), old);
    get_org(&app, &used)
        .await
        .expect("valid before the rotation");

    let svc = app.service_token().await;
    let rotated = app
        .auth()
        .rotate_signing_key(authed(&svc, RotateSigningKeyRequest {}))
        .await
        .expect("rotate")
        .into_inner();
    assert_eq!(rotated.keys.len(), 2, "old and new both published");

    // Past the old key's retirement and a few refreshes.
    tokio::time::sleep(Duration::from_secs(1) + REFRESH * 4).await;

    let after = published(&app).await;
    assert!(
        !after.contains(&old),
        "the retired key {old} is still published: {after:?}"
    );
    assert_eq!(after.len(), 1);
    assert_key_refused(
        get_org(&app, &used).await,
        "a cached token of the retired key",
    );
    assert_key_refused(get_org(&app, &unseen).await, "a token of the retired key");

    // The new key signs and verifies.
    let fresh = alice_token(&app);
    assert_eq!(kid_of(&fresh), after[0]);
    get_org(&app, &fresh).await.expect("the new key verifies");
}

#[tokio::test]
async fn a_revoked_signing_key_stops_verifying_at_once() {
    // The default refresh interval (a minute): the revocation must not wait
    // for it in this process.
    let app = TestApp::start().await;
    let old = published(&app).await.remove(0);
    let used = alice_token(&app);
    let unseen = alice_token(&app);
    get_org(&app, &used).await.expect("valid before");

    // Internal only, and the key id is checked.
    let revoke = |kid: &str| RevokeSigningKeyRequest { kid: kid.into() };
    let r = app
        .auth()
        .revoke_signing_key(authed(&app.alice.token, revoke(&old)))
        .await;
    assert_status(r, Code::PermissionDenied, "INTERNAL_METHOD");
    let svc = app.service_token().await;
    let r = app
        .auth()
        .revoke_signing_key(authed(&svc, revoke(" ")))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["kid"]);
    let r = app
        .auth()
        .revoke_signing_key(authed(&svc, revoke("no-such-key")))
        .await;
    assert_status(r, Code::NotFound, "SIGNING_KEY_NOT_FOUND");

    // The service token was signed by the key it revokes: the call is
    // admitted before the revocation, and the answer no longer lists it.
    let jwks = app
        .auth()
        .revoke_signing_key(authed(&svc, revoke(&old)))
        .await
        .expect("revoke")
        .into_inner();
    let now: Vec<&str> = jwks.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(now.len(), 1, "a replacement signs: {now:?}");
    assert_ne!(now[0], old);
    assert_eq!(published(&app).await, [now[0].to_owned()]);

    // At once: no refresh has run, no time has passed.
    assert_key_refused(
        get_org(&app, &used).await,
        "a cached token of the revoked key",
    );
    assert_key_refused(get_org(&app, &unseen).await, "a token of the revoked key");
    let fresh = alice_token(&app);
    assert_eq!(kid_of(&fresh), now[0]);
    get_org(&app, &fresh)
        .await
        .expect("the replacement verifies");

    // Revoking it again finds nothing; the revocation is audited.
    let svc = app.service_token().await;
    let r = app
        .auth()
        .revoke_signing_key(authed(&svc, revoke(&old)))
        .await;
    assert_status(r, Code::NotFound, "SIGNING_KEY_NOT_FOUND");
    let mut db = app.admin_db().await;
    let events: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT payload FROM identity.outbox \
         WHERE payload->>'action' = 'identity.signing_key.revoke'",
    )
    .fetch_all(&mut db)
    .await
    .expect("outbox");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["resource_id"], old.as_str());
}

#[tokio::test]
async fn a_retiring_key_is_published_with_its_retire_time() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let jwks = app
        .auth()
        .rotate_signing_key(authed(&svc, RotateSigningKeyRequest {}))
        .await
        .expect("rotate")
        .into_inner();
    let (retiring, current): (Vec<&Jwk>, Vec<&Jwk>) =
        jwks.keys.iter().partition(|k| k.retire_time.is_some());
    assert_eq!((retiring.len(), current.len()), (1, 1), "{jwks:?}");
    let at = retiring[0]
        .retire_time
        .as_ref()
        .expect("retire time")
        .seconds;
    let now = chrono::Utc::now().timestamp();
    // publish_ahead + access_ttl + retire_grace: 60 + 300 + 60 seconds.
    assert!((now + 410..=now + 430).contains(&at), "{at} vs {now}");
}
