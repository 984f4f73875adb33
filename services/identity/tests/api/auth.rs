use foundry_identity::domain::Role as R;
use foundry_testkit::identity::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

fn refresh(token: &str, org: &str) -> ExchangeTokenRequest {
    ExchangeTokenRequest {
        grant: Some(exchange_token_request::Grant::RefreshToken(token.into())),
        org_id: org.into(),
    }
}

#[tokio::test]
async fn a_refresh_token_exchanges_for_an_org_token_after_a_membership_check() {
    let app = TestApp::start().await;
    let rt = app
        .suite
        .identity
        .start_session(app.alice.user_id)
        .await
        .expect("session");
    let resp = app
        .auth()
        .exchange_token(refresh(&rt, &app.alice.org_id.to_string()))
        .await
        .expect("exchange")
        .into_inner();
    assert_eq!(resp.token_type, "Bearer");
    assert_eq!(resp.org_role, Role::Owner as i32);
    assert!(!resp.session_id.is_empty());
    app.orgs()
        .get_organization(authed(
            &resp.access_token,
            GetOrganizationRequest {
                id: app.alice.org_id.to_string(),
            },
        ))
        .await
        .expect("token works");

    // Switching to an org she is not a member of is refused.
    let r = app
        .auth()
        .exchange_token(refresh(&rt, &app.bob.org_id.to_string()))
        .await;
    assert_status(r, Code::PermissionDenied, "NOT_A_MEMBER");

    // Without an org: a user token, good for user-scoped methods only.
    let bare = app
        .auth()
        .exchange_token(refresh(&rt, ""))
        .await
        .expect("bare")
        .into_inner();
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
    let rt = app
        .suite
        .identity
        .start_session(editor.user_id)
        .await
        .expect("session");
    let org = app.alice.org_id.to_string();
    app.auth()
        .exchange_token(refresh(&rt, &org))
        .await
        .expect("member");
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
    let rt1 = app
        .suite
        .identity
        .start_session(app.alice.user_id)
        .await
        .expect("s1");
    let _rt2 = app
        .suite
        .identity
        .start_session(app.alice.user_id)
        .await
        .expect("s2");
    let _bobs = app
        .suite
        .identity
        .start_session(app.bob.user_id)
        .await
        .expect("bob");
    let user = app.token(app.alice.user_id, None, None);
    let list = app
        .auth()
        .list_sessions(authed(&user, ListSessionsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.sessions.len(), 2, "only her own sessions");
    let first = app
        .auth()
        .exchange_token(refresh(&rt1, ""))
        .await
        .expect("exchange")
        .into_inner();
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
    let r = app.auth().exchange_token(refresh(&rt1, "")).await;
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
