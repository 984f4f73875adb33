use std::collections::{HashMap, HashSet};

use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed, violated_fields};

use crate::{
    actions, count, depend, error_metadata, new_requirement, outbox, program, requirement,
    workstream,
};

fn edge(a: &str, b: &str) -> AddRequirementDependencyRequest {
    AddRequirementDependencyRequest {
        requirement_id: a.into(),
        depends_on_id: b.into(),
    }
}

/// `n` requirements in one workstream of a new program; returns the
/// program id and the requirement ids in creation order.
async fn requirements(app: &TestApp, slug: &str, n: usize) -> (String, Vec<String>) {
    let t = &app.alice.token;
    let p = program(app, t, slug).await;
    let w = workstream(app, t, &p.id, "w").await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(requirement(app, t, &w.id, &format!("r{i}")).await.id);
    }
    (p.id, ids)
}

#[tokio::test]
async fn an_edge_is_added_once_within_one_program_and_recorded() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let (p, r) = requirements(&app, "deps", 2).await;
    let d = depend(&app, t, &r[0], &r[1]).await;
    assert_eq!(
        (
            d.requirement_id.as_str(),
            d.depends_on_id.as_str(),
            d.program_id.as_str()
        ),
        (r[0].as_str(), r[1].as_str(), p.as_str())
    );
    assert_eq!(d.created_by, app.alice.user_id.to_string());
    let again = app
        .requirements()
        .add_requirement_dependency(authed(t, edge(&r[0], &r[1])))
        .await;
    assert_status(again, Code::AlreadyExists, "DEPENDENCY_EXISTS");

    let own = app
        .requirements()
        .add_requirement_dependency(authed(t, edge(&r[0], &r[0])))
        .await;
    let s = assert_status(own, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["depends_on_id"]);
    let bad = app
        .requirements()
        .add_requirement_dependency(authed(t, edge("x", "")))
        .await;
    let s = assert_status(bad, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["requirement_id", "depends_on_id"]);

    // Across programs, and into another organization.
    let (_, other) = requirements(&app, "deps-other", 1).await;
    let r2 = app
        .requirements()
        .add_requirement_dependency(authed(t, edge(&r[0], &other[0])))
        .await;
    assert_status(r2, Code::FailedPrecondition, "DIFFERENT_PROGRAM");
    let bp = program(&app, &app.bob.token, "deps-bob").await;
    let bw = workstream(&app, &app.bob.token, &bp.id, "w").await;
    let br = requirement(&app, &app.bob.token, &bw.id, "bob").await;
    let r2 = app
        .requirements()
        .add_requirement_dependency(authed(t, edge(&r[0], &br.id)))
        .await;
    assert_status(r2, Code::NotFound, "REQUIREMENT_NOT_FOUND");
    let r2 = app
        .requirements()
        .add_requirement_dependency(authed(t, edge(&br.id, &r[0])))
        .await;
    assert_status(r2, Code::NotFound, "REQUIREMENT_NOT_FOUND");

    let e = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e["action"] == "delivery.requirement.add_dependency")
        .collect::<Vec<_>>();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["resource_id"], r[0]);
    assert_eq!(e[0]["project_id"], p);
    assert_eq!(e[0]["changes"]["depends_on_id"]["new"], r[1]);
}

#[tokio::test]
async fn an_edge_closing_a_cycle_is_refused_naming_the_cycle() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let (_, r) = requirements(&app, "cycle", 3).await;
    depend(&app, t, &r[0], &r[1]).await;
    depend(&app, t, &r[1], &r[2]).await;
    let res = app
        .requirements()
        .add_requirement_dependency(authed(t, edge(&r[2], &r[0])))
        .await;
    let s = assert_status(res, Code::FailedPrecondition, "DEPENDENCY_CYCLE");
    let meta = error_metadata(&s);
    assert_eq!(meta["cycle"], format!("{},{},{}", r[2], r[0], r[1]));
    assert_eq!(meta["cycle_length"], "3");
    assert!(
        s.message()
            .contains(&format!("{} -> {} -> {} -> {}", r[2], r[0], r[1], r[2])),
        "{}",
        s.message()
    );
    assert_eq!(
        count(&app, "requirement_dependencies").await,
        2,
        "nothing stored"
    );
    // The short way back is a cycle too.
    let res = app
        .requirements()
        .add_requirement_dependency(authed(t, edge(&r[1], &r[0])))
        .await;
    let s = assert_status(res, Code::FailedPrecondition, "DEPENDENCY_CYCLE");
    assert_eq!(error_metadata(&s)["cycle"], format!("{},{}", r[1], r[0]));
}

#[tokio::test]
async fn closing_a_chain_of_two_hundred_is_refused_naming_all_of_them_in_order() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let (_, r) = requirements(&app, "long-cycle", 200).await;
    // r[i] depends on r[i + 1].
    for w in r.windows(2) {
        depend(&app, t, &w[0], &w[1]).await;
    }
    let res = app
        .requirements()
        .add_requirement_dependency(authed(t, edge(&r[199], &r[0])))
        .await;
    let s = assert_status(res, Code::FailedPrecondition, "DEPENDENCY_CYCLE");
    let meta = error_metadata(&s);
    let mut expected = vec![r[199].clone()];
    expected.extend(r[..199].iter().cloned());
    assert_eq!(meta["cycle"].split(',').collect::<Vec<_>>(), expected);
    assert_eq!(meta["cycle_length"], "200");
    assert!(!meta.contains_key("cycle_truncated"));
    assert!(s.message().contains("200 requirement"), "{}", s.message());
    assert_eq!(count(&app, "requirement_dependencies").await, 199);
    // The harmless direction is fine.
    depend(&app, t, &r[0], &r[199]).await;
}

#[tokio::test]
async fn two_edges_added_at_once_cannot_close_a_cycle_together() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let (_, r) = requirements(&app, "race", 2).await;
    for _ in 0..5 {
        let (mut c1, mut c2) = (app.requirements(), app.requirements());
        let (x, y) = tokio::join!(
            c1.add_requirement_dependency(authed(t, edge(&r[0], &r[1]))),
            c2.add_requirement_dependency(authed(t, edge(&r[1], &r[0]))),
        );
        assert!(x.is_ok() != y.is_ok(), "exactly one edge wins: {x:?} {y:?}");
        let lost = x.err().or(y.err()).unwrap();
        assert_eq!(lost.code(), Code::FailedPrecondition);
        assert_eq!(count(&app, "requirement_dependencies").await, 1);
        let mut db = app.admin_db().await;
        sqlx::query("DELETE FROM delivery.requirement_dependencies")
            .execute(&mut db)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn removing_an_edge_allows_the_reverse_and_a_missing_edge_is_not_found() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let (p, r) = requirements(&app, "remove", 2).await;
    depend(&app, t, &r[0], &r[1]).await;
    let remove = |a: &str, b: &str| RemoveRequirementDependencyRequest {
        requirement_id: a.into(),
        depends_on_id: b.into(),
    };
    app.requirements()
        .remove_requirement_dependency(authed(t, remove(&r[0], &r[1])))
        .await
        .unwrap();
    let again = app
        .requirements()
        .remove_requirement_dependency(authed(t, remove(&r[0], &r[1])))
        .await;
    assert_status(again, Code::NotFound, "DEPENDENCY_NOT_FOUND");
    depend(&app, t, &r[1], &r[0]).await;
    let rows = outbox(&app).await;
    let acts = actions(&rows);
    assert_eq!(
        acts[acts.len() - 3..],
        [
            "delivery.requirement.add_dependency",
            "delivery.requirement.remove_dependency",
            "delivery.requirement.add_dependency"
        ]
    );
    let removed = &rows[rows.len() - 2];
    assert_eq!(removed["changes"]["depends_on_id"]["old"], r[1]);
    assert_eq!(removed["project_id"], p);
    let bob = app
        .requirements()
        .remove_requirement_dependency(authed(&app.bob.token, remove(&r[1], &r[0])))
        .await;
    assert_status(bob, Code::NotFound, "REQUIREMENT_NOT_FOUND");
}

async fn walk(
    app: &TestApp,
    id: &str,
    direction: DependencyDirection,
    transitive: bool,
    size: i32,
) -> (Vec<String>, usize) {
    let mut req = ListRequirementDependenciesRequest {
        requirement_id: id.into(),
        direction: direction as i32,
        transitive,
        page_size: size,
        page_token: String::new(),
    };
    let (mut ids, mut pages) = (Vec::new(), 0);
    loop {
        let page = app
            .requirements()
            .list_requirement_dependencies(authed(&app.alice.token, req.clone()))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        ids.extend(page.requirements.into_iter().map(|r| r.id));
        if page.next_page_token.is_empty() {
            return (ids, pages);
        }
        req.page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn dependencies_list_directly_and_transitively_both_ways() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let (_, r) = requirements(&app, "walk", 6).await;
    // 0 → 1 → 2 → 3, 0 → 4, 4 → 2 (a diamond), 5 alone.
    for (a, b) in [(0, 1), (1, 2), (2, 3), (0, 4), (4, 2)] {
        depend(&app, t, &r[a], &r[b]).await;
    }
    let ids = |v: &[usize]| {
        let mut out: Vec<String> = v.iter().map(|i| r[*i].clone()).collect();
        out.sort();
        out.reverse(); // newest first
        out
    };
    use DependencyDirection::*;
    assert_eq!(walk(&app, &r[0], Upstream, false, 0).await.0, ids(&[1, 4]));
    assert_eq!(
        walk(&app, &r[0], Unspecified, false, 0).await.0,
        ids(&[1, 4]),
        "upstream by default"
    );
    assert_eq!(
        walk(&app, &r[0], Upstream, true, 2).await,
        (ids(&[1, 2, 3, 4]), 2)
    );
    assert_eq!(
        walk(&app, &r[2], Downstream, false, 0).await.0,
        ids(&[1, 4])
    );
    assert_eq!(
        walk(&app, &r[3], Downstream, true, 1).await,
        (ids(&[0, 1, 2, 4]), 4)
    );
    assert_eq!(
        walk(&app, &r[3], Upstream, true, 0).await.0,
        Vec::<String>::new()
    );
    assert_eq!(
        walk(&app, &r[5], Downstream, true, 0).await.0,
        Vec::<String>::new()
    );

    let r2 = app
        .requirements()
        .list_requirement_dependencies(authed(
            &app.bob.token,
            ListRequirementDependenciesRequest {
                requirement_id: r[0].clone(),
                ..Default::default()
            },
        ))
        .await;
    assert_status(r2, Code::NotFound, "REQUIREMENT_NOT_FOUND");
    let r2 = app
        .requirements()
        .list_requirement_dependencies(authed(
            t,
            ListRequirementDependenciesRequest {
                requirement_id: r[0].clone(),
                direction: 7,
                ..Default::default()
            },
        ))
        .await;
    let s = assert_status(r2, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&s), ["direction"]);
}

#[tokio::test]
async fn the_program_plan_puts_every_requirement_after_what_it_depends_on() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "plan").await;
    let w = workstream(&app, t, &p.id, "w").await;
    let priorities = [
        RequirementPriority::Low,
        RequirementPriority::Critical,
        RequirementPriority::Medium,
        RequirementPriority::High,
    ];
    let mut r = Vec::new();
    for i in 0..40 {
        let mut req = new_requirement(&w.id, &format!("r{i}"));
        req.requirement.as_mut().unwrap().priority = priorities[i % 4] as i32;
        r.push(
            app.requirements()
                .create_requirement(authed(t, req))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    // A random DAG: edges only from a later to an earlier requirement, so
    // the plan must reorder everything.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut edges = HashSet::new();
    for _ in 0..120 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let (a, b) = ((seed % 40) as usize, ((seed >> 20) % 40) as usize);
        if b < a && edges.insert((a, b)) {
            // Each requirement depends on an earlier one: the reverse of
            // creation order is impossible, creation order always works.
            depend(&app, t, &r[b].id, &r[a].id).await;
        }
    }
    // Noise in another organization.
    let bp = program(&app, &app.bob.token, "plan-bob").await;
    let bw = workstream(&app, &app.bob.token, &bp.id, "w").await;
    requirement(&app, &app.bob.token, &bw.id, "noise").await;

    let plan = app
        .requirements()
        .get_program_plan(authed(
            t,
            GetProgramPlanRequest {
                program_id: p.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(plan.program_id, p.id);
    assert_eq!(plan.requirements.len(), 40);
    assert_eq!(plan.dependency_count as usize, edges.len());
    let pos: HashMap<&str, usize> = plan
        .requirements
        .iter()
        .enumerate()
        .map(|(i, x)| (x.requirement_id.as_str(), i))
        .collect();
    let level: HashMap<&str, i32> = plan
        .requirements
        .iter()
        .map(|x| (x.requirement_id.as_str(), x.level))
        .collect();
    for &(a, b) in &edges {
        // r[b] depends on r[a].
        assert!(
            pos[r[a].id.as_str()] < pos[r[b].id.as_str()],
            "edge {b} -> {a} respected"
        );
        assert!(level[r[a].id.as_str()] < level[r[b].id.as_str()]);
    }
    for x in &plan.requirements {
        let deps: Vec<&str> = edges
            .iter()
            .filter(|(_, b)| r[*b].id == x.requirement_id)
            .map(|(a, _)| r[*a].id.as_str())
            .collect();
        assert_eq!(x.depends_on_ids.len(), deps.len());
        assert!(x.depends_on_ids.iter().all(|d| deps.contains(&d.as_str())));
        assert_eq!(
            x.level,
            deps.iter().map(|d| level[d] + 1).max().unwrap_or(0)
        );
    }
    // Within a level: priority (critical first), then creation.
    for pair in plan.requirements.windows(2) {
        if pair[0].level == pair[1].level {
            let rank = |p: i32| p; // enum values are declared critical first
            assert!(
                (rank(pair[0].priority), &pair[0].requirement_id)
                    < (rank(pair[1].priority), &pair[1].requirement_id)
            );
        }
    }
    // Deterministic.
    let again = app
        .requirements()
        .get_program_plan(authed(
            t,
            GetProgramPlanRequest {
                program_id: p.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, plan);
    let r2 = app
        .requirements()
        .get_program_plan(authed(
            &app.bob.token,
            GetProgramPlanRequest {
                program_id: p.id.clone(),
            },
        ))
        .await;
    assert_status(r2, Code::NotFound, "PROGRAM_NOT_FOUND");
}

/// Issue 15, finding 5: GetProgramPlan orders a program in memory, so it
/// covers a bounded program and refuses a bigger one with a clear error
/// instead of reading it all (before: every requirement and edge read,
/// however many).
#[tokio::test]
async fn a_program_past_the_plans_bound_is_refused_with_where_to_read_it_instead() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let (program_id, ids) = requirements(&app, "big-plan", 1).await;
    let plan = |token: &str| {
        let mut client = app.requirements();
        let req = authed(
            token,
            GetProgramPlanRequest {
                program_id: program_id.clone(),
            },
        );
        async move { client.get_program_plan(req).await }
    };
    assert_eq!(plan(t).await.unwrap().into_inner().requirements.len(), 1);
    // Copies of the requirement up to one past the bound, written
    // directly (10,000 creates through the API would take minutes).
    let mut db = app.admin_db().await;
    sqlx::query(
        "INSERT INTO delivery.requirements \
         SELECT (jsonb_populate_record(r, jsonb_build_object('id', gen_random_uuid()))).* \
         FROM delivery.requirements r, generate_series(1, $2) WHERE r.id = $1::uuid",
    )
    .bind(&ids[0])
    .bind(10_000_i32)
    .execute(&mut db)
    .await
    .unwrap();
    let status = assert_status(
        plan(t).await,
        Code::FailedPrecondition,
        "PROGRAM_PLAN_TOO_LARGE",
    );
    assert!(status.message().contains("ListRequirementDependencies"));
    assert_eq!(
        error_metadata(&status)
            .get("max_requirements")
            .map(String::as_str),
        Some("10000")
    );
    // Validation and tenancy come first, as for any call.
    let r = app
        .requirements()
        .get_program_plan(authed(
            t,
            GetProgramPlanRequest {
                program_id: "nope".into(),
            },
        ))
        .await;
    assert_eq!(
        violated_fields(&assert_status(r, Code::InvalidArgument, "INVALID_ARGUMENT")),
        ["program_id"]
    );
    assert_status(
        plan(&app.bob.token).await,
        Code::NotFound,
        "PROGRAM_NOT_FOUND",
    );
}
