use foundry_identity::domain::Role as R;
use foundry_testkit::identity::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use uuid::Uuid;

fn get(id: &str) -> GetUserRequest {
    GetUserRequest { id: id.into() }
}

fn update(user: User, paths: &[&str]) -> UpdateUserRequest {
    UpdateUserRequest {
        user: Some(user),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    }
}

fn me(display_name: &str, avatar_url: &str) -> User {
    User {
        id: "me".into(),
        display_name: display_name.into(),
        avatar_url: avatar_url.into(),
        ..Default::default()
    }
}

/// Links an external account to a user, as a sign-in would; returns its id.
async fn link(app: &TestApp, user: Uuid, subject: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO identity.linked_accounts (id, user_id, provider, issuer, subject, email) \
         VALUES ($1, $2, 'clerk', 'https://idp.example.com', $3, $4)",
    )
    .bind(id)
    .bind(user)
    .bind(subject)
    .bind(format!("{subject}@example.com"))
    .execute(&mut app.admin_db().await)
    .await
    .expect("link");
    id
}

#[tokio::test]
async fn a_user_gets_themselves_and_the_members_of_their_organization() {
    let app = TestApp::start().await;
    let mine = app
        .users()
        .get_user(authed(&app.alice.token, get("me")))
        .await
        .expect("me")
        .into_inner();
    assert_eq!(mine.id, app.alice.user_id.to_string());
    assert!(mine.email.starts_with("alice-") && mine.email.ends_with("@example.com"));
    assert_eq!(mine.display_name, "alice");
    assert_eq!(mine.etag, "1");
    let by_id = app
        .users()
        .get_user(authed(&app.alice.token, get(&mine.id)))
        .await
        .expect("by id")
        .into_inner();
    assert_eq!(by_id, mine);

    let viewer = app.new_member(&app.alice, R::Viewer).await;
    let seen = app
        .users()
        .get_user(authed(&app.alice.token, get(&viewer.user_id.to_string())))
        .await
        .expect("a member")
        .into_inner();
    assert_eq!(seen.id, viewer.user_id.to_string());
    // And the other way round: a viewer sees the owner.
    app.users()
        .get_user(authed(&viewer.token, get(&app.alice.user_id.to_string())))
        .await
        .expect("the owner");

    // Another organization's user is not found, as is an unknown id.
    for id in [app.bob.user_id, Uuid::now_v7()] {
        let r = app
            .users()
            .get_user(authed(&app.alice.token, get(&id.to_string())))
            .await;
        assert_status(r, Code::NotFound, "USER_NOT_FOUND");
    }
    let r = app
        .users()
        .get_user(authed(&app.bob.token, get(&viewer.user_id.to_string())))
        .await;
    assert_status(r, Code::NotFound, "USER_NOT_FOUND");

    // Acting in no organization, only yourself.
    let user_only = app.token(app.alice.user_id, None, None);
    app.users()
        .get_user(authed(&user_only, get("me")))
        .await
        .expect("me without an org");
    let r = app
        .users()
        .get_user(authed(&user_only, get(&viewer.user_id.to_string())))
        .await;
    assert_status(r, Code::NotFound, "USER_NOT_FOUND");
}

#[tokio::test]
async fn get_user_refuses_malformed_ids_and_non_users() {
    let app = TestApp::start().await;
    for id in ["", "nope", "ME"] {
        let r = app
            .users()
            .get_user(authed(&app.alice.token, get(id)))
            .await;
        let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&s), ["id"]);
    }
    let svc = app.service_token().await;
    let r = app.users().get_user(authed(&svc, get("me"))).await;
    assert_status(r, Code::PermissionDenied, "USER_REQUIRED");
    let r = app.users().get_user(get("me")).await;
    assert_status(r, Code::Unauthenticated, "TOKEN_MISSING");
}

#[tokio::test]
async fn a_user_updates_their_profile_under_an_update_mask() {
    let app = TestApp::start().await;
    let renamed = app
        .users()
        .update_user(authed(
            &app.alice.token,
            update(
                me("  Alice Liddell  ", "https://ignored.example.com/a.png"),
                &["display_name"],
            ),
        ))
        .await
        .expect("rename")
        .into_inner();
    assert_eq!(renamed.display_name, "Alice Liddell", "trimmed");
    assert_eq!(renamed.avatar_url, "", "not in the mask");
    assert_eq!(renamed.etag, "2");

    let mut u = me("ignored", "https://cdn.example.com/alice.png");
    u.id = app.alice.user_id.to_string();
    u.etag = renamed.etag.clone();
    let pictured = app
        .users()
        .update_user(authed(&app.alice.token, update(u, &["avatar_url"])))
        .await
        .expect("avatar")
        .into_inner();
    assert_eq!(pictured.display_name, "Alice Liddell");
    assert_eq!(pictured.avatar_url, "https://cdn.example.com/alice.png");
    assert_eq!(pictured.etag, "3");

    // A stale etag is refused; nothing changes.
    let mut stale = me("Someone Else", "");
    stale.etag = renamed.etag.clone();
    let r = app
        .users()
        .update_user(authed(&app.alice.token, update(stale, &["*"])))
        .await;
    assert_status(r, Code::Aborted, "ETAG_MISMATCH");

    // `*` updates both; an empty avatar clears it.
    let mut both = me("Alice", "");
    both.etag = pictured.etag;
    let cleared = app
        .users()
        .update_user(authed(&app.alice.token, update(both, &["*"])))
        .await
        .expect("both")
        .into_inner();
    assert_eq!(
        (cleared.display_name.as_str(), cleared.avatar_url.as_str()),
        ("Alice", "")
    );
    let got = app
        .users()
        .get_user(authed(&app.alice.token, get("me")))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got, cleared);
    // The email is the identity provider's: never changed here.
    assert!(got.email.starts_with("alice-"));
}

#[tokio::test]
async fn profile_updates_are_validated() {
    let app = TestApp::start().await;
    let cases: Vec<(UpdateUserRequest, &[&str])> = vec![
        (
            update(me("Alice", "http://cdn.example.com/a.png"), &["avatar_url"]),
            &["user.avatar_url"],
        ),
        (
            update(
                me("", "javascript:alert(1)"),
                &["display_name", "avatar_url"],
            ),
            &["user.display_name", "user.avatar_url"],
        ),
        (
            update(me(&"x".repeat(201), ""), &["display_name"]),
            &["user.display_name"],
        ),
        (
            update(
                me(
                    "Alice",
                    &format!("https://a.example.com/{}", "x".repeat(2048)),
                ),
                &["avatar_url"],
            ),
            &["user.avatar_url"],
        ),
        (update(me("Alice", ""), &["nickname"]), &["update_mask"]),
        (update(me("Alice", ""), &["email"]), &["update_mask"]),
        (update(me("Alice", ""), &[]), &["update_mask"]),
        (
            UpdateUserRequest {
                user: Some(me("Alice", "")),
                update_mask: None,
            },
            &["update_mask"],
        ),
    ];
    for (req, fields) in cases {
        let r = app
            .users()
            .update_user(authed(&app.alice.token, req.clone()))
            .await;
        let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&s), fields, "{req:?}");
    }
    let mut bad_id = me("Alice", "");
    bad_id.id = "nope".into();
    let r = app
        .users()
        .update_user(authed(&app.alice.token, update(bad_id, &["display_name"])))
        .await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["user.id"]);

    let got = app
        .users()
        .get_user(authed(&app.alice.token, get("me")))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.etag, "1", "nothing was written");
}

#[tokio::test]
async fn nobody_updates_someone_elses_profile() {
    let app = TestApp::start().await;
    let viewer = app.new_member(&app.alice, R::Viewer).await;
    for target in [app.bob.user_id, viewer.user_id] {
        let mut u = me("Hijacked", "");
        u.id = target.to_string();
        let r = app
            .users()
            .update_user(authed(&app.alice.token, update(u, &["display_name"])))
            .await;
        assert_status(r, Code::NotFound, "USER_NOT_FOUND");
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT display_name FROM identity.users WHERE id = ANY($1)")
            .bind(vec![app.bob.user_id, viewer.user_id])
            .fetch_all(&mut app.admin_db().await)
            .await
            .expect("names");
    assert!(!names.iter().any(|n| n == "Hijacked"));
    let svc = app.service_token().await;
    let r = app
        .users()
        .update_user(authed(&svc, update(me("Bot", ""), &["display_name"])))
        .await;
    assert_status(r, Code::PermissionDenied, "USER_REQUIRED");
}

#[tokio::test]
async fn linked_accounts_are_listed_and_unlinked_but_never_the_last() {
    let app = TestApp::start().await;
    let first = link(&app, app.alice.user_id, "alice-google").await;
    let second = link(&app, app.alice.user_id, "alice-github").await;
    let bobs = link(&app, app.bob.user_id, "bob-google").await;

    let list = |token: String, user_id: &'static str| {
        let app = &app;
        async move {
            app.users()
                .list_linked_accounts(authed(
                    &token,
                    ListLinkedAccountsRequest {
                        user_id: user_id.into(),
                    },
                ))
                .await
        }
    };
    let mine = list(app.alice.token.clone(), "me")
        .await
        .expect("list")
        .into_inner()
        .linked_accounts;
    assert_eq!(
        mine.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        [first.to_string(), second.to_string()],
        "oldest first, only mine"
    );
    assert_eq!(mine[0].provider, "clerk");
    assert_eq!(mine[0].issuer, "https://idp.example.com");
    assert_eq!(mine[0].subject, "alice-google");
    assert_eq!(mine[0].email, "alice-google@example.com");
    assert!(mine[0].create_time.is_some() && mine[0].last_login_time.is_some());
    // By one's own id, too; anyone else's is not found.
    let by_id = app
        .users()
        .list_linked_accounts(authed(
            &app.alice.token,
            ListLinkedAccountsRequest {
                user_id: app.alice.user_id.to_string(),
            },
        ))
        .await
        .expect("by id")
        .into_inner();
    assert_eq!(by_id.linked_accounts.len(), 2);
    let r = app
        .users()
        .list_linked_accounts(authed(
            &app.alice.token,
            ListLinkedAccountsRequest {
                user_id: app.bob.user_id.to_string(),
            },
        ))
        .await;
    assert_status(r, Code::NotFound, "USER_NOT_FOUND");
    let r = list(app.alice.token.clone(), "nope").await;
    let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["user_id"]);

    let delete = |user_id: String, id: String| DeleteLinkedAccountRequest { user_id, id };
    // Another user's account is not found, under my id or theirs.
    let r = app
        .users()
        .delete_linked_account(authed(
            &app.alice.token,
            delete("me".into(), bobs.to_string()),
        ))
        .await;
    assert_status(r, Code::NotFound, "LINKED_ACCOUNT_NOT_FOUND");
    let r = app
        .users()
        .delete_linked_account(authed(
            &app.alice.token,
            delete(app.bob.user_id.to_string(), bobs.to_string()),
        ))
        .await;
    assert_status(r, Code::NotFound, "USER_NOT_FOUND");
    let r = app
        .users()
        .delete_linked_account(authed(
            &app.alice.token,
            delete("me".into(), Uuid::now_v7().to_string()),
        ))
        .await;
    assert_status(r, Code::NotFound, "LINKED_ACCOUNT_NOT_FOUND");
    for id in ["", "nope"] {
        let r = app
            .users()
            .delete_linked_account(authed(&app.alice.token, delete("me".into(), id.into())))
            .await;
        let s = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&s), ["id"]);
    }

    app.users()
        .delete_linked_account(authed(
            &app.alice.token,
            delete("me".into(), first.to_string()),
        ))
        .await
        .expect("unlink");
    let left = list(app.alice.token.clone(), "me")
        .await
        .expect("list")
        .into_inner()
        .linked_accounts;
    assert_eq!(
        left.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        [second.to_string()]
    );
    let r = app
        .users()
        .delete_linked_account(authed(
            &app.alice.token,
            delete("me".into(), second.to_string()),
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, "LAST_LINKED_ACCOUNT");

    let remaining: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM identity.linked_accounts ORDER BY id")
            .fetch_all(&mut app.admin_db().await)
            .await
            .expect("rows");
    assert_eq!(remaining, [second, bobs]);
}
