//! The transactional outbox as delivery uses it: every mutation writes its
//! audit event (the program as its project) in its own transaction, and a
//! mutation whose event cannot be written does not happen.

use foundry_testkit::delivery::*;
use foundry_testkit::{TestApp, authed};

use crate::{actions, depend, mask, outbox, program, requirement, subtask, task, workstream};

#[tokio::test]
async fn every_mutation_writes_one_event_with_its_program_as_project() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "audited").await;
    let w = workstream(&app, t, &p.id, "w").await;
    let a = requirement(&app, t, &w.id, "a").await;
    let b = requirement(&app, t, &w.id, "b").await;
    depend(&app, t, &a.id, &b.id).await;
    let x = task(&app, t, &p.id, "x").await;
    let s = subtask(&app, t, &x.id, "s").await;
    app.tasks()
        .change_task_status(authed(
            t,
            ChangeTaskStatusRequest {
                id: x.id.clone(),
                status: TaskStatus::Todo as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    app.subtasks()
        .update_subtask(authed(
            t,
            UpdateSubtaskRequest {
                subtask: Some(Subtask {
                    id: s.id.clone(),
                    title: "renamed".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["title"]),
            },
        ))
        .await
        .unwrap();
    // Reads write nothing.
    app.tasks()
        .get_task(authed(t, GetTaskRequest { id: x.id.clone() }))
        .await
        .unwrap();
    app.requirements()
        .get_program_plan(authed(
            t,
            GetProgramPlanRequest {
                program_id: p.id.clone(),
            },
        ))
        .await
        .unwrap();

    let rows = outbox(&app).await;
    assert_eq!(
        actions(&rows),
        [
            "delivery.program.create",
            "delivery.workstream.create",
            "delivery.requirement.create",
            "delivery.requirement.create",
            "delivery.requirement.add_dependency",
            "delivery.task.create",
            "delivery.subtask.create",
            "delivery.task.change_status",
            "delivery.subtask.update",
        ]
    );
    for e in &rows {
        assert_eq!(e["service"], "delivery");
        assert_eq!(e["org_id"], app.alice.org_id.to_string());
        assert_eq!(e["project_id"], p.id, "{e}");
        assert_eq!(e["actor_type"], "user");
        assert_eq!(e["actor_id"], app.alice.user_id.to_string());
    }
    assert_eq!(rows[1]["resource_type"], "delivery.workstream");
    assert_eq!(rows[1]["resource_id"], w.id);
    assert_eq!(rows[6]["changes"]["task_id"]["new"], x.id);
    assert_eq!(rows[8]["changes"]["title"]["old"], "s");
}

#[tokio::test]
async fn a_mutation_whose_event_cannot_be_written_is_rolled_back() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "rollback").await;
    let mut admin = app.admin_db().await;
    sqlx::query("REVOKE INSERT ON delivery.outbox FROM foundry_delivery")
        .execute(&mut admin)
        .await
        .unwrap();
    let r = app
        .workstreams()
        .create_workstream(authed(t, crate::new_workstream(&p.id, "lost")))
        .await;
    sqlx::query("GRANT INSERT ON delivery.outbox TO foundry_delivery")
        .execute(&mut admin)
        .await
        .unwrap();
    let status = r.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert!(!status.message().contains("outbox"), "no SQL on the wire");
    assert_eq!(crate::count(&app, "workstreams").await, 0);
}

#[tokio::test]
async fn row_level_security_hides_other_tenants_from_an_unfiltered_query() {
    let app = TestApp::start().await;
    program(&app, &app.alice.token, "mine").await;
    let bp = program(&app, &app.bob.token, "theirs").await;
    task(&app, &app.bob.token, &bp.id, "theirs").await;
    let db = foundry_platform::db::Db::connect(&app.database_url, "delivery", 2)
        .await
        .unwrap();
    let mut tx = db.tenant(app.alice.org_id).await.unwrap();
    for (table, n) in [("programs", 1i64), ("tasks", 0)] {
        let got: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(got, n, "{table}");
    }
    // Writing a row into another tenant is refused by the policy.
    let r = sqlx::query("UPDATE programs SET name = 'x' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(&bp.id).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 0);
}
