//! Credentials bound to a project: what they see in every service, and
//! what a credential they mint inherits.

use chrono::{DateTime, TimeDelta, Utc};
use foundry_platform::convert::timestamp;
use foundry_testkit::identity::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use foundry_testkit::{audit, delivery};
use uuid::Uuid;

/// A program of alice's organization.
async fn program(app: &TestApp, slug: &str) -> delivery::Program {
    app.programs()
        .create_program(authed(
            &app.alice.token,
            delivery::CreateProgramRequest {
                program: Some(delivery::Program {
                    name: format!("Program {slug}"),
                    slug: slug.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .expect("program")
        .into_inner()
}

/// An event of identity's in `org`, in `project` (empty: none), now.
fn event(org: Uuid, project: &str) -> audit::AuditEvent {
    let id = Uuid::now_v7();
    let (secs, nanos) = id.get_timestamp().expect("v7").to_unix();
    let at = DateTime::from_timestamp(secs as i64, nanos).expect("time");
    audit::AuditEvent {
        id: id.to_string(),
        org_id: org.to_string(),
        occur_time: Some(timestamp(at)),
        actor_type: audit::ActorType::User as i32,
        actor_id: Uuid::now_v7().to_string(),
        action: "identity.api_key.update".into(),
        resource_type: "identity.api_key".into(),
        resource_id: Uuid::now_v7().to_string(),
        project_id: project.into(),
        request_id: Uuid::now_v7().to_string(),
        service: "identity".into(),
        ..Default::default()
    }
}

/// Appends an event in each of `projects` (empty: none) to alice's
/// organization; returns their ids, in order.
async fn events_in(app: &TestApp, projects: &[&str]) -> Vec<String> {
    let svc = app.service_token().await;
    let events: Vec<_> = projects
        .iter()
        .map(|p| event(app.alice.org_id, p))
        .collect();
    let ids = events.iter().map(|e| e.id.clone()).collect();
    app.audit_ingest()
        .append_audit_events(authed(
            &svc,
            audit::AppendAuditEventsRequest {
                audit_events: events,
            },
        ))
        .await
        .expect("append");
    ids
}

/// A key of alice's, bound to `project`, granting `scopes`, expiring at
/// `expire` if any.
fn bound_key(project: &str, scopes: &[&str], expire: Option<DateTime<Utc>>) -> ApiKey {
    ApiKey {
        kind: ApiKeyKind::ApiKey as i32,
        display_name: "bound".into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        project_id: project.into(),
        expire_time: expire.map(timestamp),
        ..Default::default()
    }
}

/// A key as its creator asks for it: `scopes`, and nothing else.
fn asked(scopes: &[&str]) -> CreateApiKeyRequest {
    CreateApiKeyRequest {
        api_key: Some(ApiKey {
            kind: ApiKeyKind::ApiKey as i32,
            display_name: "minted".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

/// Its whole seconds.
fn secs(t: &Option<prost_types::Timestamp>) -> Option<i64> {
    t.as_ref().map(|t| t.seconds)
}

/// Issue 15, finding 1: project-bound credentials were confined only in
/// delivery. A key bound to program P read other programs' activity, the
/// whole organization's audit log and the members' emails, and minted a
/// new organization-wide key with no expiry. Now the binding holds in
/// every service, and a key minted by a bound, expiring key is bound to
/// its project and expires with it.
#[tokio::test]
async fn project_bound_credentials_are_confined_only_in_delivery() {
    let app = TestApp::start().await;
    let (mine, other) = (program(&app, "mine").await, program(&app, "other").await);
    let ids = events_in(&app, &[&mine.id, &other.id, ""]).await;
    let expire = Utc::now() + TimeDelta::hours(1);
    let scopes = ["*.*.read", "identity.api_keys.write"];
    let (parent, token) = app
        .key_and_token(&app.alice.token, bound_key(&mine.id, &scopes, Some(expire)))
        .await;

    // Other programs' activity.
    let r = app
        .audit()
        .list_activity(authed(
            &token,
            audit::ListActivityRequest {
                project_id: other.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");

    // The organization's audit log: only the program's events.
    let listed = app
        .audit()
        .list_audit_events(authed(&token, audit::ListAuditEventsRequest::default()))
        .await
        .expect("its program's events")
        .into_inner();
    let seen: Vec<&str> = listed.audit_events.iter().map(|e| e.id.as_str()).collect();
    assert!(seen.contains(&ids[0].as_str()), "{seen:?}");
    assert!(
        listed.audit_events.iter().all(|e| e.project_id == mine.id),
        "{:?}",
        listed.audit_events
    );

    // The members' emails.
    let r = app
        .members()
        .list_memberships(authed(&token, ListMembershipsRequest::default()))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");

    // A key it mints is bound to its program and expires with it.
    let minted = app
        .api_keys()
        .create_api_key(authed(&token, asked(&["delivery.*.read"])))
        .await
        .expect("a narrower key")
        .into_inner();
    assert_eq!(minted.project_id, mine.id);
    assert_eq!(secs(&minted.expire_time), secs(&parent.expire_time));
}

#[tokio::test]
async fn a_project_bound_key_cannot_list_the_members_emails_or_manage_the_organization() {
    let app = TestApp::start().await;
    let mine = program(&app, "mine").await;
    let (_, token) = app
        .key_and_token(
            &app.alice.token,
            bound_key(&mine.id, &["identity.*.*"], None),
        )
        .await;
    let r = app
        .members()
        .list_memberships(authed(&token, ListMembershipsRequest::default()))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");
    let r = app
        .invitations()
        .list_invitations(authed(&token, ListInvitationsRequest::default()))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");
    let r = app
        .invitations()
        .create_invitation(authed(
            &token,
            CreateInvitationRequest {
                invitation: Some(Invitation {
                    email: "mallory@example.com".into(),
                    role: Role::Owner as i32,
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");
    let r = app
        .orgs()
        .get_organization(authed(
            &token,
            GetOrganizationRequest {
                id: app.alice.org_id.to_string(),
            },
        ))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");
}

#[tokio::test]
async fn a_project_bound_key_sees_only_its_projects_keys() {
    let app = TestApp::start().await;
    let (mine, other) = (program(&app, "mine").await, program(&app, "other").await);
    let scopes = ["identity.api_keys.*"];
    let (own, token) = app
        .key_and_token(&app.alice.token, bound_key(&mine.id, &scopes, None))
        .await;
    let (elsewhere, _) = app
        .key_and_token(&app.alice.token, bound_key(&other.id, &scopes, None))
        .await;
    let (org_wide, _) = app
        .key_and_token(&app.alice.token, bound_key("", &scopes, None))
        .await;
    let listed = app
        .api_keys()
        .list_api_keys(authed(&token, ListApiKeysRequest::default()))
        .await
        .expect("list")
        .into_inner();
    let ids: Vec<&str> = listed.api_keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, [own.id.as_str()]);
    for k in [&elsewhere, &org_wide] {
        let r = app
            .api_keys()
            .get_api_key(authed(&token, GetApiKeyRequest { id: k.id.clone() }))
            .await;
        assert_status(r, Code::NotFound, "API_KEY_NOT_FOUND");
        let r = app
            .api_keys()
            .revoke_api_key(authed(
                &token,
                RevokeApiKeyRequest {
                    id: k.id.clone(),
                    etag: String::new(),
                },
            ))
            .await;
        assert_status(r, Code::NotFound, "API_KEY_NOT_FOUND");
    }
}

#[tokio::test]
async fn a_key_minted_by_a_bound_key_inherits_its_project_scopes_and_expiry() {
    let app = TestApp::start().await;
    let (mine, other) = (program(&app, "mine").await, program(&app, "other").await);
    let expire = Utc::now() + TimeDelta::hours(1);
    let scopes = ["delivery.*.read", "identity.api_keys.write"];
    let (parent, token) = app
        .key_and_token(&app.alice.token, bound_key(&mine.id, &scopes, Some(expire)))
        .await;

    // Unset: the parent's project and expiry.
    let minted = app
        .api_keys()
        .create_api_key(authed(&token, asked(&["delivery.tasks.read"])))
        .await
        .expect("inherits")
        .into_inner();
    assert_eq!(minted.project_id, mine.id);
    assert_eq!(secs(&minted.expire_time), secs(&parent.expire_time));

    // Narrower: kept.
    let sooner = Utc::now() + TimeDelta::minutes(10);
    let mut req = asked(&["delivery.tasks.read"]);
    let k = req.api_key.as_mut().expect("key");
    k.project_id = mine.id.clone();
    k.expire_time = Some(timestamp(sooner));
    let minted = app
        .api_keys()
        .create_api_key(authed(&token, req))
        .await
        .expect("narrower")
        .into_inner();
    assert_eq!(secs(&minted.expire_time), Some(sooner.timestamp()));

    // More than the parent has: each field refused by name.
    let mut req = asked(&["delivery.tasks.read", "delivery.tasks.write"]);
    let k = req.api_key.as_mut().expect("key");
    k.project_id = other.id.clone();
    k.expire_time = Some(timestamp(expire + TimeDelta::hours(1)));
    let r = app.api_keys().create_api_key(authed(&token, req)).await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(
        violated_fields(&status),
        [
            "api_key.project_id",
            "api_key.scopes[1]",
            "api_key.expire_time"
        ]
    );
}

#[tokio::test]
async fn a_token_exchanged_for_an_expiring_key_expires_with_it() {
    let app = TestApp::start().await;
    let expire = Utc::now() + TimeDelta::seconds(90);
    let (key, _) = app
        .key_and_token(
            &app.alice.token,
            bound_key("", &["identity.organizations.read"], Some(expire)),
        )
        .await;
    let exchanged = app
        .auth()
        .exchange_token(ExchangeTokenRequest {
            grant: Some(exchange_token_request::Grant::ApiKey(key.secret)),
            org_id: String::new(),
        })
        .await
        .expect("exchange")
        .into_inner();
    let token_exp = secs(&exchanged.expire_time).expect("expiry");
    assert!(
        token_exp <= expire.timestamp(),
        "the token expires at {token_exp}, after its key ({})",
        expire.timestamp()
    );
}

#[tokio::test]
async fn a_key_bound_to_one_resource_mints_only_keys_bound_to_it_and_sees_no_more() {
    let app = TestApp::start().await;
    let mine = program(&app, "mine").await;
    let agent = Uuid::now_v7().to_string();
    let key = ApiKey {
        resource_id: agent.clone(),
        ..bound_key(
            &mine.id,
            &["delivery.*.read", "identity.api_keys.write"],
            None,
        )
    };
    let (_, token) = app.key_and_token(&app.alice.token, key).await;

    let minted = app
        .api_keys()
        .create_api_key(authed(&token, asked(&["delivery.*.read"])))
        .await
        .expect("inherits")
        .into_inner();
    assert_eq!(
        (minted.project_id, minted.resource_id),
        (mine.id.clone(), agent)
    );
    let mut req = asked(&["delivery.*.read"]);
    let k = req.api_key.as_mut().expect("key");
    k.project_id = mine.id.clone();
    k.resource_id = Uuid::now_v7().to_string();
    let r = app.api_keys().create_api_key(authed(&token, req)).await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["api_key.resource_id"]);

    // Its project's program is not its resource; a project's list cannot
    // be narrowed to the resource.
    let r = app
        .programs()
        .get_program(authed(&token, delivery::GetProgramRequest { id: mine.id }))
        .await;
    assert_status(r, Code::NotFound, "PROGRAM_NOT_FOUND");
    let r = app
        .programs()
        .list_programs(authed(&token, delivery::ListProgramsRequest::default()))
        .await;
    assert_status(r, Code::PermissionDenied, "PROJECT_BOUND_CREDENTIAL");
}

#[tokio::test]
async fn a_resource_binding_needs_a_project() {
    let app = TestApp::start().await;
    let mut req = asked(&["delivery.*.read"]);
    req.api_key.as_mut().expect("key").resource_id = Uuid::now_v7().to_string();
    let r = app
        .api_keys()
        .create_api_key(authed(&app.alice.token, req))
        .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["api_key.resource_id"]);
}
