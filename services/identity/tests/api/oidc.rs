//! Sign-in with an external OIDC issuer: the `id_token` grant. The issuer
//! is a real HTTP server on loopback publishing a JWKS, whose keys the test
//! rotates; tokens are signed EdDSA (by hand) and RS256 (jsonwebtoken).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer, SigningKey};
use foundry_identity::OidcProvider;
use foundry_proto::foundry::identity::v1 as pb;
use foundry_testkit::{TestApp, assert_status, authed};
use pb::exchange_token_request::Grant;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

const AUD: &str = "foundry-web";

/// A fake identity provider: its keys, and the JWKS endpoint serving them.
struct Idp {
    issuer: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    key: SigningKey,
    kid: String,
}

impl Idp {
    async fn start() -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let jwks = Arc::new(Mutex::new(json!({"keys": []})));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (j, f) = (jwks.clone(), fetches.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (j, f) = (j.clone(), f.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    f.fetch_add(1, Ordering::SeqCst);
                    let body = j.lock().unwrap().to_string();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        let mut idp = Idp {
            issuer: format!("http://{addr}"),
            jwks,
            fetches,
            key: SigningKey::generate(&mut rand::rngs::OsRng),
            kid: String::new(),
        };
        idp.rotate();
        idp.publish_rsa();
        idp
    }

    fn provider(&self) -> OidcProvider {
        format!(
            "issuer={},audience={AUD},jwks={}/jwks,name=test-idp,refetch=2",
            self.issuer, self.issuer
        )
        .parse()
        .unwrap()
    }

    /// A new EdDSA signing key, published beside the old ones.
    fn rotate(&mut self) {
        self.key = SigningKey::generate(&mut rand::rngs::OsRng);
        self.kid = format!("ed-{}", uuid::Uuid::now_v7().simple());
        self.publish(json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
        }));
    }

    fn publish_rsa(&self) {
        let jwk: Value =
            serde_json::from_str(include_str!("../fixtures/oidc-rsa.jwk.json")).unwrap();
        self.publish(jwk);
    }

    fn publish(&self, jwk: Value) {
        self.jwks.lock().unwrap()["keys"]
            .as_array_mut()
            .unwrap()
            .push(jwk);
    }

    fn claims(&self, sub: &str, email: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer, "aud": AUD, "sub": sub, "iat": now, "exp": now + 300,
            "email": email, "email_verified": true, "name": "Dana Scully",
            "picture": "https://img.example.com/dana.png",
        })
    }

    /// Signs `claims` EdDSA with the current key (by hand: header.payload.sig).
    fn sign(&self, claims: &Value) -> String {
        self.sign_with(
            &json!({"alg": "EdDSA", "typ": "JWT", "kid": self.kid}),
            claims,
            &self.key,
        )
    }

    fn sign_with(&self, header: &Value, claims: &Value, key: &SigningKey) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = key.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
    }

    fn sign_rs256(&self, claims: &Value) -> String {
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("../fixtures/oidc-rsa.pem"))
                .unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

fn id_token(token: String, org: &str) -> pb::ExchangeTokenRequest {
    pb::ExchangeTokenRequest {
        grant: Some(Grant::IdToken(token)),
        org_id: org.to_owned(),
    }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let mut db = app.admin_db().await;
    sqlx::query_scalar(sql).fetch_one(&mut db).await.unwrap()
}

#[tokio::test]
async fn first_sign_in_creates_the_user_and_later_ones_find_it() {
    let idp = Idp::start().await;
    let app = TestApp::start_with_oidc(vec![idp.provider()]).await;
    let users_before = count(&app, "SELECT count(*) FROM identity.users").await;

    let out = app
        .auth()
        .exchange_token(id_token(
            idp.sign(&idp.claims("sub-dana", "dana@fbi.gov")),
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        out.refresh_token.starts_with("fnd_rt_"),
        "a session starts: {out:?}"
    );
    assert!(!out.session_id.is_empty());
    assert!(out.org_id.is_empty(), "no organization was asked for");
    assert_eq!(
        count(&app, "SELECT count(*) FROM identity.users").await,
        users_before + 1
    );

    // The new user sees itself, with the name and avatar from the token.
    let me = app
        .users()
        .get_user(authed(
            &out.access_token,
            pb::GetUserRequest { id: "me".into() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.email, "dana@fbi.gov");
    assert_eq!(me.display_name, "Dana Scully");
    assert_eq!(me.avatar_url, "https://img.example.com/dana.png");
    assert_eq!(me.id, out.subject);
    let linked = app
        .users()
        .list_linked_accounts(authed(
            &out.access_token,
            pb::ListLinkedAccountsRequest {
                user_id: "me".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .linked_accounts;
    assert_eq!(linked.len(), 1);
    assert_eq!(
        (linked[0].provider.as_str(), linked[0].subject.as_str()),
        ("test-idp", "sub-dana")
    );
    assert_eq!(linked[0].issuer, idp.issuer);

    // Signing in again (even with a changed email) finds the same user.
    let again = app
        .auth()
        .exchange_token(id_token(
            idp.sign(&idp.claims("sub-dana", "dana@x-files.gov")),
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.subject, out.subject);
    assert_ne!(
        again.session_id, out.session_id,
        "each sign-in is its own session"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM identity.users").await,
        users_before + 1
    );

    // The refresh token it returned works on its own.
    let refreshed = app
        .auth()
        .exchange_token(pb::ExchangeTokenRequest {
            grant: Some(Grant::RefreshToken(out.refresh_token.clone())),
            org_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refreshed.subject, out.subject);
    // The refresh token is stored hashed only.
    assert_eq!(
        count(&app, &format!("SELECT count(*) FROM identity.sessions WHERE encode(token_hash, 'escape') LIKE '%{}%'", &out.refresh_token[7..])).await,
        0
    );
}

#[tokio::test]
async fn verified_email_links_an_existing_user_and_enters_their_organization() {
    let idp = Idp::start().await;
    let app = TestApp::start_with_oidc(vec![idp.provider()]).await;
    let email: String = {
        let mut db = app.admin_db().await;
        sqlx::query_scalar("SELECT email FROM identity.users WHERE id = $1")
            .bind(app.alice.user_id)
            .fetch_one(&mut db)
            .await
            .unwrap()
    };
    let out = app
        .auth()
        .exchange_token(id_token(
            idp.sign_rs256(&idp.claims("google-123", &email.to_uppercase())),
            &app.alice.org_id.to_string(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        out.subject,
        app.alice.user_id.to_string(),
        "linked by verified email"
    );
    assert_eq!(out.org_id, app.alice.org_id.to_string());
    assert_eq!(out.org_role, pb::Role::Owner as i32);
    // The token works in that organization.
    let org = app
        .orgs()
        .get_organization(authed(
            &out.access_token,
            pb::GetOrganizationRequest {
                id: app.alice.org_id.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(org.id, app.alice.org_id.to_string());
}

#[tokio::test]
async fn another_organization_is_refused_and_nothing_is_written() {
    let idp = Idp::start().await;
    let app = TestApp::start_with_oidc(vec![idp.provider()]).await;
    let users = count(&app, "SELECT count(*) FROM identity.users").await;
    let sessions = count(&app, "SELECT count(*) FROM identity.sessions").await;
    let r = app
        .auth()
        .exchange_token(id_token(
            idp.sign(&idp.claims("sub-new", "new@example.org")),
            &app.bob.org_id.to_string(),
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "NOT_A_MEMBER");
    assert_eq!(
        count(&app, "SELECT count(*) FROM identity.users").await,
        users
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM identity.sessions").await,
        sessions
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM identity.linked_accounts").await,
        0
    );
}

#[tokio::test]
async fn bad_id_tokens_are_refused() {
    let mut idp = Idp::start().await;
    let app = TestApp::start_with_oidc(vec![idp.provider()]).await;
    let auth = app.auth();
    let good = idp.claims("sub-x", "x@example.org");
    let exchange = |t: String| {
        let mut auth = auth.clone();
        async move { auth.exchange_token(id_token(t, "")).await }
    };

    let mut c = good.clone();
    c["aud"] = json!("someone-else");
    assert_status(
        exchange(idp.sign(&c)).await,
        Code::Unauthenticated,
        "TOKEN_AUDIENCE",
    );
    let mut c = good.clone();
    c["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    assert_status(
        exchange(idp.sign(&c)).await,
        Code::Unauthenticated,
        "TOKEN_EXPIRED",
    );
    let mut c = good.clone();
    c["iss"] = json!("https://evil.example.com");
    assert_status(
        exchange(idp.sign(&c)).await,
        Code::Unauthenticated,
        "TOKEN_ISSUER",
    );
    let mut c = good.clone();
    c["email_verified"] = json!(false);
    assert_status(
        exchange(idp.sign(&c)).await,
        Code::Unauthenticated,
        "ID_TOKEN_EMAIL_UNVERIFIED",
    );

    // Signed by a key the issuer never published, under the current kid.
    let forger = SigningKey::generate(&mut rand::rngs::OsRng);
    let forged = idp.sign_with(&json!({"alg": "EdDSA", "kid": idp.kid}), &good, &forger);
    assert_status(
        exchange(forged).await,
        Code::Unauthenticated,
        "TOKEN_SIGNATURE",
    );
    // alg none, and a symmetric algorithm (the public key as an HMAC secret).
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(good.to_string())
    );
    assert_status(
        exchange(none).await,
        Code::Unauthenticated,
        "TOKEN_MALFORMED",
    );
    let hs = idp.sign_with(&json!({"alg": "HS256", "kid": idp.kid}), &good, &idp.key);
    assert_status(exchange(hs).await, Code::Unauthenticated, "TOKEN_ALGORITHM");
    // An RS256 header on the Ed25519 key.
    let mixed = idp.sign_with(&json!({"alg": "RS256", "kid": idp.kid}), &good, &idp.key);
    assert_status(
        exchange(mixed).await,
        Code::Unauthenticated,
        "TOKEN_ALGORITHM",
    );
    assert_status(
        exchange("not.a.jwt".into()).await,
        Code::Unauthenticated,
        "TOKEN_MALFORMED",
    );

    // An empty token is a validation error, not an authentication failure.
    let r = exchange(String::new()).await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(foundry_testkit::violated_fields(&status), vec!["id_token"]);
    // Nothing was created by any of these.
    assert_eq!(
        count(&app, "SELECT count(*) FROM identity.linked_accounts").await,
        0
    );

    // A key the issuer publishes later is fetched on first sight of its kid
    // (once the refetch interval, 2 s here, has passed since the last fetch);
    // unknown kids after that refetch at most once per interval.
    idp.rotate();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let before = idp.fetches.load(Ordering::SeqCst);
    exchange(idp.sign(&good)).await.unwrap();
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        before + 1,
        "rotated key fetched once"
    );
    let stranger = idp.sign_with(
        &json!({"alg": "EdDSA", "kid": "never-published"}),
        &good,
        &forger,
    );
    for _ in 0..5 {
        assert_status(
            exchange(stranger.clone()).await,
            Code::Unauthenticated,
            "TOKEN_UNKNOWN_KEY",
        );
    }
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        before + 1,
        "unknown kids are rate-limited"
    );
}

#[tokio::test]
async fn without_a_configured_issuer_the_grant_is_unavailable() {
    let app = TestApp::start().await;
    let idp = Idp::start().await;
    let r = app
        .auth()
        .exchange_token(id_token(idp.sign(&idp.claims("s", "s@example.org")), ""))
        .await;
    assert_status(r, Code::FailedPrecondition, "OIDC_NOT_CONFIGURED");
}
