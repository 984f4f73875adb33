//! Every list and look-up the handlers run is served by an index that
//! starts with `org_id`: over synthetic rows in ten organizations, `EXPLAIN`
//! of each query shape the store builds shows no sequential scan. (`scale`
//! checks the task, requirement, graph and subtask queries again over one
//! program of 100k tasks, as the service runs them, and drives the RPCs.)

use foundry_testkit::TestApp;

use crate::{assert_plan_index_backed, seed_id as id, sql_seed_id as sql_id};

const ORG: &str = "8000";
const PROGRAM: &str = "8001";
const WORKSTREAM: &str = "8002";
const REQUIREMENT: &str = "8003";
const TASK: &str = "8004";
const SUBTASK: &str = "8005";
const USER: &str = "8006";
const SPRINT: &str = "8007";
const RISK: &str = "8008";
const GATE: &str = "8009";
const EVALUATION: &str = "800a";
const GOAL: &str = "800b";
const WORK_ORDER: &str = "800c";
const PLANNER_PHASE: &str = "800d";
const FEATURE: &str = "800e";

#[tokio::test]
async fn every_list_query_shape_is_index_backed() {
    let app = TestApp::start().await;
    let mut db = app.admin_db().await;
    let user = sql_id(USER, "g % 50");
    // 5000 programs (500 per org), 20000 workstreams, 40000 requirements
    // with 20000 edges, 50000 tasks with assignees, 50000 subtasks.
    let seed = [
        format!(
            "INSERT INTO delivery.programs (org_id, id, name, slug, phase, archive_time, created_by) \
             SELECT {org}, {id}, 'p', 'p' || g, (ARRAY['discovery','build','test','deploy','complete'])[g % 5 + 1], \
                    CASE WHEN g % 7 = 0 THEN now() END, {user} FROM generate_series(0, 4999) g",
            org = sql_id(ORG, "g % 10"),
            id = sql_id(PROGRAM, "g"),
        ),
        format!(
            "INSERT INTO delivery.workstreams (org_id, id, program_id, name, position, created_by) \
             SELECT {org}, {id}, {program}, 'w', g / 5000 + 1, {user} FROM generate_series(0, 19999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(WORKSTREAM, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
        ),
        format!(
            "INSERT INTO delivery.requirements (org_id, id, program_id, workstream_id, title, priority, status, created_by) \
             SELECT {org}, {id}, {program}, {workstream}, 'r', 'medium', \
                    (ARRAY['draft','approved','in_progress','done','deferred'])[g % 5 + 1], {user} \
             FROM generate_series(0, 39999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(REQUIREMENT, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
            workstream = sql_id(WORKSTREAM, "g % 20000"),
        ),
        format!(
            "INSERT INTO delivery.requirement_dependencies (org_id, program_id, requirement_id, depends_on_id, created_by) \
             SELECT {org}, {program}, {a}, {b}, {user} FROM generate_series(20000, 39999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            program = sql_id(PROGRAM, "g % 5000"),
            a = sql_id(REQUIREMENT, "g"),
            b = sql_id(REQUIREMENT, "g - 20000"),
        ),
        format!(
            "INSERT INTO delivery.sprints (org_id, id, program_id, name, start_time, end_time, status, created_by) \
             SELECT {org}, {id}, {program}, 's', now(), now() + interval '14 days', \
                    (ARRAY['planned','active','completed'])[g / 5000 + 1], {user} \
             FROM generate_series(0, 14999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(SPRINT, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
        ),
        format!(
            "INSERT INTO delivery.tasks (org_id, id, program_id, requirement_id, title, status, assignee_ids, sprint_id, created_by) \
             SELECT {org}, {id}, {program}, CASE WHEN g % 3 = 0 THEN {requirement} END, 't', \
                    (ARRAY['backlog','todo','in_progress','in_review','done','blocked'])[g % 6 + 1], \
                    ARRAY[{user}], CASE WHEN g % 4 = 0 THEN {sprint} END, {user} \
             FROM generate_series(0, 49999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(TASK, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
            requirement = sql_id(REQUIREMENT, "g % 5000 + 5000 * (g / 5000 % 8)"),
            sprint = sql_id(SPRINT, "g % 5000"),
        ),
        format!(
            "INSERT INTO delivery.task_assignees (org_id, task_id, user_id, program_id) \
             SELECT {org}, {task}, {user}, {program} FROM generate_series(0, 49999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            task = sql_id(TASK, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
        ),
        format!(
            "INSERT INTO delivery.subtasks (org_id, id, task_id, program_id, title, status, position, created_by) \
             SELECT {org}, {id}, {task}, {program}, 's', (ARRAY['todo','in_progress','done'])[g % 3 + 1], 1, {user} \
             FROM generate_series(0, 49999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(SUBTASK, "g"),
            task = sql_id(TASK, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
        ),
        format!(
            "INSERT INTO delivery.risks (org_id, id, program_id, title, likelihood, impact, severity, status, created_by) \
             SELECT {org}, {id}, {program}, 'r', g % 5 + 1, g / 5 % 5 + 1, \
                    CASE WHEN (g % 5 + 1) * (g / 5 % 5 + 1) >= 16 THEN 'critical' \
                         WHEN (g % 5 + 1) * (g / 5 % 5 + 1) >= 10 THEN 'high' \
                         WHEN (g % 5 + 1) * (g / 5 % 5 + 1) >= 5 THEN 'medium' ELSE 'low' END, \
                    (ARRAY['open','mitigating','accepted','closed'])[g % 4 + 1], {user} \
             FROM generate_series(0, 49999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(RISK, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
        ),
        format!(
            "INSERT INTO delivery.sprint_gates (org_id, id, program_id, sprint_id, name, criteria, created_by) \
             SELECT {org}, {id}, {program}, {sprint}, 'g', '[]', {user} FROM generate_series(0, 29999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(GATE, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
            sprint = sql_id(SPRINT, "g % 15000"),
        ),
        format!(
            "INSERT INTO delivery.sprint_gate_evaluations (org_id, id, gate_id, sprint_id, program_id, \
             evaluator_id, evaluator_type, results, passed) \
             SELECT {org}, {id}, {gate}, {sprint}, {program}, {user}, 'user', '[]', g % 2 = 0 \
             FROM generate_series(0, 59999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(EVALUATION, "g"),
            gate = sql_id(GATE, "g % 30000"),
            sprint = sql_id(SPRINT, "g % 30000 % 15000"),
            program = sql_id(PROGRAM, "g % 5000"),
        ),
        format!(
            "INSERT INTO delivery.goals (org_id, id, program_id, title, status, created_by) \
             SELECT {org}, {id}, {program}, 'g', \
                    (ARRAY['proposed','active','achieved','abandoned'])[g % 4 + 1], {user} \
             FROM generate_series(0, 49999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(GOAL, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
        ),
        format!(
            "INSERT INTO delivery.work_orders (org_id, id, program_id, title, status, assignee_ids, created_by) \
             SELECT {org}, {id}, {program}, 'w', \
                    (ARRAY['backlog','ready','in_progress','in_review','done'])[g % 5 + 1], ARRAY[{user}], {user} \
             FROM generate_series(0, 49999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(WORK_ORDER, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
        ),
        format!(
            "INSERT INTO delivery.work_order_assignees (org_id, work_order_id, user_id, program_id) \
             SELECT {org}, {id}, {user}, {program} FROM generate_series(0, 49999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(WORK_ORDER, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
        ),
        format!(
            "INSERT INTO delivery.planner_phases (org_id, id, program_id, name, position, created_by) \
             SELECT {org}, {id}, {program}, 'p', g / 5000 + 1, {user} FROM generate_series(0, 49999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(PLANNER_PHASE, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
        ),
        // 10 roots per program, then children of the roots.
        format!(
            "INSERT INTO delivery.features (org_id, id, program_id, parent_feature_id, name, slug, created_by) \
             SELECT {org}, {id}, {program}, CASE WHEN g >= 50000 THEN {parent} END, 'f', 'f' || g, {user} \
             FROM generate_series(0, 99999) g",
            org = sql_id(ORG, "g % 5000 % 10"),
            id = sql_id(FEATURE, "g"),
            program = sql_id(PROGRAM, "g % 5000"),
            parent = sql_id(FEATURE, "g % 50000"),
        ),
        // Work orders in a phase (half) and of a feature (a third), each of
        // the work order's own program.
        format!(
            "UPDATE delivery.work_orders w SET phase_id = CASE WHEN s.g % 2 = 0 THEN {phase} END, \
                    feature_id = CASE WHEN s.g % 3 = 0 THEN {feature} END \
             FROM generate_series(0, 49999) s(g) WHERE w.org_id = {org} AND w.id = {id}",
            phase = sql_id(PLANNER_PHASE, "s.g"),
            feature = sql_id(FEATURE, "s.g"),
            org = sql_id(ORG, "s.g % 5000 % 10"),
            id = sql_id(WORK_ORDER, "s.g"),
        ),
        "ANALYZE delivery.goals, delivery.work_orders, delivery.work_order_assignees, delivery.planner_phases, \
         delivery.features, \
         delivery.programs, delivery.workstreams, delivery.requirements, \
         delivery.requirement_dependencies, delivery.tasks, delivery.task_assignees, delivery.subtasks, \
         delivery.risks, delivery.sprints, delivery.sprint_gates, delivery.sprint_gate_evaluations"
            .to_owned(),
    ];
    for sql in &seed {
        sqlx::query(sql).execute(&mut db).await.expect(sql);
    }

    // Program 3 is in org 3; its workstream 3, requirement 20003 (which
    // depends on requirement 3), task 3 and subtask 3.
    let org = id(ORG, 3);
    let program = id(PROGRAM, 3);
    let workstream = id(WORKSTREAM, 3);
    let requirement = id(REQUIREMENT, 20003);
    let task = id(TASK, 3);
    let after = "'ffffffff-0000-7000-8000-000000000000'";
    let shapes = [
        // ListPrograms: none, phase, archived; with a cursor.
        format!("SELECT id FROM delivery.programs WHERE org_id = {org} ORDER BY id DESC LIMIT 51"),
        format!(
            "SELECT id FROM delivery.programs WHERE org_id = {org} AND phase = 'build' AND id < {after} ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.programs WHERE org_id = {org} AND archived = true ORDER BY id DESC LIMIT 51"
        ),
        // ListWorkstreams by (position, id).
        format!(
            "SELECT id FROM delivery.workstreams WHERE org_id = {org} AND program_id = {program} \
             AND (position, id) > (1::integer, {workstream}) ORDER BY position, id LIMIT 51"
        ),
        // ListRequirements: program, program + status, workstream, workstream + status.
        format!(
            "SELECT id FROM delivery.requirements WHERE org_id = {org} AND program_id = {program} ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.requirements WHERE org_id = {org} AND program_id = {program} AND status = 'done' \
             ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.requirements WHERE org_id = {org} AND workstream_id = {workstream} ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.requirements WHERE org_id = {org} AND workstream_id = {workstream} AND status = 'draft' \
             ORDER BY id DESC LIMIT 51"
        ),
        // The graph: a program's edges, one step up and down, a transitive walk.
        format!(
            "SELECT requirement_id, depends_on_id FROM delivery.requirement_dependencies \
             WHERE org_id = {org} AND program_id = {program}"
        ),
        format!(
            "WITH RECURSIVE walk(id) AS (SELECT depends_on_id FROM delivery.requirement_dependencies \
               WHERE org_id = {org} AND requirement_id = {requirement} \
             UNION SELECT d.depends_on_id FROM delivery.requirement_dependencies d JOIN walk w \
               ON d.org_id = {org} AND d.requirement_id = w.id) \
             SELECT r.id FROM delivery.requirements r JOIN walk w ON r.org_id = {org} AND r.id = w.id \
             ORDER BY r.id DESC LIMIT 51"
        ),
        format!(
            "WITH RECURSIVE walk(id) AS (SELECT requirement_id FROM delivery.requirement_dependencies \
               WHERE org_id = {org} AND depends_on_id = {requirement}) \
             SELECT r.id FROM delivery.requirements r JOIN walk w ON r.org_id = {org} AND r.id = w.id \
             ORDER BY r.id DESC LIMIT 51"
        ),
        // ListTasks: none, status, assignee, requirement, sprint.
        format!(
            "SELECT t.id FROM delivery.tasks t WHERE t.org_id = {org} AND t.program_id = {program} ORDER BY t.id DESC LIMIT 51"
        ),
        format!(
            "SELECT t.id FROM delivery.tasks t WHERE t.org_id = {org} AND t.program_id = {program} AND t.status = 'todo' \
             AND t.id < {after} ORDER BY t.id DESC LIMIT 51"
        ),
        format!(
            "SELECT t.id FROM delivery.task_assignees a JOIN delivery.tasks t ON t.org_id = a.org_id AND t.id = a.task_id \
             WHERE a.org_id = {org} AND a.program_id = {program} AND a.user_id = {user} ORDER BY a.task_id DESC LIMIT 51",
            user = id(USER, 3)
        ),
        format!(
            "SELECT t.id FROM delivery.tasks t WHERE t.org_id = {org} AND t.program_id = {program} \
             AND t.requirement_id = {r} ORDER BY t.id DESC LIMIT 51",
            r = id(REQUIREMENT, 3)
        ),
        format!(
            "SELECT t.id FROM delivery.tasks t WHERE t.org_id = {org} AND t.program_id = {program} \
             AND t.sprint_id = {s} ORDER BY t.id DESC LIMIT 51",
            s = id(SPRINT, 3)
        ),
        // ListSubtasks and the open-subtask count.
        format!(
            "SELECT id FROM delivery.subtasks WHERE org_id = {org} AND task_id = {task} ORDER BY position, id LIMIT 51"
        ),
        format!(
            "SELECT count(*) FROM delivery.subtasks WHERE org_id = {org} AND task_id = {task} AND status <> 'done'"
        ),
        // ListRisks: none, severity, status, both; with a cursor.
        format!(
            "SELECT id FROM delivery.risks WHERE org_id = {org} AND program_id = {program} ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.risks WHERE org_id = {org} AND program_id = {program} AND severity = 'high' \
             AND id < {after} ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.risks WHERE org_id = {org} AND program_id = {program} AND status = 'open' \
             ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.risks WHERE org_id = {org} AND program_id = {program} AND severity = 'critical' \
             AND status = 'open' ORDER BY id DESC LIMIT 51"
        ),
        // ListGoals: none, status; with a cursor.
        format!(
            "SELECT id FROM delivery.goals WHERE org_id = {org} AND program_id = {program} ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.goals WHERE org_id = {org} AND program_id = {program} AND status = 'active' \
             AND id < {after} ORDER BY id DESC LIMIT 51"
        ),
        // ListWorkOrders: none, status, assignee, both, phase, feature
        // (with a status); with a cursor.
        format!(
            "SELECT id FROM delivery.work_orders WHERE org_id = {org} AND program_id = {program} \
             AND phase_id = {ph} AND id < {after} ORDER BY id DESC LIMIT 51",
            ph = id(PLANNER_PHASE, 3)
        ),
        format!(
            "SELECT id FROM delivery.work_orders WHERE org_id = {org} AND program_id = {program} \
             AND status = 'ready' AND feature_id = {f} ORDER BY id DESC LIMIT 51",
            f = id(FEATURE, 3)
        ),
        format!(
            "SELECT id FROM delivery.work_orders WHERE org_id = {org} AND program_id = {program} \
             ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.work_orders WHERE org_id = {org} AND program_id = {program} \
             AND status = 'ready' AND id < {after} ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT w.id FROM delivery.work_order_assignees a JOIN delivery.work_orders w \
             ON w.org_id = a.org_id AND w.id = a.work_order_id WHERE a.org_id = {org} \
             AND a.program_id = {program} AND a.user_id = {u} AND a.work_order_id < {after} \
             ORDER BY a.work_order_id DESC LIMIT 51",
            u = id(USER, 3)
        ),
        format!(
            "SELECT w.id FROM delivery.work_order_assignees a JOIN delivery.work_orders w \
             ON w.org_id = a.org_id AND w.id = a.work_order_id WHERE a.org_id = {org} \
             AND a.program_id = {program} AND a.user_id = {u} AND w.status = 'done' \
             ORDER BY a.work_order_id DESC LIMIT 51",
            u = id(USER, 3)
        ),
        // ListPlannerPhases, first page and after a cursor; the append.
        format!(
            "SELECT id FROM delivery.planner_phases WHERE org_id = {org} AND program_id = {program} \
             ORDER BY position, id LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.planner_phases WHERE org_id = {org} AND program_id = {program} \
             AND (position, id) > (3, {after}) ORDER BY position, id LIMIT 51"
        ),
        format!(
            "SELECT coalesce(max(position), 0) + 1 FROM delivery.planner_phases \
             WHERE org_id = {org} AND program_id = {program}"
        ),
        // ListFeatures: all, children of one; the child check of a delete.
        format!(
            "SELECT id FROM delivery.features WHERE org_id = {org} AND program_id = {program} \
             AND id < {after} ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.features WHERE org_id = {org} AND program_id = {program} \
             AND parent_feature_id = {f} ORDER BY id DESC LIMIT 51",
            f = id(FEATURE, 3)
        ),
        format!(
            "SELECT EXISTS (SELECT 1 FROM delivery.features WHERE org_id = {org} AND program_id = {program} \
             AND parent_feature_id = {f})",
            f = id(FEATURE, 3)
        ),
        // ListSprints: none, status; the ACTIVE sprint of a program.
        format!(
            "SELECT id FROM delivery.sprints WHERE org_id = {org} AND program_id = {program} ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.sprints WHERE org_id = {org} AND program_id = {program} AND status = 'planned' \
             AND id < {after} ORDER BY id DESC LIMIT 51"
        ),
        format!(
            "SELECT id FROM delivery.sprints WHERE org_id = {org} AND program_id = {program} AND status = 'active'"
        ),
        // ListSprintGates; ListSprintGateEvaluations; the evaluation counts
        // of deletes (by gate, by sprint, by program).
        format!(
            "SELECT id FROM delivery.sprint_gates WHERE org_id = {org} AND sprint_id = {sprint} \
             AND id < {after} ORDER BY id DESC LIMIT 51",
            sprint = id(SPRINT, 3)
        ),
        format!(
            "SELECT id FROM delivery.sprint_gate_evaluations WHERE org_id = {org} AND gate_id = {gate} \
             AND id < {after} ORDER BY id DESC LIMIT 51",
            gate = id(GATE, 3)
        ),
        format!(
            "SELECT count(*) FROM delivery.sprint_gate_evaluations WHERE org_id = {org} AND gate_id = {gate}",
            gate = id(GATE, 3)
        ),
        format!(
            "SELECT count(*) FROM delivery.sprint_gate_evaluations e JOIN delivery.sprint_gates g \
             ON e.org_id = g.org_id AND e.gate_id = g.id WHERE g.org_id = {org} AND g.sprint_id = {sprint}",
            sprint = id(SPRINT, 3)
        ),
        format!(
            "SELECT count(*) FROM delivery.sprint_gate_evaluations WHERE org_id = {org} AND program_id = {program}"
        ),
    ];
    for sql in shapes {
        assert_plan_index_backed(&mut db, &sql).await;
    }
}
