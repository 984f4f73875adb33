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
        .delete_membership(authed(
            &app.alice.token,
            DeleteMembershipRequest {
                id: bobs.id,
                etag: String::new(),
            },
        ))
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
        .delete_membership(authed(
            &app.alice.token,
            DeleteMembershipRequest {
                id: me.id.clone(),
                etag: String::new(),
            },
        ))
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
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM identity.memberships WHERE org_id = $1 AND role = 'owner'",
    )
    .bind(app.alice.org_id)
    .fetch_one(&mut app.admin_db().await)
    .await
    .expect("count");
    assert_eq!(n, 1);
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
