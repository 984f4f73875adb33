use foundry_identity::domain::Role as R;
use foundry_testkit::identity::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

fn refresh(token: &str, org: &str) -> ExchangeTokenRequest {
    ExchangeTokenRequest {
        grant: Some(exchange_token_request::Grant::RefreshToken(token.into())),
        org_id: org.into(),
    }
}

/// The answer to a refresh with `token` acting in `org`, which must work.
async fn refreshed(app: &TestApp, token: &str, org: &str) -> ExchangeTokenResponse {
    app.auth()
        .exchange_token(refresh(token, org))
        .await
        .expect("refresh")
        .into_inner()
}

/// The sessions of `user_id`, as ListSessions answers them.
async fn sessions_of(app: &TestApp, user_id: uuid::Uuid) -> Vec<Session> {
    let user = app.token(user_id, None, None);
    app.auth()
        .list_sessions(authed(&user, ListSessionsRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .sessions
}

/// A new session of `user_id`; its refresh token.
async fn session(app: &TestApp, user_id: uuid::Uuid) -> String {
    app.suite
        .identity
        .start_session(user_id)
        .await
        .expect("session")
}

#[tokio::test]
async fn a_refresh_token_exchanges_for_an_org_token_after_a_membership_check() {
    let app = TestApp::start().await;
    let rt = session(&app, app.alice.user_id).await;
    let resp = refreshed(&app, &rt, &app.alice.org_id.to_string()).await;
    assert_eq!(resp.token_type, "Bearer");
    assert_eq!(resp.org_role, Role::Owner as i32);
    assert!(!resp.session_id.is_empty());
    // The token presented is spent: the session goes on with the next one.
    let rt = resp.refresh_token.clone();
    app.orgs()
        .get_organization(authed(
            &resp.access_token,
            GetOrganizationRequest {
                id: app.alice.org_id.to_string(),
            },
        ))
        .await
        .expect("token works");

    // Switching to an org she is not a member of is refused, and rotates
    // nothing: the token she holds still works.
    let r = app
        .auth()
        .exchange_token(refresh(&rt, &app.bob.org_id.to_string()))
        .await;
    assert_status(r, Code::PermissionDenied, "NOT_A_MEMBER");

    // Without an org: a user token, good for user-scoped methods only.
    let bare = refreshed(&app, &rt, "").await;
    assert!(bare.org_id.is_empty());
    let r = app
        .members()
        .list_memberships(authed(
            &bare.access_token,
            ListMembershipsRequest::default(),
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "NO_ACTIVE_ORGANIZATION");
}

#[tokio::test]
async fn a_removed_member_can_no_longer_exchange_for_the_org() {
    let app = TestApp::start().await;
    let editor = app.new_member(&app.alice, R::Editor).await;
    let rt = session(&app, editor.user_id).await;
    let org = app.alice.org_id.to_string();
    let rt = refreshed(&app, &rt, &org).await.refresh_token;
    app.members()
        .leave_organization(authed(
            &editor.token,
            LeaveOrganizationRequest {
                org_id: org.clone(),
            },
        ))
        .await
        .expect("leave");
    let r = app.auth().exchange_token(refresh(&rt, &org)).await;
    assert_status(r, Code::PermissionDenied, "NOT_A_MEMBER");
}

#[tokio::test]
async fn exchange_validates_its_input() {
    let app = TestApp::start().await;
    let r = app
        .auth()
        .exchange_token(ExchangeTokenRequest {
            grant: None,
            org_id: "x".into(),
        })
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["org_id", "grant"]);
    let r = app
        .auth()
        .exchange_token(refresh("fnd_rt_garbage", ""))
        .await;
    assert_status(r, Code::Unauthenticated, "CREDENTIAL_INVALID");
    let r = app
        .auth()
        .exchange_token(ExchangeTokenRequest {
            grant: Some(exchange_token_request::Grant::IdToken("x".into())),
            org_id: String::new(),
        })
        .await;
    assert_status(r, Code::FailedPrecondition, "OIDC_NOT_CONFIGURED");
}

#[tokio::test]
async fn sessions_are_listed_and_a_revoked_one_stops_refreshing() {
    let app = TestApp::start().await;
    let rt1 = session(&app, app.alice.user_id).await;
    let _rt2 = session(&app, app.alice.user_id).await;
    let _bobs = session(&app, app.bob.user_id).await;
    let user = app.token(app.alice.user_id, None, None);
    let sessions = sessions_of(&app, app.alice.user_id).await;
    assert_eq!(sessions.len(), 2, "only her own sessions");
    let first = refreshed(&app, &rt1, "").await;
    let revoked = app
        .auth()
        .revoke_session(authed(
            &user,
            RevokeSessionRequest {
                id: first.session_id.clone(),
            },
        ))
        .await
        .expect("revoke")
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    let r = app
        .auth()
        .exchange_token(refresh(&first.refresh_token, ""))
        .await;
    assert_status(r, Code::Unauthenticated, "CREDENTIAL_INVALID");

    // Bob cannot revoke Alice's session: not found for him.
    let bob_user = app.token(app.bob.user_id, None, None);
    let r = app
        .auth()
        .revoke_session(authed(
            &bob_user,
            RevokeSessionRequest {
                id: first.session_id,
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "SESSION_NOT_FOUND");
    let r = app
        .auth()
        .revoke_session(authed(&bob_user, RevokeSessionRequest { id: "bad".into() }))
        .await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn jwks_publishes_a_rotated_key_before_it_signs() {
    let app = TestApp::start().await;
    let before = app
        .auth()
        .get_jwks(GetJwksRequest {})
        .await
        .expect("jwks")
        .into_inner();
    assert_eq!(before.keys.len(), 1);
    let k = &before.keys[0];
    assert_eq!(
        (
            k.kty.as_str(),
            k.crv.as_str(),
            k.alg.as_str(),
            k.r#use.as_str()
        ),
        ("OKP", "Ed25519", "EdDSA", "sig")
    );

    // Rotation is internal: a user is refused, a service account allowed.
    let r = app
        .auth()
        .rotate_signing_key(authed(&app.alice.token, RotateSigningKeyRequest {}))
        .await;
    assert_status(r, Code::PermissionDenied, "INTERNAL_METHOD");
    let (_, key) = app
        .suite
        .identity
        .create_service_account("relay", "tests", "", &["identity.signing_keys.admin"])
        .await
        .expect("sa");
    let svc = app
        .auth()
        .exchange_token(ExchangeTokenRequest {
            grant: Some(exchange_token_request::Grant::ServiceAccountKey(key)),
            org_id: String::new(),
        })
        .await
        .expect("service token")
        .into_inner();
    let after = app
        .auth()
        .rotate_signing_key(authed(&svc.access_token, RotateSigningKeyRequest {}))
        .await
        .expect("rotate")
        .into_inner();
    assert_eq!(after.keys.len(), 2, "old and new both published");

    // The new key is not active yet (published ahead), so new tokens are
    // still signed by the old key, and both verify.
    let t = app.token(app.alice.user_id, Some(app.alice.org_id), Some(R::Owner));
    let header: serde_json::Value = {
        use base64::Engine;
        let h = t.split('.').next().expect("header");
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .expect("b64"),
        )
        .expect("json")
    };
    assert_eq!(header["kid"], serde_json::Value::String(k.kid.clone()));
    app.orgs()
        .get_organization(authed(
            &t,
            GetOrganizationRequest {
                id: app.alice.org_id.to_string(),
            },
        ))
        .await
        .expect("still valid");
}

/// The audit events the outbox holds for `resource_id`, oldest first.
async fn events_of(app: &TestApp, resource_id: &str) -> Vec<serde_json::Value> {
    let mut db = app.admin_db().await;
    sqlx::query_scalar(
        "SELECT payload FROM identity.outbox WHERE payload->>'resource_id' = $1 ORDER BY id",
    )
    .bind(resource_id)
    .fetch_all(&mut db)
    .await
    .unwrap()
}

/// Issue 13, finding 7: each refresh returns a new refresh token and
/// retires the one presented; presenting a retired one again revokes the
/// session (every token descended from its sign-in) and records a security
/// event, committed though the call fails.
#[tokio::test]
async fn refresh_tokens_never_rotate_and_reuse_is_not_detected() {
    let app = TestApp::start().await;
    let org = app.alice.org_id.to_string();
    let rt0 = session(&app, app.alice.user_id).await;
    let first = refreshed(&app, &rt0, &org).await;
    let rt1 = first.refresh_token.clone();
    assert!(
        rt1.starts_with("fnd_rt_") && rt1 != rt0,
        "a refresh returns a new refresh token: {first:?}"
    );
    let second = refreshed(&app, &rt1, "").await;
    let rt2 = second.refresh_token.clone();
    assert!(rt2.starts_with("fnd_rt_") && rt2 != rt1);
    assert_eq!(second.session_id, first.session_id, "one session, rotated");

    // rt0 was used once already: presenting it again is reuse.
    let r = app.auth().exchange_token(refresh(&rt0, &org)).await;
    assert_status(r, Code::Unauthenticated, "REFRESH_TOKEN_REUSED");
    // The whole family is revoked: the newest token stops working too.
    let r = app.auth().exchange_token(refresh(&rt2, "")).await;
    assert_status(r, Code::Unauthenticated, "CREDENTIAL_INVALID");
    let sessions = sessions_of(&app, app.alice.user_id).await;
    let session = sessions
        .iter()
        .find(|s| s.id == first.session_id)
        .expect("the session is listed");
    assert!(session.revoke_time.is_some(), "revoked: {session:?}");

    // The security event committed with the revocation.
    let events = events_of(&app, &first.session_id).await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "identity.session.create",
            "identity.session.refresh",
            "identity.session.refresh",
            "identity.session.reuse_detected",
        ]
    );
    let reuse = events.last().unwrap();
    assert_eq!(reuse["actor_id"], app.alice.user_id.to_string());
    assert_eq!(reuse["changes"]["reason"]["new"], "refresh_token_reused");
    assert!(!reuse["changes"]["revoke_time"]["new"].is_null(), "{reuse}");
    assert!(
        !events.iter().any(|e| {
            let s = e.to_string();
            [&rt0, &rt1, &rt2].iter().any(|t| s.contains(&t[7..]))
        }),
        "no refresh token in the log"
    );
}

/// Finding 7's race: two refreshes presenting the same token at once. The
/// session row is locked, so exactly one gets a new token; the other is a
/// reuse (indistinguishable from a thief racing the owner).
#[tokio::test]
async fn two_refreshes_with_one_token_at_once_let_exactly_one_win() {
    let app = TestApp::start().await;
    let rt = session(&app, app.alice.user_id).await;
    let calls = (0..6).map(|_| {
        let mut auth = app.auth();
        let rt = rt.clone();
        tokio::spawn(async move { auth.exchange_token(refresh(&rt, "")).await })
    });
    let mut won = vec![];
    let mut lost = vec![];
    for call in calls {
        match call.await.expect("join") {
            Ok(r) => won.push(r.into_inner()),
            Err(s) => lost.push(s),
        }
    }
    assert_eq!(won.len(), 1, "exactly one refresh wins; lost: {lost:?}");
    assert!(won[0].refresh_token.starts_with("fnd_rt_"));
    for s in lost {
        assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    }
    let mut db = app.admin_db().await;
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM identity.sessions WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(app.alice.user_id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(live, 0, "the losers' reuse revoked the session");
}

/// Spent refresh tokens are kept while their session could still be
/// presented with them, and swept once it is over.
#[tokio::test]
async fn spent_refresh_tokens_are_swept_once_their_session_is_over() {
    let app = TestApp::start().await;
    let mut sessions = vec![];
    for _ in 0..2 {
        let rt = session(&app, app.alice.user_id).await;
        let out = refreshed(&app, &rt, "").await;
        sessions.push(out.session_id.parse::<uuid::Uuid>().unwrap());
    }
    let mut db = app.admin_db().await;
    // The first session ended an hour ago.
    sqlx::query(
        "UPDATE identity.spent_refresh_tokens SET expires_at = now() - interval '1 hour' \
         WHERE session_id = $1",
    )
    .bind(sessions[0])
    .execute(&mut db)
    .await
    .unwrap();
    let removed = app.suite.identity.sweep().await.expect("sweep");
    assert_eq!(removed, 1);
    let left: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT session_id FROM identity.spent_refresh_tokens")
            .fetch_all(&mut db)
            .await
            .unwrap();
    assert_eq!(left, [sessions[1]]);
}
