use foundry_identity::domain::Role as R;
use foundry_testkit::identity::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

fn role_update(id: &str, role: Role) -> UpdateMembershipRequest {
    UpdateMembershipRequest {
        membership: Some(Membership {
            id: id.into(),
            role: role as i32,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["role".into()],
        }),
    }
}

/// A removal of the membership `id`, at any etag.
fn removal(id: impl Into<String>) -> DeleteMembershipRequest {
    DeleteMembershipRequest {
        id: id.into(),
        etag: String::new(),
    }
}

async fn membership_of(app: &TestApp, token: &str, user: uuid::Uuid) -> Membership {
    app.members()
        .list_memberships(authed(token, ListMembershipsRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .memberships
        .into_iter()
        .find(|m| m.user_id == user.to_string())
        .expect("member")
}

/// `sql`'s count (a `count(*)` with `$1` for the organization).
async fn count_in(app: &TestApp, sql: &str, org_id: uuid::Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(org_id)
        .fetch_one(&mut app.admin_db().await)
        .await
        .expect("count")
}

/// How many owners `org_id` has.
async fn owners(app: &TestApp, org_id: uuid::Uuid) -> i64 {
    let sql = "SELECT count(*) FROM identity.memberships WHERE org_id = $1 AND role = 'owner'";
    count_in(app, sql, org_id).await
}

#[tokio::test]
async fn members_are_listed_filtered_by_role_and_paged() {
    let app = TestApp::start().await;
    for _ in 0..3 {
        app.new_member(&app.alice, R::Viewer).await;
    }
    app.new_member(&app.alice, R::Editor).await;
    let viewers = app
        .members()
        .list_memberships(authed(
            &app.alice.token,
            ListMembershipsRequest {
                role: Role::Viewer as i32,
                page_size: 2,
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(viewers.memberships.len(), 2);
    assert!(
        viewers
            .memberships
            .iter()
            .all(|m| m.role == Role::Viewer as i32)
    );
    let rest = app
        .members()
        .list_memberships(authed(
            &app.alice.token,
            ListMembershipsRequest {
                role: Role::Viewer as i32,
                page_size: 2,
                page_token: viewers.next_page_token.clone(),
            },
        ))
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(rest.memberships.len(), 1);
    assert!(rest.next_page_token.is_empty());

    // The token is bound to the role filter.
    let r = app
        .members()
        .list_memberships(authed(
            &app.alice.token,
            ListMembershipsRequest {
                role: Role::Editor as i32,
                page_size: 2,
                page_token: viewers.next_page_token,
            },
        ))
        .await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");

    let r = app
        .members()
        .list_memberships(authed(
            &app.alice.token,
            ListMembershipsRequest {
                role: 99,
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["role"]);
}

#[tokio::test]
async fn another_orgs_membership_is_not_found() {
    let app = TestApp::start().await;
    let bobs = membership_of(&app, &app.bob.token, app.bob.user_id).await;
    let r = app
        .members()
        .get_membership(authed(
            &app.alice.token,
            GetMembershipRequest {
                id: bobs.id.clone(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "MEMBERSHIP_NOT_FOUND");
    let r = app
        .members()
        .update_membership(authed(
            &app.alice.token,
            role_update(&bobs.id, Role::Viewer),
        ))
        .await;
    assert_status(r, Code::NotFound, "MEMBERSHIP_NOT_FOUND");
    let r = app
        .members()
        .delete_membership(authed(&app.alice.token, removal(bobs.id)))
        .await;
    assert_status(r, Code::NotFound, "MEMBERSHIP_NOT_FOUND");
}

#[tokio::test]
async fn an_admin_changes_roles_but_not_the_owner_role() {
    let app = TestApp::start().await;
    let admin = app.new_member(&app.alice, R::Admin).await;
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let m = membership_of(&app, &admin.token, viewer.user_id).await;
    let updated = app
        .members()
        .update_membership(authed(&admin.token, role_update(&m.id, Role::Editor)))
        .await
        .expect("update")
        .into_inner();
    assert_eq!(updated.role, Role::Editor as i32);
    assert_eq!(updated.etag, "2");
    let r = app
        .members()
        .update_membership(authed(&admin.token, role_update(&m.id, Role::Owner)))
        .await;
    assert_status(r, Code::PermissionDenied, "OWNER_REQUIRED");
    let r = app
        .members()
        .update_membership(authed(&admin.token, role_update(&m.id, Role::Unspecified)))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["membership.role"]);
    let r = app
        .members()
        .update_membership(authed(&viewer.token, role_update(&m.id, Role::Admin)))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
}

#[tokio::test]
async fn the_last_owner_cannot_be_demoted_removed_or_leave() {
    let app = TestApp::start().await;
    let me = membership_of(&app, &app.alice.token, app.alice.user_id).await;
    let r = app
        .members()
        .update_membership(authed(&app.alice.token, role_update(&me.id, Role::Admin)))
        .await;
    assert_status(r, Code::FailedPrecondition, "LAST_OWNER");
    let r = app
        .members()
        .delete_membership(authed(&app.alice.token, removal(me.id.clone())))
        .await;
    assert_status(r, Code::FailedPrecondition, "LAST_OWNER");
    let r = app
        .members()
        .leave_organization(authed(
            &app.alice.token,
            LeaveOrganizationRequest {
                org_id: app.alice.org_id.to_string(),
            },
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, "LAST_OWNER");

    // With a second owner, the first may step down.
    let second = app.new_member(&app.alice, R::Owner).await;
    app.members()
        .update_membership(authed(&second.token, role_update(&me.id, Role::Admin)))
        .await
        .expect("demote");
    assert_eq!(owners(&app, app.alice.org_id).await, 1);
}

#[tokio::test]
async fn a_member_leaves_and_removal_honours_etags() {
    let app = TestApp::start().await;
    let editor = app.new_member(&app.alice, R::Editor).await;
    app.members()
        .leave_organization(authed(
            &editor.token,
            LeaveOrganizationRequest {
                org_id: app.alice.org_id.to_string(),
            },
        ))
        .await
        .expect("leave");
    let r = app
        .members()
        .leave_organization(authed(
            &app.alice.token,
            LeaveOrganizationRequest {
                org_id: app.bob.org_id.to_string(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "WRONG_ORGANIZATION");

    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let m = membership_of(&app, &app.alice.token, viewer.user_id).await;
    let r = app
        .members()
        .delete_membership(authed(
            &app.alice.token,
            DeleteMembershipRequest {
                id: m.id.clone(),
                etag: "7".into(),
            },
        ))
        .await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");
    app.members()
        .delete_membership(authed(
            &app.alice.token,
            DeleteMembershipRequest {
                id: m.id.clone(),
                etag: m.etag,
            },
        ))
        .await
        .expect("delete");
    let r = app
        .members()
        .get_membership(authed(&app.alice.token, GetMembershipRequest { id: m.id }))
        .await;
    assert_status(r, Code::NotFound, "MEMBERSHIP_NOT_FOUND");
}

/// Changes the role of `member` to `role`, as `by`.
async fn set_role(app: &TestApp, by: &str, member: uuid::Uuid, role: Role) {
    let m = membership_of(app, by, member).await;
    app.members()
        .update_membership(authed(by, role_update(&m.id, role)))
        .await
        .expect("role change");
}

/// Issue 13, finding 8: an owner-/admin-only change decides on the
/// caller's membership as it is now, re-read (and held) in the change's
/// transaction, not on the role its token was minted with. A demoted or
/// removed member's older token, still unexpired, is refused.
#[tokio::test]
async fn owner_only_changes_trust_the_role_in_the_token() {
    let app = TestApp::start().await;
    let org = app.alice.org_id.to_string();
    // Carol was an owner; Alice made her an admin. Her older owner token
    // still says owner.
    let carol = app.new_member(&app.alice, R::Owner).await;
    set_role(&app, &app.alice.token, carol.user_id, Role::Admin).await;
    let hers = membership_of(&app, &app.alice.token, carol.user_id).await;
    let r = app
        .members()
        .update_membership(authed(&carol.token, role_update(&hers.id, Role::Owner)))
        .await;
    assert_status(r, Code::PermissionDenied, "OWNER_REQUIRED");
    let alices = membership_of(&app, &app.alice.token, app.alice.user_id).await;
    let r = app
        .members()
        .delete_membership(authed(&carol.token, removal(alices.id.clone())))
        .await;
    assert_status(r, Code::PermissionDenied, "OWNER_REQUIRED");
    let r = app
        .invitations()
        .create_invitation(authed(
            &carol.token,
            CreateInvitationRequest {
                invitation: Some(Invitation {
                    email: "accomplice@example.com".into(),
                    role: Role::Owner as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "OWNER_REQUIRED");
    let r = app
        .orgs()
        .delete_organization(authed(
            &carol.token,
            DeleteOrganizationRequest {
                id: org.clone(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    // An API key is held to what her role grants now, not to her token's `*`.
    let r = app
        .api_keys()
        .create_api_key(authed(
            &carol.token,
            CreateApiKeyRequest {
                api_key: Some(ApiKey {
                    kind: ApiKeyKind::ApiKey as i32,
                    display_name: "backdoor".into(),
                    scopes: vec!["*".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["api_key.scopes[0]"]);

    // Dave was an owner and is a viewer now: nothing an admin may do.
    let dave = app.new_member(&app.alice, R::Owner).await;
    set_role(&app, &app.alice.token, dave.user_id, Role::Viewer).await;
    let r = app
        .orgs()
        .update_organization(authed(
            &dave.token,
            UpdateOrganizationRequest {
                organization: Some(Organization {
                    id: org.clone(),
                    name: "Dave's now".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["name".into()],
                }),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let daves = membership_of(&app, &app.alice.token, dave.user_id).await;
    let r = app
        .members()
        .update_membership(authed(&dave.token, role_update(&daves.id, Role::Owner)))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");

    // Erin was an admin and was removed: no membership, no say.
    let erin = app.new_member(&app.alice, R::Admin).await;
    let erins = membership_of(&app, &app.alice.token, erin.user_id).await;
    app.members()
        .delete_membership(authed(&app.alice.token, removal(erins.id)))
        .await
        .expect("remove erin");
    let r = app
        .members()
        .update_membership(authed(&erin.token, role_update(&daves.id, Role::Admin)))
        .await;
    assert_status(r, Code::PermissionDenied, "NOT_A_MEMBER");

    // Nothing moved: the roles are as Alice left them, no key was made,
    // the organization stands.
    let roles: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT user_id, role FROM identity.memberships WHERE org_id = $1 ORDER BY id",
    )
    .bind(app.alice.org_id)
    .fetch_all(&mut app.admin_db().await)
    .await
    .expect("roles");
    assert_eq!(
        roles,
        [
            (app.alice.user_id, "owner".to_owned()),
            (carol.user_id, "admin".to_owned()),
            (dave.user_id, "viewer".to_owned()),
        ]
    );
    let keys = "SELECT count(*) FROM identity.api_keys WHERE org_id = $1";
    assert_eq!(count_in(&app, keys, app.alice.org_id).await, 0);
}

/// Finding 8's locks: the caller's membership is held while its change is
/// made, after the owner rows. Two owners demoting each other at once queue
/// (no deadlock, never `ABORTED` or `INTERNAL`): the first wins, and the
/// second is no owner any more when its turn comes.
#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_exactly_one() {
    let app = TestApp::start().await;
    for _ in 0..4 {
        let org = app.new_org("duel").await;
        let other = app.new_member(&org, R::Owner).await;
        let mine = membership_of(&app, &org.token, org.user_id).await;
        let theirs = membership_of(&app, &org.token, other.user_id).await;
        let demote = |token: String, id: String| {
            let mut members = app.members();
            tokio::spawn(async move {
                members
                    .update_membership(authed(&token, role_update(&id, Role::Admin)))
                    .await
            })
        };
        let a = demote(org.token.clone(), theirs.id.clone());
        let b = demote(other.token.clone(), mine.id.clone());
        let results = [a.await.expect("join"), b.await.expect("join")];
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{results:?}");
        for r in results.into_iter().filter(Result::is_err) {
            assert_status(r, Code::PermissionDenied, "OWNER_REQUIRED");
        }
        assert_eq!(owners(&app, org.org_id).await, 1);
    }
}
