use foundry_testkit::identity::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test]
async fn an_owner_gets_their_organization() {
    let app = TestApp::start().await;
    let org = app
        .orgs()
        .get_organization(authed(
            &app.alice.token,
            GetOrganizationRequest {
                id: app.alice.org_id.to_string(),
            },
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(org.id, app.alice.org_id.to_string());
    assert!(org.slug.starts_with("alice-"));
    assert_eq!(org.etag, "1");
}

#[tokio::test]
async fn getting_another_organization_is_permission_denied() {
    let app = TestApp::start().await;
    let r = app
        .orgs()
        .get_organization(authed(
            &app.alice.token,
            GetOrganizationRequest {
                id: app.bob.org_id.to_string(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "WRONG_ORGANIZATION");
}

#[tokio::test]
async fn a_malformed_id_is_invalid_argument_naming_the_field() {
    let app = TestApp::start().await;
    let r = app
        .orgs()
        .get_organization(authed(
            &app.alice.token,
            GetOrganizationRequest {
                id: "not-a-uuid".into(),
            },
        ))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["id"]);
}

#[tokio::test]
async fn a_user_creates_an_organization_and_becomes_its_owner() {
    let app = TestApp::start().await;
    let user_token = app.token(app.alice.user_id, None, None);
    let org = app
        .orgs()
        .create_organization(authed(
            &user_token,
            CreateOrganizationRequest {
                organization: Some(Organization {
                    name: "Acme".into(),
                    slug: "acme".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .expect("create")
        .into_inner();
    assert_eq!(org.name, "Acme");
    let list = app
        .orgs()
        .list_organizations(authed(&user_token, ListOrganizationsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    let ids: Vec<_> = list.organizations.iter().map(|o| o.id.clone()).collect();
    assert_eq!(ids, [app.alice.org_id.to_string(), org.id.clone()]);

    // The creator is an owner: an exchange-free token for the new org works.
    let org_id = org.id.parse().expect("uuid");
    let t = app.token(
        app.alice.user_id,
        Some(org_id),
        Some(foundry_identity::domain::Role::Owner),
    );
    let members = app
        .members()
        .list_memberships(authed(&t, ListMembershipsRequest::default()))
        .await
        .expect("members")
        .into_inner();
    assert_eq!(members.memberships.len(), 1);
    assert_eq!(members.memberships[0].role, Role::Owner as i32);

    // The domain event billing reacts to, in the new organization's order.
    let mut db = app.admin_db().await;
    let facts: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT type, payload FROM identity.outbox WHERE kind = 'domain' AND org_id = $1 \
         ORDER BY seq",
    )
    .bind(org_id)
    .fetch_all(&mut db)
    .await
    .expect("outbox");
    assert_eq!(facts.len(), 2, "{facts:?}");
    assert_eq!(facts[0].0, "identity.organization.created");
    // And its owner's membership, for delivery's replica.
    assert_eq!(facts[1].0, "identity.membership.created");
    assert_eq!(facts[1].1["data"]["user_id"], app.alice.user_id.to_string());
    assert_eq!(facts[1].1["data"]["role"], "owner");
    assert_eq!(facts[0].1["subject_id"], org.id.as_str());
    assert_eq!(facts[0].1["data"]["slug"], "acme");
    assert_eq!(
        facts[0].1["data"]["owner_id"],
        app.alice.user_id.to_string()
    );
}

#[tokio::test]
async fn a_duplicate_slug_is_already_exists_and_bad_fields_are_all_reported() {
    let app = TestApp::start().await;
    let user_token = app.token(app.alice.user_id, None, None);
    let create = |name: &str, slug: &str| CreateOrganizationRequest {
        organization: Some(Organization {
            name: name.into(),
            slug: slug.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    app.orgs()
        .create_organization(authed(&user_token, create("One", "taken")))
        .await
        .expect("first");
    let r = app
        .orgs()
        .create_organization(authed(&user_token, create("Two", "taken")))
        .await;
    assert_status(r, Code::AlreadyExists, "SLUG_TAKEN");

    let r = app
        .orgs()
        .create_organization(authed(&user_token, create(&"x".repeat(201), "Bad Slug!")))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&s),
        ["organization.name", "organization.slug"]
    );
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_organization() {
    let app = TestApp::start().await;
    let user_token = app.token(app.alice.user_id, None, None);
    let rid = uuid::Uuid::now_v7().to_string();
    let req = || CreateOrganizationRequest {
        organization: Some(Organization {
            name: "Idem".into(),
            slug: "idem-org".into(),
            ..Default::default()
        }),
        request_id: rid.clone(),
    };
    let a = app
        .orgs()
        .create_organization(authed(&user_token, req()))
        .await
        .expect("first")
        .into_inner();
    let b = app
        .orgs()
        .create_organization(authed(&user_token, req()))
        .await
        .expect("repeat")
        .into_inner();
    assert_eq!(a, b);
    let mut db = app.admin_db().await;
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM identity.organizations WHERE slug = 'idem-org'")
            .fetch_one(&mut db)
            .await
            .expect("count");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn update_changes_only_masked_fields_and_needs_a_mask() {
    let app = TestApp::start().await;
    let id = app.alice.org_id.to_string();
    let update = |name: &str, etag: &str, paths: &[&str]| UpdateOrganizationRequest {
        organization: Some(Organization {
            id: id.clone(),
            name: name.into(),
            slug: "ignored-slug".into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: mask(paths),
    };
    let org = app
        .orgs()
        .update_organization(authed(&app.alice.token, update("Renamed", "1", &["name"])))
        .await
        .expect("update")
        .into_inner();
    assert_eq!(org.name, "Renamed");
    assert!(
        org.slug.starts_with("alice-"),
        "slug not in mask, unchanged"
    );
    assert_eq!(org.etag, "2");

    let r = app
        .orgs()
        .update_organization(authed(&app.alice.token, update("X", "", &["create_time"])))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["update_mask"]);

    let r = app
        .orgs()
        .update_organization(authed(&app.alice.token, update("X", "", &[])))
        .await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn updating_another_organization_is_permission_denied() {
    let app = TestApp::start().await;
    let r = app
        .orgs()
        .update_organization(authed(
            &app.alice.token,
            UpdateOrganizationRequest {
                organization: Some(Organization {
                    id: app.bob.org_id.to_string(),
                    name: "pwned".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "WRONG_ORGANIZATION");
}

#[tokio::test]
async fn a_viewer_cannot_update_or_delete_the_organization() {
    let app = TestApp::start().await;
    let viewer = app
        .new_member(&app.alice, foundry_identity::domain::Role::Viewer)
        .await;
    let r = app
        .orgs()
        .update_organization(authed(
            &viewer.token,
            UpdateOrganizationRequest {
                organization: Some(Organization {
                    id: app.alice.org_id.to_string(),
                    name: "x".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
    let admin = app
        .new_member(&app.alice, foundry_identity::domain::Role::Admin)
        .await;
    let r = app
        .orgs()
        .delete_organization(authed(
            &admin.token,
            DeleteOrganizationRequest {
                id: app.alice.org_id.to_string(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "MISSING_PERMISSION");
}

#[tokio::test]
async fn an_owner_soft_deletes_and_undeletes_the_organization() {
    let app = TestApp::start().await;
    let id = app.alice.org_id.to_string();
    let deleted = app
        .orgs()
        .delete_organization(authed(
            &app.alice.token,
            DeleteOrganizationRequest {
                id: id.clone(),
                etag: "1".into(),
            },
        ))
        .await
        .expect("delete")
        .into_inner();
    assert!(deleted.delete_time.is_some());
    let r = app
        .orgs()
        .delete_organization(authed(
            &app.alice.token,
            DeleteOrganizationRequest {
                id: id.clone(),
                etag: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, "ORGANIZATION_DELETED");

    // Bob is no owner of Alice's org: the same answer as a missing org.
    let bob_user = app.token(app.bob.user_id, None, None);
    let r = app
        .orgs()
        .undelete_organization(authed(
            &bob_user,
            UndeleteOrganizationRequest { id: id.clone() },
        ))
        .await;
    assert_status(r, Code::NotFound, "ORGANIZATION_NOT_FOUND");

    let alice_user = app.token(app.alice.user_id, None, None);
    let restored = app
        .orgs()
        .undelete_organization(authed(&alice_user, UndeleteOrganizationRequest { id }))
        .await
        .expect("undelete")
        .into_inner();
    assert!(restored.delete_time.is_none());
}

#[tokio::test]
async fn list_organizations_pages_with_a_tamper_checked_token() {
    let app = TestApp::start().await;
    let user_token = app.token(app.alice.user_id, None, None);
    for i in 0..4 {
        app.orgs()
            .create_organization(authed(
                &user_token,
                CreateOrganizationRequest {
                    organization: Some(Organization {
                        name: format!("Org {i}"),
                        slug: format!("page-org-{i}"),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .expect("create");
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .orgs()
            .list_organizations(authed(
                &user_token,
                ListOrganizationsRequest {
                    page_size: 2,
                    page_token: token.clone(),
                },
            ))
            .await
            .expect("page")
            .into_inner();
        assert!(page.organizations.len() <= 2);
        seen.extend(page.organizations.into_iter().map(|o| o.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "oldest first, no duplicates");

    let r = app
        .orgs()
        .list_organizations(authed(
            &user_token,
            ListOrganizationsRequest {
                page_size: 2,
                page_token: "AAAA".into(),
            },
        ))
        .await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    let r = app
        .orgs()
        .list_organizations(authed(
            &user_token,
            ListOrganizationsRequest {
                page_size: -1,
                page_token: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn an_api_key_cannot_call_user_scoped_methods() {
    let app = TestApp::start().await;
    // An org-acting owner token is a user token: allowed. A key is not.
    let key = app
        .api_keys()
        .create_api_key(authed(
            &app.alice.token,
            CreateApiKeyRequest {
                api_key: Some(ApiKey {
                    kind: ApiKeyKind::ApiKey as i32,
                    display_name: "ci".into(),
                    scopes: vec!["*".into()],
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .expect("key")
        .into_inner();
    let access = app
        .auth()
        .exchange_token(ExchangeTokenRequest {
            grant: Some(exchange_token_request::Grant::ApiKey(key.secret)),
            org_id: String::new(),
        })
        .await
        .expect("exchange")
        .into_inner()
        .access_token;
    let r = app
        .orgs()
        .list_organizations(authed(&access, ListOrganizationsRequest::default()))
        .await;
    assert_status(r, Code::PermissionDenied, "USER_REQUIRED");
}
