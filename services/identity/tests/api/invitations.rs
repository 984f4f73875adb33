use foundry_identity::domain::Role as R;
use foundry_testkit::identity::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use uuid::Uuid;

fn invite(email: &str, role: Role) -> CreateInvitationRequest {
    CreateInvitationRequest {
        invitation: Some(Invitation {
            email: email.into(),
            role: role as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

async fn create(app: &TestApp, token: &str, email: &str, role: Role) -> Invitation {
    app.invitations()
        .create_invitation(authed(token, invite(email, role)))
        .await
        .expect("create invitation")
        .into_inner()
}

async fn get(app: &TestApp, token: &str, id: &str) -> Invitation {
    app.invitations()
        .get_invitation(authed(token, GetInvitationRequest { id: id.into() }))
        .await
        .expect("get invitation")
        .into_inner()
}

/// A new user with this email and a user token (acting in no organization),
/// as an invitee signs in before accepting.
async fn invitee(app: &TestApp, email: &str) -> (Uuid, String) {
    let id = app
        .suite
        .identity
        .create_user(email, "Invitee")
        .await
        .expect("user");
    (id, app.token(id, None, None))
}

fn accept(token: &str) -> AcceptInvitationRequest {
    AcceptInvitationRequest {
        token: token.into(),
    }
}

fn unique_email(name: &str) -> String {
    format!("{name}-{}@example.com", Uuid::now_v7().simple())
}

async fn expire(app: &TestApp, id: &str) {
    sqlx::query(
        "UPDATE identity.invitations SET expires_at = now() - interval '1 hour' WHERE id = $1::uuid",
    )
    .bind(id)
    .execute(&mut app.admin_db().await)
    .await
    .expect("expire");
}

#[tokio::test]
async fn an_invitation_token_is_shown_once_and_only_its_hash_is_stored() {
    let app = TestApp::start().await;
    let created = create(&app, &app.alice.token, "Carol@Example.COM", Role::Editor).await;
    assert!(created.token.starts_with("fnd_inv_"), "{}", created.token);
    assert_eq!(created.email, "carol@example.com", "normalized");
    assert_eq!(created.role, Role::Editor as i32);
    assert_eq!(created.state, InvitationState::Pending as i32);
    assert_eq!(created.org_id, app.alice.org_id.to_string());
    assert_eq!(created.invited_by, app.alice.user_id.to_string());
    assert_eq!(created.etag, "1");
    assert!(created.accept_time.is_none());
    let expires = created.expire_time.expect("expire_time").seconds;
    let now = chrono::Utc::now().timestamp();
    assert!(expires > now + 6 * 86_400 && expires <= now + 7 * 86_400 + 60);

    let got = get(&app, &app.alice.token, &created.id).await;
    assert!(got.token.is_empty(), "never shown twice");
    assert_eq!(got.email, created.email);
    let listed = app
        .invitations()
        .list_invitations(authed(&app.alice.token, ListInvitationsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.invitations.len(), 1);
    assert!(listed.invitations.iter().all(|i| i.token.is_empty()));

    // At rest: the SHA-256, nowhere the token.
    let row: (Vec<u8>, String) = sqlx::query_as(
        "SELECT token_hash, row_to_json(i)::text FROM identity.invitations i WHERE id = $1::uuid",
    )
    .bind(&created.id)
    .fetch_one(&mut app.admin_db().await)
    .await
    .expect("row");
    use sha2::Digest;
    assert_eq!(
        row.0,
        sha2::Sha256::digest(created.token.as_bytes()).to_vec()
    );
    assert!(!row.1.contains(&created.token["fnd_inv_".len()..]));
}

#[tokio::test]
async fn a_second_pending_invitation_to_the_same_email_already_exists() {
    let app = TestApp::start().await;
    let first = create(&app, &app.alice.token, "dup@example.com", Role::Viewer).await;
    let r = app
        .invitations()
        .create_invitation(authed(
            &app.alice.token,
            invite("DUP@Example.com", Role::Editor),
        ))
        .await;
    assert_status(r, Code::AlreadyExists, "INVITATION_PENDING");

    // Another organization may invite the same address.
    create(&app, &app.bob.token, "dup@example.com", Role::Viewer).await;

    // Once the first is no longer pending, the address may be invited again.
    app.invitations()
        .revoke_invitation(authed(
            &app.alice.token,
            RevokeInvitationRequest {
                id: first.id,
                etag: String::new(),
            },
        ))
        .await
        .expect("revoke");
    create(&app, &app.alice.token, "Dup@example.com", Role::Editor).await;
}

#[tokio::test]
async fn a_repeat_create_with_the_same_request_id_returns_the_same_invitation() {
    let app = TestApp::start().await;
    let mut req = invite("again@example.com", Role::Viewer);
    req.request_id = Uuid::now_v7().to_string();
    let first = app
        .invitations()
        .create_invitation(authed(&app.alice.token, req.clone()))
        .await
        .expect("first")
        .into_inner();
    let again = app
        .invitations()
        .create_invitation(authed(&app.alice.token, req))
        .await
        .expect("again")
        .into_inner();
    assert!(!first.token.is_empty());
    assert_eq!(again.id, first.id);
    assert_eq!(again.etag, first.etag);
    assert!(
        again.token.is_empty(),
        "the replay does not carry the token"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM identity.invitations WHERE org_id = $1")
        .bind(app.alice.org_id)
        .fetch_one(&mut app.admin_db().await)
        .await
        .expect("count");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn invitation_creation_validates_fields_and_who_may_grant_which_role() {
    let app = TestApp::start().await;
    let r = app
        .invitations()
        .create_invitation(authed(&app.alice.token, CreateInvitationRequest::default()))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["invitation.email", "invitation.role"]);
    let mut bad = invite("not-an-email", Role::Viewer);
    if let Some(i) = bad.invitation.as_mut() {
        i.role = 99;
    }
    bad.request_id = "nope".into();
    let r = app
        .invitations()
        .create_invitation(authed(&app.alice.token, bad))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        ["invitation.email", "invitation.role", "request_id"]
    );

    for role in [R::Viewer, R::Editor, R::Billing] {
        let member = app.new_member(&app.alice, role).await;
        let r = app
            .invitations()
            .create_invitation(authed(
                &member.token,
                invite(&unique_email("x"), Role::Viewer),
            ))
            .await;
        assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    }

    let admin = app.new_member(&app.alice, R::Admin).await;
    let r = app
        .invitations()
        .create_invitation(authed(
            &admin.token,
            invite(&unique_email("o"), Role::Owner),
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "OWNER_REQUIRED");
    let by_admin = create(&app, &admin.token, &unique_email("a"), Role::Admin).await;
    assert_eq!(by_admin.invited_by, admin.user_id.to_string());
    let by_owner = create(&app, &app.alice.token, &unique_email("o"), Role::Owner).await;
    assert_eq!(by_owner.role, Role::Owner as i32);

    // A token acting in no organization cannot invite.
    let user_only = app.token(app.alice.user_id, None, None);
    let r = app
        .invitations()
        .create_invitation(authed(&user_only, invite(&unique_email("u"), Role::Viewer)))
        .await;
    assert_status(r, Code::PermissionDenied, "NO_ACTIVE_ORGANIZATION");
}

#[tokio::test]
async fn accepting_makes_the_invitee_a_member_with_the_invited_role() {
    let app = TestApp::start().await;
    let inv = create(&app, &app.alice.token, "dave@example.com", Role::Editor).await;
    // The address matches whatever its case.
    let (dave, dave_token) = invitee(&app, "Dave@Example.com").await;
    let m = app
        .invitations()
        .accept_invitation(authed(&dave_token, accept(&inv.token)))
        .await
        .expect("accept")
        .into_inner();
    assert_eq!(m.user_id, dave.to_string());
    assert_eq!(m.org_id, app.alice.org_id.to_string());
    assert_eq!(m.role, Role::Editor as i32);

    let got = get(&app, &app.alice.token, &inv.id).await;
    assert_eq!(got.state, InvitationState::Accepted as i32);
    assert!(got.accept_time.is_some());
    assert_eq!(got.etag, "2");
    let members = app
        .members()
        .list_memberships(authed(&app.alice.token, ListMembershipsRequest::default()))
        .await
        .expect("members")
        .into_inner();
    let row = members
        .memberships
        .iter()
        .find(|x| x.user_id == dave.to_string())
        .expect("dave is a member");
    assert_eq!(row.role, Role::Editor as i32);
    let (invited_by,): (Option<Uuid>,) =
        sqlx::query_as("SELECT invited_by FROM identity.memberships WHERE user_id = $1")
            .bind(dave)
            .fetch_one(&mut app.admin_db().await)
            .await
            .expect("membership row");
    assert_eq!(invited_by, Some(app.alice.user_id));

    let r = app
        .invitations()
        .accept_invitation(authed(&dave_token, accept(&inv.token)))
        .await;
    assert_status(r, Code::FailedPrecondition, "INVITATION_NOT_PENDING");
    let listed = app
        .invitations()
        .list_invitations(authed(
            &app.alice.token,
            ListInvitationsRequest {
                state: InvitationState::Accepted as i32,
                ..Default::default()
            },
        ))
        .await
        .expect("list accepted")
        .into_inner();
    assert_eq!(listed.invitations.len(), 1);
    assert_eq!(listed.invitations[0].id, inv.id);
}

#[tokio::test]
async fn only_the_addressee_may_accept() {
    let app = TestApp::start().await;
    let inv = create(&app, &app.alice.token, "erin@example.com", Role::Viewer).await;
    let (_, mallory) = invitee(&app, "mallory@example.com").await;
    let r = app
        .invitations()
        .accept_invitation(authed(&mallory, accept(&inv.token)))
        .await;
    assert_status(r, Code::NotFound, "INVITATION_NOT_FOUND");
    // Neither may an owner of another organization.
    let bob_user = app.token(app.bob.user_id, None, None);
    let r = app
        .invitations()
        .accept_invitation(authed(&bob_user, accept(&inv.token)))
        .await;
    assert_status(r, Code::NotFound, "INVITATION_NOT_FOUND");
    assert_eq!(
        get(&app, &app.alice.token, &inv.id).await.state,
        InvitationState::Pending as i32
    );

    let (_, erin) = invitee(&app, "erin@example.com").await;
    let r = app
        .invitations()
        .accept_invitation(authed(&erin, accept("")))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["token"]);
    let r = app
        .invitations()
        .accept_invitation(authed(&erin, accept("fnd_inv_garbage")))
        .await;
    assert_status(r, Code::NotFound, "INVITATION_NOT_FOUND");
    // A well-formed token of another kind is not an invitation.
    let r = app
        .invitations()
        .accept_invitation(authed(
            &erin,
            accept(&inv.token.replacen("fnd_inv_", "fnd_key_", 1)),
        ))
        .await;
    assert_status(r, Code::NotFound, "INVITATION_NOT_FOUND");
    let svc = app.service_token().await;
    let r = app
        .invitations()
        .accept_invitation(authed(&svc, accept(&inv.token)))
        .await;
    assert_status(r, Code::PermissionDenied, "USER_REQUIRED");

    app.invitations()
        .accept_invitation(authed(&erin, accept(&inv.token)))
        .await
        .expect("the addressee accepts");
}

#[tokio::test]
async fn an_expired_invitation_cannot_be_accepted_until_resent() {
    let app = TestApp::start().await;
    let inv = create(&app, &app.alice.token, "frank@example.com", Role::Viewer).await;
    let fresh = create(&app, &app.alice.token, "grace@example.com", Role::Viewer).await;
    expire(&app, &inv.id).await;

    assert_eq!(
        get(&app, &app.alice.token, &inv.id).await.state,
        InvitationState::Expired as i32
    );
    let list = |state: InvitationState| {
        let app = &app;
        async move {
            app.invitations()
                .list_invitations(authed(
                    &app.alice.token,
                    ListInvitationsRequest {
                        state: state as i32,
                        ..Default::default()
                    },
                ))
                .await
                .expect("list")
                .into_inner()
                .invitations
                .into_iter()
                .map(|i| (i.id, i.state))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(InvitationState::Expired).await,
        [(inv.id.clone(), InvitationState::Expired as i32)]
    );
    assert_eq!(
        list(InvitationState::Pending).await,
        [(fresh.id.clone(), InvitationState::Pending as i32)]
    );

    let (frank, frank_token) = invitee(&app, "frank@example.com").await;
    let r = app
        .invitations()
        .accept_invitation(authed(&frank_token, accept(&inv.token)))
        .await;
    assert_status(r, Code::FailedPrecondition, "INVITATION_EXPIRED");
    // While expired, the address is still taken: resend, do not re-invite.
    let r = app
        .invitations()
        .create_invitation(authed(
            &app.alice.token,
            invite("frank@example.com", Role::Viewer),
        ))
        .await;
    assert_status(r, Code::AlreadyExists, "INVITATION_PENDING");

    let resent = app
        .invitations()
        .resend_invitation(authed(
            &app.alice.token,
            ResendInvitationRequest { id: inv.id.clone() },
        ))
        .await
        .expect("resend")
        .into_inner();
    assert_eq!(resent.state, InvitationState::Pending as i32);
    assert!(resent.expire_time.expect("expiry").seconds > chrono::Utc::now().timestamp());
    let m = app
        .invitations()
        .accept_invitation(authed(&frank_token, accept(&resent.token)))
        .await
        .expect("accept the resent invitation")
        .into_inner();
    assert_eq!(m.user_id, frank.to_string());
}

#[tokio::test]
async fn resend_issues_a_new_token_and_the_old_one_stops_working() {
    let app = TestApp::start().await;
    let inv = create(&app, &app.alice.token, "heidi@example.com", Role::Admin).await;
    let resent = app
        .invitations()
        .resend_invitation(authed(
            &app.alice.token,
            ResendInvitationRequest { id: inv.id.clone() },
        ))
        .await
        .expect("resend")
        .into_inner();
    assert_eq!(resent.id, inv.id);
    assert!(resent.token.starts_with("fnd_inv_"));
    assert_ne!(resent.token, inv.token);
    assert_eq!(resent.etag, "2");
    assert!(get(&app, &app.alice.token, &inv.id).await.token.is_empty());
    let hash: Vec<u8> =
        sqlx::query_scalar("SELECT token_hash FROM identity.invitations WHERE id = $1::uuid")
            .bind(&inv.id)
            .fetch_one(&mut app.admin_db().await)
            .await
            .expect("row");
    use sha2::Digest;
    assert_eq!(hash, sha2::Sha256::digest(resent.token.as_bytes()).to_vec());

    let (_, heidi) = invitee(&app, "heidi@example.com").await;
    let r = app
        .invitations()
        .accept_invitation(authed(&heidi, accept(&inv.token)))
        .await;
    assert_status(r, Code::NotFound, "INVITATION_NOT_FOUND");
    let m = app
        .invitations()
        .accept_invitation(authed(&heidi, accept(&resent.token)))
        .await
        .expect("accept")
        .into_inner();
    assert_eq!(m.role, Role::Admin as i32);

    // An accepted invitation is not resent.
    let r = app
        .invitations()
        .resend_invitation(authed(
            &app.alice.token,
            ResendInvitationRequest { id: inv.id.clone() },
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, "INVITATION_NOT_PENDING");
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let r = app
        .invitations()
        .resend_invitation(authed(
            &viewer.token,
            ResendInvitationRequest { id: inv.id },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
}

#[tokio::test]
async fn a_revoked_invitation_cannot_be_accepted_revoked_or_resent() {
    let app = TestApp::start().await;
    let inv = create(&app, &app.alice.token, "ivan@example.com", Role::Viewer).await;
    let revoke = |etag: &str| RevokeInvitationRequest {
        id: inv.id.clone(),
        etag: etag.into(),
    };
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let r = app
        .invitations()
        .revoke_invitation(authed(&viewer.token, revoke("")))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let revoked = app
        .invitations()
        .revoke_invitation(authed(&app.alice.token, revoke(&inv.etag)))
        .await
        .expect("revoke")
        .into_inner();
    assert_eq!(revoked.state, InvitationState::Revoked as i32);
    assert_eq!(revoked.etag, "2");
    assert!(revoked.token.is_empty());

    let (_, ivan) = invitee(&app, "ivan@example.com").await;
    let r = app
        .invitations()
        .accept_invitation(authed(&ivan, accept(&inv.token)))
        .await;
    assert_status(r, Code::FailedPrecondition, "INVITATION_NOT_PENDING");
    let r = app
        .invitations()
        .revoke_invitation(authed(&app.alice.token, revoke(&revoked.etag)))
        .await;
    assert_status(r, Code::FailedPrecondition, "INVITATION_NOT_PENDING");
    let r = app
        .invitations()
        .resend_invitation(authed(
            &app.alice.token,
            ResendInvitationRequest { id: inv.id.clone() },
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, "INVITATION_NOT_PENDING");
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM identity.memberships m JOIN identity.users u ON u.id = m.user_id \
         WHERE u.email = 'ivan@example.com'",
    )
    .fetch_one(&mut app.admin_db().await)
    .await
    .expect("count");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn invitations_are_listed_newest_first_paged_and_filtered_by_state() {
    let app = TestApp::start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            create(
                &app,
                &app.alice.token,
                &format!("p{i}@example.com"),
                Role::Viewer,
            )
            .await
            .id,
        );
    }
    ids.reverse(); // newest first
    app.invitations()
        .revoke_invitation(authed(
            &app.alice.token,
            RevokeInvitationRequest {
                id: ids[1].clone(),
                etag: String::new(),
            },
        ))
        .await
        .expect("revoke");
    create(&app, &app.bob.token, "p0@example.com", Role::Viewer).await;

    let page = |state: InvitationState, page_token: String| ListInvitationsRequest {
        page_size: 2,
        page_token,
        state: state as i32,
    };
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let resp = app
            .invitations()
            .list_invitations(authed(
                &app.alice.token,
                page(InvitationState::Unspecified, token),
            ))
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(resp.invitations.len() <= 2);
        seen.extend(resp.invitations.into_iter().map(|i| i.id));
        token = resp.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every invitation once, newest first");

    let pending = app
        .invitations()
        .list_invitations(authed(
            &app.alice.token,
            page(InvitationState::Pending, String::new()),
        ))
        .await
        .expect("pending")
        .into_inner();
    assert_eq!(pending.invitations.len(), 2);
    assert_eq!(
        pending
            .invitations
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        [ids[0].as_str(), ids[2].as_str()]
    );
    let rest = app
        .invitations()
        .list_invitations(authed(
            &app.alice.token,
            page(InvitationState::Pending, pending.next_page_token.clone()),
        ))
        .await
        .expect("pending page 2")
        .into_inner();
    assert_eq!(
        rest.invitations
            .iter()
            .map(|i| i.id.as_str())
            .collect::<Vec<_>>(),
        [ids[3].as_str(), ids[4].as_str()]
    );
    assert!(rest.next_page_token.is_empty());
    let revoked = app
        .invitations()
        .list_invitations(authed(
            &app.alice.token,
            page(InvitationState::Revoked, String::new()),
        ))
        .await
        .expect("revoked")
        .into_inner();
    assert_eq!(revoked.invitations.len(), 1);
    assert_eq!(revoked.invitations[0].id, ids[1]);

    // The token is bound to the state filter.
    let r = app
        .invitations()
        .list_invitations(authed(
            &app.alice.token,
            page(InvitationState::Revoked, pending.next_page_token),
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["page_token"]);
    let r = app
        .invitations()
        .list_invitations(authed(
            &app.alice.token,
            ListInvitationsRequest {
                state: 99,
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["state"]);
    let r = app
        .invitations()
        .list_invitations(authed(
            &app.alice.token,
            ListInvitationsRequest {
                page_size: -1,
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["page_size"]);

    // A viewer may read them.
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let listed = app
        .invitations()
        .list_invitations(authed(&viewer.token, ListInvitationsRequest::default()))
        .await
        .expect("viewer lists")
        .into_inner();
    assert_eq!(listed.invitations.len(), 5);
    get(&app, &viewer.token, &ids[0]).await;
}

#[tokio::test]
async fn another_orgs_invitation_is_not_found() {
    let app = TestApp::start().await;
    let alices = create(&app, &app.alice.token, "judy@example.com", Role::Viewer).await;
    let r = app
        .invitations()
        .resend_invitation(authed(
            &app.bob.token,
            ResendInvitationRequest {
                id: alices.id.clone(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "INVITATION_NOT_FOUND");
    let bobs = app
        .invitations()
        .list_invitations(authed(&app.bob.token, ListInvitationsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(bobs.invitations.is_empty());

    // Untouched by bob's attempts.
    let still = get(&app, &app.alice.token, &alices.id).await;
    assert_eq!(still.state, InvitationState::Pending as i32);
    assert_eq!(still.etag, "1");
    let r = app
        .invitations()
        .get_invitation(authed(
            &app.alice.token,
            GetInvitationRequest {
                id: Uuid::now_v7().to_string(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "INVITATION_NOT_FOUND");
}

#[tokio::test]
async fn malformed_invitation_ids_are_invalid_arguments_naming_the_field() {
    let app = TestApp::start().await;
    for id in ["", "nope", "0190b6a0000070008000000000000000"] {
        let r = app
            .invitations()
            .get_invitation(authed(
                &app.alice.token,
                GetInvitationRequest { id: id.into() },
            ))
            .await;
        let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&s), ["id"]);
        let r = app
            .invitations()
            .revoke_invitation(authed(
                &app.alice.token,
                RevokeInvitationRequest {
                    id: id.into(),
                    etag: String::new(),
                },
            ))
            .await;
        let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&s), ["id"]);
        let r = app
            .invitations()
            .resend_invitation(authed(
                &app.alice.token,
                ResendInvitationRequest { id: id.into() },
            ))
            .await;
        let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&s), ["id"]);
    }
}

#[tokio::test]
async fn an_existing_member_or_a_deleted_organization_cannot_be_joined() {
    let app = TestApp::start().await;
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let email: String = sqlx::query_scalar("SELECT email FROM identity.users WHERE id = $1")
        .bind(viewer.user_id)
        .fetch_one(&mut app.admin_db().await)
        .await
        .expect("email");
    let inv = create(&app, &app.alice.token, &email, Role::Admin).await;
    let viewer_user = app.token(viewer.user_id, None, None);
    let r = app
        .invitations()
        .accept_invitation(authed(&viewer_user, accept(&inv.token)))
        .await;
    assert_status(r, Code::AlreadyExists, "ALREADY_MEMBER");
    assert_eq!(
        get(&app, &app.alice.token, &inv.id).await.state,
        InvitationState::Pending as i32,
        "left pending"
    );

    let inv = create(&app, &app.alice.token, "kim@example.com", Role::Editor).await;
    app.orgs()
        .delete_organization(authed(
            &app.alice.token,
            DeleteOrganizationRequest {
                id: app.alice.org_id.to_string(),
                etag: String::new(),
            },
        ))
        .await
        .expect("delete org");
    let (kim, kim_token) = invitee(&app, "kim@example.com").await;
    let r = app
        .invitations()
        .accept_invitation(authed(&kim_token, accept(&inv.token)))
        .await;
    assert_status(r, Code::FailedPrecondition, "ORGANIZATION_DELETED");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM identity.memberships WHERE user_id = $1")
        .bind(kim)
        .fetch_one(&mut app.admin_db().await)
        .await
        .expect("count");
    assert_eq!(n, 0, "no membership in a deleted organization");

    // Undeleted, the still-pending invitation can be accepted.
    let owner_user = app.token(app.alice.user_id, None, None);
    app.orgs()
        .undelete_organization(authed(
            &owner_user,
            UndeleteOrganizationRequest {
                id: app.alice.org_id.to_string(),
            },
        ))
        .await
        .expect("undelete org");
    app.invitations()
        .accept_invitation(authed(&kim_token, accept(&inv.token)))
        .await
        .expect("accept after undelete");
}
