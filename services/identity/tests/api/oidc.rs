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
        self.provider_with("")
    }

    /// The issuer's configuration with `extra` keys (`,link_email=true`).
    fn provider_with(&self, extra: &str) -> OidcProvider {
        format!(
            "issuer={},audience={AUD},jwks={}/jwks,name=test-idp,refetch=2{extra}",
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
            "jti": uuid::Uuid::now_v7().to_string(),
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

/// Where the issuer is trusted to link by email (`link_email=true`).
#[tokio::test]
async fn verified_email_links_an_existing_user_and_enters_their_organization() {
    let idp = Idp::start().await;
    let app = TestApp::start_with_oidc(vec![idp.provider_with(",link_email=true")]).await;
    let email = email_of(&app, app.alice.user_id).await;
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
    c.as_object_mut().unwrap().remove("iat");
    assert_status(
        exchange(idp.sign(&c)).await,
        Code::Unauthenticated,
        "TOKEN_MALFORMED",
    );
    let mut c = good.clone();
    c["iat"] = json!(chrono::Utc::now().timestamp() + 3600);
    assert_status(
        exchange(idp.sign(&c)).await,
        Code::Unauthenticated,
        "TOKEN_NOT_YET_VALID",
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

/// The email of `user_id`.
async fn email_of(app: &TestApp, user_id: uuid::Uuid) -> String {
    let mut db = app.admin_db().await;
    sqlx::query_scalar("SELECT email FROM identity.users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&mut db)
        .await
        .unwrap()
}

/// Signs in at `idp` as its `sub` with the verified `email`, acting in
/// `org` (empty: none).
async fn sign_in(
    app: &TestApp,
    idp: &Idp,
    sub: &str,
    email: &str,
    org: &str,
) -> Result<tonic::Response<pb::ExchangeTokenResponse>, tonic::Status> {
    let token = idp.sign(&idp.claims(sub, email));
    app.auth().exchange_token(id_token(token, org)).await
}

/// Who a sign-in at `idp` as its `sub` with `email` is: the token's
/// subject (the sign-in must work).
async fn subject_at(app: &TestApp, idp: &Idp, sub: &str, email: &str) -> String {
    let out = sign_in(app, idp, sub, email, "").await.unwrap();
    out.into_inner().subject
}

/// Links the account of `id_token` to the user of `user_token`.
async fn link(
    app: &TestApp,
    user_token: &str,
    id_token: String,
) -> Result<tonic::Response<pb::LinkedAccount>, tonic::Status> {
    let req = pb::LinkAccountRequest {
        user_id: "me".into(),
        id_token,
    };
    app.users().link_account(authed(user_token, req)).await
}

/// Issue 13, finding 6 (linking): a first sign-in from an issuer is linked
/// to the existing user with the same email only where that issuer is
/// configured to link by email (`link_email`, within its `email_domain`s)
/// and the email is verified; elsewhere it is refused, and the user links
/// the account from a signed-in session instead (`LinkAccount`).
#[tokio::test]
async fn first_external_sign_in_links_to_any_existing_user_with_the_same_email() {
    let plain = Idp::start().await; // trusted for sign-in, not for linking
    let linking = Idp::start().await;
    let elsewhere = Idp::start().await; // links, but only corp.example emails
    let app = TestApp::start_with_oidc(vec![
        plain.provider(),
        linking.provider_with(",link_email=true,email_domain=example.com"),
        elsewhere.provider_with(",link_email=true,email_domain=corp.example"),
    ])
    .await;
    let alices = email_of(&app, app.alice.user_id).await;
    let linked = "SELECT count(*) FROM identity.linked_accounts";

    // Anyone who controls an account at any trusted issuer with Alice's
    // address would become Alice: refused.
    let r = sign_in(
        &app,
        &plain,
        "mallory",
        &alices,
        &app.alice.org_id.to_string(),
    )
    .await;
    assert_status(r, Code::FailedPrecondition, "LINK_REQUIRED");
    let r = sign_in(&app, &elsewhere, "mallory", &alices, "").await;
    assert_status(r, Code::FailedPrecondition, "LINK_REQUIRED");
    // An issuer that may link, with an email it says it did not verify.
    let mut unverified = linking.claims("alice-at-linking", &alices);
    unverified["email_verified"] = json!(false);
    let r = app
        .auth()
        .exchange_token(id_token(linking.sign(&unverified), ""))
        .await;
    assert_status(r, Code::Unauthenticated, "ID_TOKEN_EMAIL_UNVERIFIED");
    assert_eq!(count(&app, linked).await, 0, "nothing was linked");

    // The issuer configured to link by email, in its domain: linked.
    let alice = app.alice.user_id.to_string();
    let subject = subject_at(&app, &linking, "alice-at-linking", &alices).await;
    assert_eq!(subject, alice);

    // Alice, signed in, links her account at the plain issuer herself;
    // from then on it signs her in.
    let user = app.token(app.alice.user_id, None, None);
    let at_plain = || plain.sign(&plain.claims("alice-at-plain", &alices));
    let account = link(&app, &user, at_plain()).await.unwrap().into_inner();
    assert_eq!(
        (account.issuer.as_str(), account.subject.as_str()),
        (plain.issuer.as_str(), "alice-at-plain")
    );
    let subject = subject_at(&app, &plain, "alice-at-plain", &alices).await;
    assert_eq!(subject, alice);
    // An account linked to one user cannot be linked to another.
    let bob = app.token(app.bob.user_id, None, None);
    let r = link(&app, &bob, at_plain()).await;
    assert_status(r, Code::AlreadyExists, "ACCOUNT_ALREADY_LINKED");
    let r = link(&app, &bob, String::new()).await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(foundry_testkit::violated_fields(&s), ["id_token"]);
    assert_eq!(count(&app, linked).await, 2);
}

/// Signs in with `token`, then presents it again: refused as a replay.
async fn signs_in_once(app: &TestApp, token: String) {
    let first = app.auth().exchange_token(id_token(token.clone(), "")).await;
    first.expect("the first use signs in");
    let again = app.auth().exchange_token(id_token(token, "")).await;
    assert_status(again, Code::Unauthenticated, "ID_TOKEN_REPLAYED");
}

/// Issue 13, finding 6 (replay): an ID token signs in once. Its `jti` (or,
/// without one, the token itself) is remembered until it could no longer
/// be accepted; a token issued longer ago than the issuer's `max_age` is
/// refused outright.
#[tokio::test]
async fn replaying_one_id_token_creates_a_second_session() {
    let idp = Idp::start().await;
    let app = TestApp::start_with_oidc(vec![idp.provider_with(",max_age=120")]).await;
    let sessions = "SELECT count(*) FROM identity.sessions";
    let before = count(&app, sessions).await;
    let token = idp.sign(&idp.claims("sub-replay", "replay@example.org"));
    signs_in_once(&app, token).await;
    assert_eq!(count(&app, sessions).await, before + 1, "one session");

    // Another token with the same jti is the same token.
    let mut claims = idp.claims("sub-replay", "replay@example.org");
    let jti = claims["jti"].clone();
    app.auth()
        .exchange_token(id_token(idp.sign(&claims), ""))
        .await
        .unwrap();
    claims["name"] = json!("Someone Else");
    claims["jti"] = jti;
    let r = app
        .auth()
        .exchange_token(id_token(idp.sign(&claims), ""))
        .await;
    assert_status(r, Code::Unauthenticated, "ID_TOKEN_REPLAYED");

    // Without a jti the token itself is what is remembered.
    let mut bare = idp.claims("sub-replay", "replay@example.org");
    bare.as_object_mut().unwrap().remove("jti");
    signs_in_once(&app, idp.sign(&bare)).await;

    // Issued three minutes ago (its exp still ahead): older than max_age.
    let mut old = idp.claims("sub-replay", "replay@example.org");
    old["iat"] = json!(chrono::Utc::now().timestamp() - 180);
    let r = app
        .auth()
        .exchange_token(id_token(idp.sign(&old), ""))
        .await;
    assert_status(r, Code::Unauthenticated, "ID_TOKEN_TOO_OLD");
    assert_eq!(count(&app, sessions).await, before + 3);

    // Remembered uses go once their tokens could no longer be accepted.
    let mut db = app.admin_db().await;
    sqlx::query("UPDATE identity.used_id_tokens SET expires_at = now() - interval '1 second'")
        .execute(&mut db)
        .await
        .unwrap();
    assert_eq!(app.suite.identity.sweep().await.unwrap(), 3);
}
