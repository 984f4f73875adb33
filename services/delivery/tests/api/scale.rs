//! The issue's scale test. One program of one organization holds 100,000
//! tasks (assignees on all, a second assignee on a third, sprints and
//! requirements on some, subtasks on a tenth) and 10,000 requirements in
//! eight workstreams whose dependency graph has ~20,000 edges, among them a
//! chain 2,000 deep; other programs in the same and nine other
//! organizations hold as many rows again (three times as many requirements
//! and edges). The program and its workstreams are made through the API,
//! the rest is seeded with set-based SQL.
//!
//! Over that, `EXPLAIN` of every query the store runs for tasks,
//! requirements, the graph and subtasks, run as the service runs it (its
//! role, under row-level security; the plan for real values and the generic
//! plan a cached prepared statement may switch to), scans no table
//! sequentially; and the RPCs answer correctly: task pages under filters,
//! dependency walks, the plan, a cycle of 2,000 refused. Timings go to
//! stderr (`--nocapture`); nothing asserts on them.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use foundry_delivery::domain;
use foundry_delivery::store::{self, Cursor, Direction, dependencies_sql};
use foundry_testkit::delivery::*;
use foundry_testkit::{Code, TestApp, assert_status, authed};
use serde_json::Value;
use sqlx::PgConnection;

use crate::{assert_index_backed, error_metadata, program, seed_uuid, sql_seed_id, workstream};

const TASKS: u32 = 100_000;
const REQUIREMENTS: u32 = 10_000;
const WORKSTREAMS: usize = 8;
const SPRINTS: u32 = 20;
/// Requirements `0..CHAIN` form a chain, each depending on the one before
/// and on nothing else.
const CHAIN: u32 = 2_000;
/// Other programs: the first in the program's organization, the others in
/// nine other organizations.
const NOISE_PROGRAMS: u32 = 30;
/// Requirements of other programs (a multiple of `2 * NOISE_PROGRAMS`),
/// with two edges each. A plan and a cycle check read every requirement or
/// edge of the program: were it half the table, PostgreSQL would rightly
/// scan the table instead (its estimate favours the index only 1.3 times
/// there), so the big program is a quarter of these tables.
const NOISE_REQUIREMENTS: u32 = 36_000;
/// Seeded ids of other programs' rows start here.
const NOISE: u32 = 1_000_000;

// Tags of seeded ids.
const ORG: &str = "9000";
const PROGRAM: &str = "9001";
const WORKSTREAM: &str = "9002";
const REQUIREMENT: &str = "9003";
const TASK: &str = "9004";
const SUBTASK: &str = "9005";
const USER: &str = "9006";
const SPRINT: &str = "9007";

/// The database spellings of an enum as an SQL array, to index by
/// `[n % len + 1]`.
fn sql_values<T: Copy>(all: &[T], text: fn(T) -> &'static str) -> String {
    let values: Vec<String> = all.iter().map(|v| format!("'{}'", text(*v))).collect();
    format!("(ARRAY[{}])", values.join(","))
}

/// Task `g` of the big program.
struct SeedTask {
    /// Index into [`domain::TaskStatus::ALL`].
    status: usize,
    /// Seeded user numbers.
    assignees: Vec<u32>,
    /// Seeded requirement number.
    requirement: Option<u32>,
    /// Seeded sprint number.
    sprint: Option<u32>,
}

impl SeedTask {
    fn status(&self) -> domain::TaskStatus {
        domain::TaskStatus::ALL[self.status]
    }
}

fn seed_task(g: u32) -> SeedTask {
    let mut assignees = vec![g % 40];
    if g.is_multiple_of(3) {
        assignees.push(40 + g % 5);
    }
    SeedTask {
        status: (g + g / 1000) as usize % domain::TaskStatus::ALL.len(),
        assignees,
        requirement: g.is_multiple_of(5).then_some(g / 5 % REQUIREMENTS),
        sprint: g.is_multiple_of(4).then_some(g / 4 % SPRINTS),
    }
}

/// The big program's edges `(a, b)`, a depending on b, always b < a
/// (acyclic by construction): the chain, then two or three edges from
/// each later requirement to earlier ones (chain ones included).
fn seed_edges() -> Vec<(u32, u32)> {
    let mut edges = BTreeSet::new();
    for g in 1..CHAIN {
        edges.insert((g, g - 1));
    }
    for g in CHAIN..REQUIREMENTS {
        edges.insert((g, g - 1 - g * 37 % 97));
        edges.insert((g, g * 7919 % 10_007 % g));
        if g.is_multiple_of(4) {
            edges.insert((g, g - 500 - g % 250));
        }
    }
    edges.into_iter().collect()
}

fn task_id(g: u32) -> String {
    seed_uuid(TASK, g.into())
}

fn requirement_id(g: u32) -> String {
    seed_uuid(REQUIREMENT, g.into())
}

fn user_id(g: u32) -> String {
    seed_uuid(USER, g.into())
}

/// The organization of noise program `k` (an SQL expression).
fn noise_org_of(org: &str, k: &str) -> String {
    format!(
        "CASE WHEN ({k}) = 0 THEN {org}::uuid ELSE {} END",
        sql_seed_id(ORG, &format!("({k}) % 9 + 1"))
    )
}

/// The big program's organization, id and workstreams, as SQL literals.
struct Big {
    org: String,
    program: String,
    workstreams: Vec<String>,
}

/// Seeds the big program (made through the API) and the noise; returns
/// the row counts by table.
async fn seed(db: &mut PgConnection, big: &Big, creator: &str) -> Vec<(String, i64)> {
    let Big {
        org,
        program,
        workstreams,
    } = big;
    let creator = format!("'{creator}'::uuid");
    let user = |e: &str| sql_seed_id(USER, e);
    let tasks: Vec<SeedTask> = (0..TASKS).map(seed_task).collect();
    let col = |f: &dyn Fn(&SeedTask) -> i32| tasks.iter().map(f).collect::<Vec<i32>>();
    let opt = |v: Option<u32>| v.map_or(-1, |v| v as i32);
    let status = col(&|t| t.status as i32);
    let first = col(&|t| t.assignees[0] as i32);
    let second = col(&|t| opt(t.assignees.get(1).copied()));
    let requirement = col(&|t| opt(t.requirement));
    let sprint = col(&|t| opt(t.sprint));
    let (from, to): (Vec<i32>, Vec<i32>) = seed_edges()
        .into_iter()
        .map(|(a, b)| (a as i32, b as i32))
        .unzip();
    let statuses = sql_values(domain::TaskStatus::ALL, domain::TaskStatus::as_str);
    let priorities = sql_values(domain::Priority::ALL, domain::Priority::as_str);
    let requirement_statuses = sql_values(
        domain::RequirementStatus::ALL,
        domain::RequirementStatus::as_str,
    );
    let subtask_statuses = sql_values(domain::SubtaskStatus::ALL, domain::SubtaskStatus::as_str);
    let noise = |tag: &str, e: &str| sql_seed_id(tag, &format!("{NOISE} + ({e})"));

    // The big program: sprints, requirements, edges, tasks, subtasks.
    sqlx::query(&format!(
        "INSERT INTO delivery.sprints (org_id, id, program_id, name, start_time, end_time, status, created_by) \
         SELECT {org}, {id}, {program}, 's' || g, timestamptz '2030-01-01' + g * interval '14 days', \
                timestamptz '2030-01-15' + g * interval '14 days', \
                CASE WHEN g < 5 THEN 'completed' WHEN g = 5 THEN 'active' ELSE 'planned' END, {creator} \
         FROM generate_series(0, {last}) g",
        id = sql_seed_id(SPRINT, "g"),
        last = SPRINTS - 1,
    ))
    .execute(&mut *db)
    .await
    .expect("sprints");
    sqlx::query(&format!(
        "INSERT INTO delivery.requirements (org_id, id, program_id, workstream_id, title, priority, status, created_by) \
         SELECT {org}, {id}, {program}, (ARRAY[{ws}]::uuid[])[g % {n} + 1], 'requirement ' || g, \
                {priorities}[g % 4 + 1], {requirement_statuses}[g % 5 + 1], {creator} \
         FROM generate_series(0, {last}) g",
        id = sql_seed_id(REQUIREMENT, "g"),
        ws = workstreams.join(","),
        n = WORKSTREAMS,
        last = REQUIREMENTS - 1,
    ))
    .execute(&mut *db)
    .await
    .expect("requirements");
    sqlx::query(&format!(
        "INSERT INTO delivery.requirement_dependencies (org_id, program_id, requirement_id, depends_on_id, created_by) \
         SELECT {org}, {program}, {a}, {b}, {creator} FROM unnest($1::int[], $2::int[]) AS e(a, b)",
        a = sql_seed_id(REQUIREMENT, "a"),
        b = sql_seed_id(REQUIREMENT, "b"),
    ))
    .bind(&from)
    .bind(&to)
    .execute(&mut *db)
    .await
    .expect("edges");
    sqlx::query(&format!(
        "INSERT INTO delivery.tasks (org_id, id, program_id, requirement_id, title, status, assignee_ids, \
         sprint_id, created_by) \
         SELECT {org}, {id}, {program}, CASE WHEN r >= 0 THEN {r} END, 'task ' || (n - 1), {statuses}[s + 1], \
                CASE WHEN u2 >= 0 THEN ARRAY[{u1}, {u2}] ELSE ARRAY[{u1}] END, \
                CASE WHEN sp >= 0 THEN {sp} END, {creator} \
         FROM unnest($1::int[], $2::int[], $3::int[], $4::int[], $5::int[]) \
              WITH ORDINALITY AS t(s, u1, u2, r, sp, n)",
        id = sql_seed_id(TASK, "n - 1"),
        r = sql_seed_id(REQUIREMENT, "r"),
        u1 = user("u1"),
        u2 = user("u2"),
        sp = sql_seed_id(SPRINT, "sp"),
    ))
    .bind(&status)
    .bind(&first)
    .bind(&second)
    .bind(&requirement)
    .bind(&sprint)
    .execute(&mut *db)
    .await
    .expect("tasks");
    // Three subtasks on every tenth task.
    sqlx::query(&format!(
        "INSERT INTO delivery.subtasks (org_id, id, task_id, program_id, title, status, position, created_by) \
         SELECT {org}, {id}, {task}, {program}, 'subtask ' || g, {subtask_statuses}[g % 3 + 1], \
                g % 3 + 1, {creator} \
         FROM generate_series(0, {last}) g",
        id = sql_seed_id(SUBTASK, "g"),
        task = sql_seed_id(TASK, "g / 3 * 10"),
        last = TASKS / 10 * 3 - 1,
    ))
    .execute(&mut *db)
    .await
    .expect("subtasks");

    // Noise: program k of NOISE_PROGRAMS, the first in the same org.
    let k = |e: &str| format!("({e}) % {NOISE_PROGRAMS}");
    let noise_program = |e: &str| sql_seed_id(PROGRAM, &k(e));
    let noise_org = |e: &str| noise_org_of(org, &k(e));
    let noise_seed = [
        format!(
            "INSERT INTO delivery.programs (org_id, id, name, slug, created_by) \
             SELECT {o}, {p}, 'noise ' || g, 'noise-' || g, {creator} \
             FROM generate_series(0, {NOISE_PROGRAMS} - 1) g",
            o = noise_org("g"),
            p = noise_program("g"),
        ),
        format!(
            "INSERT INTO delivery.workstreams (org_id, id, program_id, name, position, created_by) \
             SELECT {o}, {w}, {p}, 'w', g / {NOISE_PROGRAMS} + 1, {creator} \
             FROM generate_series(0, 2 * {NOISE_PROGRAMS} - 1) g",
            o = noise_org("g"),
            w = noise(WORKSTREAM, "g"),
            p = noise_program("g"),
        ),
        format!(
            "INSERT INTO delivery.sprints (org_id, id, program_id, name, start_time, end_time, created_by) \
             SELECT {o}, {s}, {p}, 's', timestamptz '2030-01-01', timestamptz '2030-01-15', {creator} \
             FROM generate_series(0, 5 * {NOISE_PROGRAMS} - 1) g",
            o = noise_org("g"),
            s = noise(SPRINT, "g"),
            p = noise_program("g"),
        ),
        format!(
            "INSERT INTO delivery.requirements (org_id, id, program_id, workstream_id, title, priority, status, \
             created_by) \
             SELECT {o}, {r}, {p}, {w}, 'r', {priorities}[g % 4 + 1], {requirement_statuses}[g % 5 + 1], {creator} \
             FROM generate_series(0, {NOISE_REQUIREMENTS} - 1) g",
            o = noise_org("g"),
            r = noise(REQUIREMENT, "g"),
            p = noise_program("g"),
            w = noise(WORKSTREAM, &format!("g % (2 * {NOISE_PROGRAMS})")),
        ),
        // Chains 1,200 deep in every program: g on g - 30 and g - 60.
        format!(
            "INSERT INTO delivery.requirement_dependencies (org_id, program_id, requirement_id, depends_on_id, \
             created_by) \
             SELECT {o}, {p}, {a}, {b}, {creator} \
             FROM generate_series({NOISE_PROGRAMS}, {NOISE_REQUIREMENTS} - 1) g, \
                  unnest(ARRAY[{NOISE_PROGRAMS}, 2 * {NOISE_PROGRAMS}]) d WHERE g >= d",
            o = noise_org("g"),
            p = noise_program("g"),
            a = noise(REQUIREMENT, "g"),
            b = noise(REQUIREMENT, "g - d"),
        ),
        format!(
            "INSERT INTO delivery.tasks (org_id, id, program_id, requirement_id, title, status, assignee_ids, \
             sprint_id, created_by) \
             SELECT {o}, {t}, {p}, CASE WHEN g % 5 = 0 THEN {r} END, 't', {statuses}[g % 6 + 1], \
                    CASE WHEN g % 3 = 0 THEN ARRAY[{u}, {u2}] ELSE ARRAY[{u}] END, \
                    CASE WHEN g % 4 = 0 THEN {s} END, {creator} \
             FROM generate_series(0, 119999) g",
            o = noise_org("g"),
            t = noise(TASK, "g"),
            p = noise_program("g"),
            r = noise(REQUIREMENT, &format!("g % {NOISE_REQUIREMENTS}")),
            u = user("g % 40"),
            u2 = user("40 + g % 5"),
            s = noise(SPRINT, &format!("g % (5 * {NOISE_PROGRAMS})")),
        ),
        format!(
            "INSERT INTO delivery.subtasks (org_id, id, task_id, program_id, title, status, position, created_by) \
             SELECT {o}, {id}, {t}, {p}, 's', {subtask_statuses}[g % 3 + 1], g % 3 + 1, {creator} \
             FROM generate_series(0, 29999) g",
            o = noise_org("g / 3 * 4"),
            id = noise(SUBTASK, "g"),
            t = noise(TASK, "g / 3 * 4"),
            p = noise_program("g / 3 * 4"),
        ),
        // The assignee index of every task, big program's and noise.
        "INSERT INTO delivery.task_assignees (org_id, task_id, user_id, program_id) \
         SELECT t.org_id, t.id, u, t.program_id FROM delivery.tasks t, unnest(t.assignee_ids) u"
            .to_owned(),
        "ANALYZE delivery.programs, delivery.workstreams, delivery.sprints, delivery.requirements, \
         delivery.requirement_dependencies, delivery.tasks, delivery.task_assignees, delivery.subtasks"
            .to_owned(),
    ];
    for sql in &noise_seed {
        sqlx::query(sql).execute(&mut *db).await.expect(sql);
    }

    let mut counts = Vec::new();
    for table in [
        "requirements",
        "requirement_dependencies",
        "tasks",
        "task_assignees",
        "subtasks",
    ] {
        let (mine, all): (i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*) FILTER (WHERE org_id = {org} AND program_id = {program}), count(*) \
             FROM delivery.{table}"
        ))
        .fetch_one(&mut *db)
        .await
        .unwrap();
        counts.push((format!("{table} (program)"), mine));
        counts.push((format!("{table} (elsewhere)"), all - mine));
    }
    counts
}

/// Asserts that the store query `sql` (placeholders `$n`, `args` SQL
/// literals for them) is index backed as the service runs it: `db` acts as
/// the service's role under row-level security (see [`explain_as_service`]);
/// both the plan for `args` and the generic plan, which a statement the
/// driver keeps prepared may switch to after five runs, are checked.
async fn assert_store_query_index_backed(db: &mut PgConnection, sql: &str, args: &[String]) {
    sqlx::raw_sql(&format!("PREPARE shape AS {sql}"))
        .execute(&mut *db)
        .await
        .expect(sql);
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::raw_sql(&format!("SET plan_cache_mode = {mode}"))
            .execute(&mut *db)
            .await
            .unwrap();
        let plan: Value = sqlx::query_scalar(&format!(
            "EXPLAIN (FORMAT JSON) EXECUTE shape({})",
            args.join(", ")
        ))
        .fetch_one(&mut *db)
        .await
        .expect(sql);
        assert_index_backed(&format!("{sql} [{mode}; {}]", args.join(", ")), &plan);
    }
    sqlx::raw_sql("DEALLOCATE shape")
        .execute(&mut *db)
        .await
        .unwrap();
}

/// A query with placeholders being built: `and` appends ` AND {col} {op} $n`.
struct Shape {
    sql: String,
    args: Vec<String>,
}

impl Shape {
    fn new(sql: &str, args: &[&str]) -> Shape {
        Shape {
            sql: sql.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn and(mut self, on: bool, col: &str, op: &str, arg: &str) -> Shape {
        if on {
            self.args.push(arg.to_owned());
            self.sql
                .push_str(&format!(" AND {col} {op} ${}", self.args.len()));
        }
        self
    }

    fn end(mut self, tail: &str, args: &[&str]) -> (String, Vec<String>) {
        let mut tail = tail.to_owned();
        for a in args {
            self.args.push((*a).to_owned());
            tail = tail.replacen("$?", &format!("${}", self.args.len()), 1);
        }
        self.sql.push_str(&tail);
        (self.sql, self.args)
    }
}

/// Every query shape the store runs for tasks, requirements, the graph and
/// subtasks, as `store::*` builds it (`SELECT *` for its column lists: the
/// tables have no other columns), with values from the big program.
fn store_query_shapes(big: &Big) -> Vec<(String, Vec<String>)> {
    let lit = |s: String| format!("'{s}'");
    let (org, program) = (big.org.as_str(), big.program.as_str());
    let workstream = big.workstreams[3].as_str();
    let user = lit(user_id(8));
    let requirement = lit(requirement_id(1999));
    let earlier = lit(requirement_id(1500));
    let task = lit(task_id(10));
    let after = lit(task_id(TASKS / 2));
    let sprint = lit(seed_uuid(SPRINT, 3));
    let mut shapes = Vec::new();

    // store::list_tasks: every combination of its four filters, with and
    // without a cursor; an assignee leads through task_assignees.
    for mask in 0..32u32 {
        let on = |bit: u32| mask & (1 << bit) != 0;
        let (shape, key) = if on(0) {
            (
                Shape::new(
                    "SELECT t.* FROM task_assignees a JOIN tasks t ON t.org_id = a.org_id \
                     AND t.id = a.task_id WHERE a.org_id = $1 AND a.program_id = $2 AND a.user_id = $3",
                    &[org, program, &user],
                ),
                "a.task_id",
            )
        } else {
            (
                Shape::new(
                    "SELECT t.* FROM tasks t WHERE t.org_id = $1 AND t.program_id = $2",
                    &[org, program],
                ),
                "t.id",
            )
        };
        shapes.push(
            shape
                .and(on(1), "t.requirement_id", "=", &lit(requirement_id(5)))
                .and(on(2), "t.sprint_id", "=", &sprint)
                .and(on(3), "t.status", "=", "'todo'")
                .and(on(4), key, "<", &after)
                .end(&format!(" ORDER BY {key} DESC LIMIT $?"), &["51"]),
        );
    }
    shapes.push((
        "SELECT * FROM tasks WHERE org_id = $1 AND id = $2".to_owned(),
        vec![org.to_owned(), task.clone()],
    ));

    // store::list_requirements: a workstream, a program or both; a status;
    // a cursor.
    for mask in 1..16u32 {
        let on = |bit: u32| mask & (1 << bit) != 0;
        if !on(0) && !on(1) {
            continue;
        }
        shapes.push(
            Shape::new("SELECT * FROM requirements WHERE org_id = $1", &[org])
                .and(on(0), "workstream_id", "=", workstream)
                .and(on(1), "program_id", "=", program)
                .and(on(2), "status", "=", "'done'")
                .and(on(3), "id", "<", &earlier)
                .end(" ORDER BY id DESC LIMIT $?", &["1001"]),
        );
    }
    shapes.push((
        "SELECT * FROM requirements WHERE org_id = $1 AND id = $2".to_owned(),
        vec![org.to_owned(), requirement.clone()],
    ));
    // store::plan_requirements and store::program_edges (the plan, and the
    // cycle check of every new edge).
    shapes.push((
        "SELECT id, workstream_id, title, priority, status FROM requirements \
         WHERE org_id = $1 AND program_id = $2 ORDER BY id"
            .to_owned(),
        vec![org.to_owned(), program.to_owned()],
    ));
    shapes.push((
        "SELECT requirement_id, depends_on_id FROM requirement_dependencies \
         WHERE org_id = $1 AND program_id = $2"
            .to_owned(),
        vec![org.to_owned(), program.to_owned()],
    ));
    // store::list_dependencies: both directions, direct and transitive,
    // first page and after a cursor.
    for direction in [Direction::Upstream, Direction::Downstream] {
        for transitive in [false, true] {
            let first = dependencies_sql(direction, transitive, false);
            let args = [org, requirement.as_str(), "1001"];
            shapes.push((first, args.map(str::to_owned).to_vec()));
            let after = dependencies_sql(direction, transitive, true);
            let args = [org, requirement.as_str(), earlier.as_str(), "1001"];
            shapes.push((after, args.map(str::to_owned).to_vec()));
        }
    }
    // store::list_subtasks, first page and after a cursor;
    // store::count_open_subtasks.
    let by_position = Cursor::After(None);
    let children = Shape::new(
        "SELECT * FROM subtasks WHERE org_id = $1 AND task_id = $2",
        &[org, &task],
    )
    .end(" ORDER BY position, id LIMIT $?", &["51"]);
    shapes.push(under::<domain::Task>((org, &task), by_position, children));
    let children = Shape::new(
        "SELECT * FROM subtasks WHERE org_id = $1 AND task_id = $2",
        &[org, &task],
    )
    .end(
        " AND (position, id) > ($?::integer, $?) ORDER BY position, id LIMIT $?",
        &["1", &lit(seed_uuid(SUBTASK, 3)), "51"],
    );
    shapes.push(under::<domain::Task>((org, &task), by_position, children));
    shapes.push((
        "SELECT count(*) FROM subtasks WHERE org_id = $1 AND task_id = $2 AND status <> 'done'"
            .to_owned(),
        vec![org.to_owned(), task],
    ));
    shapes
}

/// `children` (a list's statement and its arguments) read with their
/// parent `P` of `parent` in one statement, as `store::under` reads every
/// list of a parent's children: the parent's binds (`org`, `parent`) come
/// first, `children`'s follow. (The lists under a program or a workstream
/// are checked as their children's statements alone: the parent is read by
/// its primary key, and this fixture's few programs and workstreams fit in
/// a page PostgreSQL rightly reads whole.)
fn under<P: foundry_resource::Resource>(
    (org, parent): (&str, &str),
    order: Cursor,
    (sql, args): (String, Vec<String>),
) -> (String, Vec<String>) {
    let mut shifted = String::with_capacity(sql.len());
    let mut rest = sql.as_str();
    while let Some(at) = rest.find('$') {
        shifted.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: usize = rest[..digits].parse().expect("a placeholder's number");
        shifted.push_str(&(n + 2).to_string());
        rest = &rest[digits..];
    }
    shifted.push_str(rest);
    let nil = uuid::Uuid::nil();
    let q = store::under_query::<P>(nil, nil, order, |q| {
        q.push(shifted);
    });
    let parent_args = [org.to_owned(), parent.to_owned()];
    (
        q.sql().to_owned(),
        parent_args.into_iter().chain(args).collect(),
    )
}

/// Points `db` at the service's view: its role (no BYPASSRLS, so the
/// tenant policies apply), its schema, acting for `org`.
async fn explain_as_service(db: &mut PgConnection, org: &str) {
    sqlx::raw_sql(&format!(
        "SET ROLE foundry_delivery; SET search_path = delivery; SET app.org_id = {org}"
    ))
    .execute(&mut *db)
    .await
    .unwrap();
}

/// Walks at most `max` pages: `fetch` takes a page token and returns the
/// page's ids and the next token. Returns the ids, how many pages were
/// walked and whether more remain.
async fn walk_pages<F, Fut>(max: usize, mut fetch: F) -> (Vec<String>, usize, bool)
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = (Vec<String>, String)>,
{
    let (mut ids, mut token) = (Vec::new(), String::new());
    for walked in 1..=max {
        let (page, next) = fetch(token).await;
        ids.extend(page);
        if next.is_empty() {
            return (ids, walked, false);
        }
        token = next;
    }
    (ids, max, true)
}

/// At most `max` pages of a ListTasks.
async fn task_pages(
    app: &TestApp,
    token: &str,
    req: &ListTasksRequest,
    max: usize,
) -> (Vec<String>, usize, bool) {
    walk_pages(max, |page_token| {
        let req = ListTasksRequest {
            page_token,
            ..req.clone()
        };
        async move {
            let page = app
                .tasks()
                .list_tasks(authed(token, req))
                .await
                .expect("list tasks")
                .into_inner();
            (
                page.tasks.into_iter().map(|t| t.id).collect(),
                page.next_page_token,
            )
        }
    })
    .await
}

/// Every page of a ListRequirementDependencies, 1000 a page.
async fn dependency_pages(
    app: &TestApp,
    token: &str,
    id: &str,
    direction: DependencyDirection,
    transitive: bool,
) -> (Vec<String>, usize) {
    let (ids, pages, _) = walk_pages(usize::MAX, |page_token| {
        let req = ListRequirementDependenciesRequest {
            requirement_id: id.to_owned(),
            direction: direction as i32,
            transitive,
            page_size: 1000,
            page_token,
        };
        async move {
            let page = app
                .requirements()
                .list_requirement_dependencies(authed(token, req))
                .await
                .expect("list dependencies")
                .into_inner();
            let ids = page.requirements.into_iter().map(|r| r.id).collect();
            (ids, page.next_page_token)
        }
    })
    .await;
    (ids, pages)
}

/// What `start` reaches along `next` (without `start`), newest (highest
/// number) first: the order of the RPC.
fn reach(next: &HashMap<u32, Vec<u32>>, start: u32) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for &m in next.get(&n).into_iter().flatten() {
            if seen.insert(m) {
                queue.push_back(m);
            }
        }
    }
    let mut found: Vec<u32> = seen.into_iter().collect();
    found.sort_unstable_by(|a, b| b.cmp(a));
    found.into_iter().map(requirement_id).collect()
}

#[tokio::test]
async fn a_program_of_100k_tasks_and_10k_requirements_is_index_backed_and_served() {
    let app = TestApp::start().await;
    let t = &app.alice.token;
    let p = program(&app, t, "scale").await;
    let mut workstreams = Vec::new();
    for i in 0..WORKSTREAMS {
        workstreams.push(workstream(&app, t, &p.id, &format!("w{i}")).await.id);
    }
    let big = Big {
        org: format!("'{}'", app.alice.org_id),
        program: format!("'{}'", p.id),
        workstreams: workstreams.iter().map(|w| format!("'{w}'")).collect(),
    };
    let edges = seed_edges();

    let mut db = app.admin_db().await;
    let started = Instant::now();
    let counts = seed(&mut db, &big, &app.alice.user_id.to_string()).await;
    eprintln!("scale: seed {:.2?}: {counts:?}", started.elapsed());
    assert_eq!(counts[0].1, i64::from(REQUIREMENTS));
    assert_eq!(counts[2].1, edges.len() as i64);
    assert_eq!(counts[4].1, i64::from(TASKS));
    for pair in counts.chunks(2) {
        assert!(pair[1].1 >= pair[0].1, "as many noise rows: {pair:?}");
    }

    // Every store query shape, as the service runs it.
    let started = Instant::now();
    explain_as_service(&mut db, &big.org).await;
    let shapes = store_query_shapes(&big);
    for (sql, args) in &shapes {
        assert_store_query_index_backed(&mut db, sql, args).await;
    }
    eprintln!(
        "scale: EXPLAIN of {} store query shapes (custom and generic plans) {:.2?}",
        shapes.len(),
        started.elapsed()
    );
    drop(db);

    list_tasks(&app, &p.id).await;
    dependencies_plan_and_cycles(&app, &p.id, &edges).await;
}

/// ListTasks pages under filters, GetTask, ListSubtasks.
async fn list_tasks(app: &TestApp, program_id: &str) {
    let t = &app.alice.token;
    let request = |page_size: i32| ListTasksRequest {
        program_id: program_id.to_owned(),
        page_size,
        ..Default::default()
    };
    let expect = |keep: &dyn Fn(u32, &SeedTask) -> bool| -> Vec<String> {
        (0..TASKS)
            .rev()
            .filter(|&g| keep(g, &seed_task(g)))
            .map(task_id)
            .collect()
    };
    let todo = TaskStatus::Todo as i32;
    let done = TaskStatus::Done as i32;
    // (what, request, pages walked, expected in order).
    let cases = [
        ("all", request(500), 4, expect(&|_, _| true)),
        (
            "status TODO",
            ListTasksRequest {
                status: todo,
                ..request(1000)
            },
            3,
            expect(&|_, s| s.status() == domain::TaskStatus::Todo),
        ),
        (
            "assignee 7",
            ListTasksRequest {
                assignee_id: user_id(7),
                ..request(1000)
            },
            10,
            expect(&|_, s| s.assignees.contains(&7)),
        ),
        (
            "assignee 42 (second) and status DONE",
            ListTasksRequest {
                assignee_id: user_id(42),
                status: done,
                ..request(300)
            },
            10,
            expect(&|_, s| s.assignees.contains(&42) && s.status() == domain::TaskStatus::Done),
        ),
        (
            "sprint 3 and status TODO",
            ListTasksRequest {
                sprint_id: seed_uuid(SPRINT, 3),
                status: todo,
                ..request(1000)
            },
            10,
            expect(&|_, s| s.sprint == Some(3) && s.status() == domain::TaskStatus::Todo),
        ),
        (
            "requirement 5",
            ListTasksRequest {
                requirement_id: requirement_id(5),
                ..request(1000)
            },
            10,
            expect(&|_, s| s.requirement == Some(5)),
        ),
    ];
    for (what, req, pages, expected) in cases {
        let started = Instant::now();
        let (ids, walked, more) = task_pages(app, t, &req, pages).await;
        let elapsed = started.elapsed();
        assert!(!ids.is_empty(), "{what}: no tasks");
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "{what}: duplicates across pages");
        assert_eq!(more, expected.len() > ids.len(), "{what}: more pages");
        assert_eq!(ids, expected[..ids.len()], "{what}: tasks or their order");
        eprintln!(
            "scale: ListTasks {what}: {} of {} tasks in {walked} page(s) {elapsed:.2?}",
            ids.len(),
            expected.len(),
        );
    }

    // One task with neither requirement nor sprint, one with both.
    for g in [12_347, 20_000] {
        let seeded = seed_task(g);
        let task = app
            .tasks()
            .get_task(authed(t, GetTaskRequest { id: task_id(g) }))
            .await
            .expect("get task")
            .into_inner();
        assert_eq!(task.program_id, program_id);
        assert_eq!(task.status, TaskStatus::from(seeded.status()) as i32);
        let assignees: Vec<String> = seeded.assignees.iter().map(|u| user_id(*u)).collect();
        assert_eq!(task.assignee_ids, assignees);
        let requirement = seeded.requirement.map(requirement_id);
        assert_eq!(task.requirement_id, requirement.unwrap_or_default());
        let sprint = seeded.sprint.map(|s| seed_uuid(SPRINT, s.into()));
        assert_eq!(task.sprint_id, sprint.unwrap_or_default());
    }

    let subtasks = app
        .subtasks()
        .list_subtasks(authed(
            t,
            ListSubtasksRequest {
                task_id: task_id(10),
                ..Default::default()
            },
        ))
        .await
        .expect("list subtasks")
        .into_inner();
    let positions: Vec<i32> = subtasks.subtasks.iter().map(|s| s.position).collect();
    assert_eq!(positions, [1, 2, 3]);
}

/// Dependency walks, the plan, a long cycle refused and a legal edge.
async fn dependencies_plan_and_cycles(app: &TestApp, program_id: &str, edges: &[(u32, u32)]) {
    let t = &app.alice.token;
    let mut upstream: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut downstream: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(a, b) in edges {
        upstream.entry(a).or_default().push(b);
        downstream.entry(b).or_default().push(a);
    }
    let direct = |next: &HashMap<u32, Vec<u32>>, n: u32| {
        let mut v = next.get(&n).cloned().unwrap_or_default();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter().map(requirement_id).collect::<Vec<_>>()
    };
    use DependencyDirection::{Downstream, Upstream};
    // (what, requirement, direction, transitive, expected).
    let cases = [
        (
            "chain end, direct",
            CHAIN - 1,
            Upstream,
            false,
            direct(&upstream, CHAIN - 1),
        ),
        (
            "chain end, transitive",
            CHAIN - 1,
            Upstream,
            true,
            reach(&upstream, CHAIN - 1),
        ),
        (
            "last, transitive",
            REQUIREMENTS - 1,
            Upstream,
            true,
            reach(&upstream, REQUIREMENTS - 1),
        ),
        (
            "chain start, direct down",
            0,
            Downstream,
            false,
            direct(&downstream, 0),
        ),
        (
            "chain start, transitive down",
            0,
            Downstream,
            true,
            reach(&downstream, 0),
        ),
    ];
    assert_eq!(cases[1].4.len(), CHAIN as usize - 1);
    for (what, n, direction, transitive, expected) in cases {
        let started = Instant::now();
        let (ids, pages) =
            dependency_pages(app, t, &requirement_id(n), direction, transitive).await;
        eprintln!(
            "scale: ListRequirementDependencies {what}: {} requirement(s) in {pages} page(s) {:.2?}",
            ids.len(),
            started.elapsed()
        );
        assert_eq!(ids, expected, "{what}");
    }

    // The plan: every requirement once, each after what it depends on.
    let started = Instant::now();
    let plan = app
        .requirements()
        .get_program_plan(authed(
            t,
            GetProgramPlanRequest {
                program_id: program_id.to_owned(),
            },
        ))
        .await
        .expect("plan")
        .into_inner();
    eprintln!(
        "scale: GetProgramPlan of {} requirements, {} edges ({} KiB) {:.2?}",
        plan.requirements.len(),
        plan.dependency_count,
        prost::Message::encoded_len(&plan) / 1024,
        started.elapsed()
    );
    assert_eq!(plan.requirements.len(), REQUIREMENTS as usize);
    assert_eq!(plan.dependency_count as usize, edges.len());
    let at: HashMap<&str, (usize, i32)> = plan
        .requirements
        .iter()
        .enumerate()
        .map(|(i, r)| (r.requirement_id.as_str(), (i, r.level)))
        .collect();
    assert_eq!(at.len(), REQUIREMENTS as usize, "each requirement once");
    let mut listed = 0;
    for r in &plan.requirements {
        let (i, level) = at[r.requirement_id.as_str()];
        for d in &r.depends_on_ids {
            let (j, below) = at[d.as_str()];
            assert!(j < i && below < level, "{} before {d}", r.requirement_id);
            listed += 1;
        }
    }
    assert_eq!(listed, edges.len(), "every edge listed");
    for &(a, b) in edges {
        assert!(at[requirement_id(b).as_str()].0 < at[requirement_id(a).as_str()].0);
    }
    assert_eq!(at[requirement_id(CHAIN - 1).as_str()].1, CHAIN as i32 - 1);

    // The first of the chain depending on its last closes a cycle through
    // all 2,000 of it: refused, naming it.
    let started = Instant::now();
    let refused = app
        .requirements()
        .add_requirement_dependency(authed(
            t,
            AddRequirementDependencyRequest {
                requirement_id: requirement_id(0),
                depends_on_id: requirement_id(CHAIN - 1),
            },
        ))
        .await;
    eprintln!(
        "scale: AddRequirementDependency refused (cycle of {CHAIN}) {:.2?}",
        started.elapsed()
    );
    let status = assert_status(refused, Code::FailedPrecondition, "DEPENDENCY_CYCLE");
    let meta = error_metadata(&status);
    assert_eq!(meta["cycle_length"], CHAIN.to_string());
    assert_eq!(meta["cycle_truncated"], "true");
    let cycle: Vec<&str> = meta["cycle"].split(',').collect();
    let named: Vec<String> = [0]
        .into_iter()
        .chain((1..CHAIN).rev())
        .take(cycle.len())
        .map(requirement_id)
        .collect();
    assert_eq!(cycle, named);
    assert!(
        status.message().contains(&format!(
            "{} -> {} -> {} -> ... -> {} -> {}",
            requirement_id(0),
            requirement_id(CHAIN - 1),
            requirement_id(CHAIN - 2),
            requirement_id(1),
            requirement_id(0)
        )),
        "{}",
        status.message()
    );

    // A legal edge onto the last requirement, from one it does not reach:
    // the check walks all the last one depends on, and lets it pass.
    let reached: HashSet<String> = reach(&upstream, REQUIREMENTS - 1).into_iter().collect();
    let from = (0..REQUIREMENTS - 1)
        .rev()
        .find(|&n| !reached.contains(&requirement_id(n)))
        .expect("a requirement the last one does not depend on");
    let started = Instant::now();
    let added = app
        .requirements()
        .add_requirement_dependency(authed(
            t,
            AddRequirementDependencyRequest {
                requirement_id: requirement_id(from),
                depends_on_id: requirement_id(REQUIREMENTS - 1),
            },
        ))
        .await
        .expect("a legal edge")
        .into_inner();
    eprintln!(
        "scale: AddRequirementDependency accepted (walked {} requirements) {:.2?}",
        reached.len(),
        started.elapsed()
    );
    assert_eq!(added.program_id, program_id);
    assert_eq!(
        dependency_pages(app, t, &requirement_id(from), Upstream, false)
            .await
            .0[0],
        requirement_id(REQUIREMENTS - 1)
    );
}
