//! `ListActivity`: a project's feed from the audit events that name it.

use foundry_platform::convert::json_to_struct;
use foundry_testkit::audit::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};
use prost_types::value::Kind;
use uuid::Uuid;

use super::*;

async fn activity(
    app: &TestApp,
    token: &str,
    project_id: &str,
    page_size: i32,
    page_token: String,
) -> Result<ListActivityResponse, tonic::Status> {
    app.audit()
        .list_activity(authed(
            token,
            ListActivityRequest {
                project_id: project_id.into(),
                page_size,
                page_token,
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

fn string(v: &Option<prost_types::Value>) -> Option<&str> {
    match v.as_ref().and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

#[tokio::test]
async fn activity_lists_a_projects_events_newest_first_with_their_changes() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    let (apollo, gemini) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let in_project = |project: &str| {
        let mut e = event(o.id);
        e.project_id = project.into();
        e.action = "delivery.task.update".into();
        e.resource_type = "delivery.task".into();
        e
    };
    let mut created = in_project(&apollo);
    created.action = "delivery.task.create".into();
    created.changes = Some(json_to_struct(&serde_json::json!({
        "title": {"old": null, "new": "Ship it"},
        "assignee": {"old": "u1", "new": "u2"},
    })));
    let elsewhere = in_project(&gemini);
    let mut updated = in_project(&apollo);
    updated.changes = None;
    let no_project = event(o.id);
    append(
        &app,
        &svc,
        vec![created.clone(), elsewhere, updated.clone(), no_project],
    )
    .await;

    let page = activity(&app, &o.token, &apollo, 0, String::new())
        .await
        .expect("activity");
    let ids: Vec<&str> = page.activities.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, [updated.id.as_str(), created.id.as_str()]);
    let a = &page.activities[1];
    assert_eq!(a.project_id, apollo);
    assert_eq!(a.action, "delivery.task.create");
    assert_eq!(a.resource_type, "delivery.task");
    assert_eq!(a.resource_id, created.resource_id);
    assert_eq!(a.actor_type, ActorType::User as i32);
    assert_eq!(a.actor_id, created.actor_id);
    assert_eq!(a.occur_time, created.occur_time);
    let fields: Vec<&str> = a.changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["assignee", "title"]);
    assert_eq!(
        (
            string(&a.changes[0].old_value),
            string(&a.changes[0].new_value)
        ),
        (Some("u1"), Some("u2"))
    );
    assert!(matches!(
        a.changes[1]
            .old_value
            .as_ref()
            .and_then(|v| v.kind.as_ref()),
        Some(Kind::NullValue(_))
    ));
    assert_eq!(string(&a.changes[1].new_value), Some("Ship it"));
    assert!(page.activities[0].changes.is_empty());

    // Pages of one.
    let first = activity(&app, &o.token, &apollo, 1, String::new())
        .await
        .expect("page");
    assert_eq!(first.activities[0].id, updated.id);
    let second = activity(&app, &o.token, &apollo, 1, first.next_page_token)
        .await
        .expect("page");
    assert_eq!(second.activities[0].id, created.id);
    assert!(second.next_page_token.is_empty());
}

#[tokio::test]
async fn activity_is_validated_and_shows_no_other_organization() {
    let app = TestApp::start().await;
    let svc = app.service_token().await;
    let o = org(&app);
    let project = Uuid::now_v7().to_string();
    let mut e = event(o.id);
    e.project_id = project.clone();
    append(&app, &svc, vec![e]).await;

    let other = org(&app);
    let page = activity(&app, &other.token, &project, 0, String::new())
        .await
        .expect("activity");
    assert!(page.activities.is_empty());
    for (project_id, size, field) in [
        ("", 0, "project_id"),
        ("p1", 0, "project_id"),
        (project.as_str(), -1, "page_size"),
    ] {
        let r = activity(&app, &o.token, project_id, size, String::new()).await;
        let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
        assert_eq!(violated_fields(&status), [field]);
    }
    // A token of another project's feed is refused.
    let mut more = event(o.id);
    more.project_id = project.clone();
    append(&app, &svc, vec![more]).await;
    let page = activity(&app, &o.token, &project, 1, String::new())
        .await
        .expect("page");
    let r = activity(
        &app,
        &o.token,
        &Uuid::now_v7().to_string(),
        1,
        page.next_page_token,
    )
    .await;
    let status = assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["page_token"]);
}
