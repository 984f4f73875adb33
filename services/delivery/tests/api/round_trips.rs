//! What a mutation sends to PostgreSQL, read off the wire: the suite's
//! pools connect through a proxy that parses the frontend protocol, so each
//! round trip (a `Sync` or a simple `Query`, answered by `ReadyForQuery`)
//! is recorded with the statements it executed and how long the database
//! took to answer it (from the proxy forwarding it to the proxy receiving
//! `ReadyForQuery`, on loopback). The pool's pings are round trips with no
//! statement. The tests pin how many round trips the task mutations take,
//! and `cargo nextest run -p foundry-delivery round_trips --no-capture`
//! prints each one's list.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foundry_testkit::delivery::*;
use foundry_testkit::{TestApp, authed};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{mask, member, new_task, program, rid};

/// One round trip.
#[derive(Clone, Debug)]
struct Trip {
    /// The connection (numbered as the proxy accepted them).
    conn: usize,
    /// The frontend's write it came in (messages written together are
    /// one round trip: sqlx sends a queued `ROLLBACK` with a ping).
    write: u64,
    /// The statements executed, in order; none for a ping.
    statements: Vec<String>,
    /// Statements prepared (`Parse`) in this trip.
    prepared: usize,
    /// The SQLSTATE of an error answered, if any.
    error: Option<String>,
    /// From the proxy forwarding the trip to `ReadyForQuery`.
    micros: u64,
}

impl Trip {
    /// The pool's ping, alone.
    fn is_ping(&self) -> bool {
        self.statements.is_empty() && self.prepared == 0
    }

    /// The pool's ping as it takes the connection back, with a `ROLLBACK`
    /// queued before it if any: after the call's response.
    fn is_release(&self) -> bool {
        self.prepared == 0 && self.statements.iter().all(|s| s == "ROLLBACK")
    }

    fn label(&self) -> String {
        let s = if self.is_ping() {
            "(ping: Sync alone)".to_owned()
        } else if self.is_release() {
            "ROLLBACK (queued) and the pool's ping, one write".to_owned()
        } else if self.statements.is_empty() {
            "(prepare)".to_owned()
        } else {
            self.statements
                .iter()
                .map(|s| shorten(s))
                .collect::<Vec<_>>()
                .join(" ⟶ ")
        };
        match &self.error {
            Some(code) => format!("{s} [error {code}]"),
            None => s,
        }
    }
}

/// A statement as one line, each of its parts (a simple query's
/// statements) at most 100 characters.
fn shorten(sql: &str) -> String {
    sql.split(";\n")
        .map(|part| {
            let one: String = part.split_whitespace().collect::<Vec<_>>().join(" ");
            match one.char_indices().nth(100) {
                Some((i, _)) => format!("{}…", &one[..i]),
                None => one,
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Per connection: what the frontend has sent and the server not yet
/// answered.
#[derive(Default)]
struct Conn {
    prepared: HashMap<String, String>,
    bound: String,
    batch: Vec<String>,
    parsed: usize,
    pending: VecDeque<(Instant, u64, Vec<String>, usize)>,
    writes: u64,
    error: Option<String>,
}

#[derive(Clone, Default)]
struct Tracer {
    trips: Arc<Mutex<Vec<Trip>>>,
}

fn cstr(b: &[u8]) -> (String, &[u8]) {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    (
        String::from_utf8_lossy(&b[..end]).into_owned(),
        b.get(end + 1..).unwrap_or(&[]),
    )
}

impl Tracer {
    /// Listens on loopback; returns the URL that reaches `url` through it.
    fn start(&self, url: &str) -> String {
        let at = url.find('@').expect("url has credentials") + 1;
        let slash = at + url[at..].find('/').expect("url has a database");
        let upstream = url[at..slash].to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let local = listener.local_addr().expect("addr");
        let listener = TcpListener::from_std(listener).expect("tokio listener");
        let tracer = self.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((client, _)) = listener.accept().await {
                n += 1;
                let server = TcpStream::connect(&upstream).await.expect("upstream");
                tokio::spawn(tracer.clone().relay(n, client, server));
            }
        });
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{}{local}{}{sep}sslmode=disable", &url[..at], &url[slash..])
    }

    async fn relay(self, id: usize, client: TcpStream, server: TcpStream) {
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let conn = Mutex::new(Conn::default());
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        let mut started = false;
        let up = pump(cr, sw, |buf| frontend(&conn, buf, &mut started));
        let down = pump(sr, cw, |buf| self.backend(id, &conn, buf));
        tokio::join!(up, down);
    }

    /// Takes the server's complete messages off `buf`: each
    /// `ReadyForQuery` ends the oldest pending trip.
    fn backend(&self, id: usize, conn: &Mutex<Conn>, buf: &mut Vec<u8>) {
        let mut at = 0;
        while buf.len() >= at + 5 {
            let len = u32::from_be_bytes(buf[at + 1..at + 5].try_into().unwrap()) as usize;
            if buf.len() < at + 1 + len {
                break;
            }
            let (tag, body) = (buf[at], &buf[at + 5..at + 1 + len]);
            let mut c = conn.lock().unwrap();
            match tag {
                b'E' => {
                    let mut fields = body;
                    while let Some((&f, rest)) = fields.split_first() {
                        if f == 0 {
                            break;
                        }
                        let (value, rest) = cstr(rest);
                        if f == b'C' {
                            c.error = Some(value);
                        }
                        fields = rest;
                    }
                }
                b'Z' => {
                    if let Some((sent, write, statements, prepared)) = c.pending.pop_front() {
                        let error = c.error.take();
                        let micros = sent.elapsed().as_micros() as u64;
                        let mut trips = self.trips.lock().unwrap();
                        match trips.iter_mut().rev().find(|t| t.conn == id) {
                            // The same round trip as the last answered.
                            Some(t) if t.write == write => {
                                t.statements.extend(statements);
                                t.prepared += prepared;
                                t.error = t.error.take().or(error);
                                t.micros = micros;
                            }
                            _ => trips.push(Trip {
                                conn: id,
                                write,
                                statements,
                                prepared,
                                error,
                                micros,
                            }),
                        }
                    }
                }
                _ => {}
            }
            at += 1 + len;
        }
        buf.drain(..at);
    }

    fn mark(&self) -> usize {
        self.trips.lock().unwrap().len()
    }

    /// The trips since `from` of the transactions of `org` (their
    /// connection's ping before and after, their statements), once the
    /// pool's release pings are in.
    async fn since(&self, from: usize, org: uuid::Uuid) -> Vec<Trip> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let trips = self.trips.lock().unwrap()[from..].to_vec();
        let begin = format!("app.org_id = '{org}'");
        let ends = |t: &Trip| {
            t.statements
                .iter()
                .any(|s| s == "COMMIT" || s == "ROLLBACK" || s.ends_with("COMMIT; BEGIN"))
        };
        let mut out = Vec::new();
        for (i, t) in trips.iter().enumerate() {
            if !t.statements.iter().any(|s| s.contains(&begin)) {
                continue;
            }
            let on: Vec<&Trip> = trips.iter().filter(|u| u.conn == t.conn).collect();
            let at = on.iter().position(|u| std::ptr::eq(*u, &trips[i])).unwrap();
            let mut end = at;
            while end + 1 < on.len() && !ends(on[end]) {
                end += 1;
            }
            let start = if at > 0 && on[at - 1].is_ping() {
                at - 1
            } else {
                at
            };
            let end = if end + 1 < on.len() && on[end + 1].is_release() {
                end + 1
            } else {
                end
            };
            out.extend(on[start..=end].iter().map(|u| (*u).clone()));
        }
        out
    }
}

/// Copies `from` to `to`, showing what came to `parse` first (its
/// complete messages it takes off the buffer).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut parse: impl FnMut(&mut Vec<u8>),
) {
    let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 64 * 1024]);
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        parse(&mut buf);
        if to.write_all(&chunk[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Takes the frontend's complete messages off `buf`.
fn frontend(conn: &Mutex<Conn>, buf: &mut Vec<u8>, started: &mut bool) {
    let mut at = 0;
    let mut c = conn.lock().unwrap();
    c.writes += 1;
    let write = c.writes;
    loop {
        if !*started {
            // The startup message: no tag.
            if buf.len() < at + 4 {
                break;
            }
            let len = u32::from_be_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            if buf.len() < at + len {
                break;
            }
            *started = true;
            c.pending
                .push_back((Instant::now(), write, vec!["(startup)".into()], 0));
            at += len;
            continue;
        }
        if buf.len() < at + 5 {
            break;
        }
        let len = u32::from_be_bytes(buf[at + 1..at + 5].try_into().unwrap()) as usize;
        if buf.len() < at + 1 + len {
            break;
        }
        let (tag, body) = (buf[at], &buf[at + 5..at + 1 + len]);
        match tag {
            b'Q' => {
                let (sql, _) = cstr(body);
                c.pending.push_back((Instant::now(), write, vec![sql], 0));
            }
            b'P' => {
                let (name, rest) = cstr(body);
                let (sql, _) = cstr(rest);
                c.prepared.insert(name, sql);
                c.parsed += 1;
            }
            b'B' => {
                let (_portal, rest) = cstr(body);
                let (name, _) = cstr(rest);
                c.bound = c.prepared.get(&name).cloned().unwrap_or(name);
            }
            b'E' => {
                let s = c.bound.clone();
                c.batch.push(s);
            }
            b'S' => {
                let (batch, parsed) = (std::mem::take(&mut c.batch), std::mem::take(&mut c.parsed));
                c.pending.push_back((Instant::now(), write, batch, parsed));
            }
            _ => {}
        }
        at += 1 + len;
    }
    buf.drain(..at);
}

/// The suite, its pools connected through a [`Tracer`].
async fn traced() -> (TestApp, Tracer) {
    let tracer = Tracer::default();
    let t = tracer.clone();
    let app = TestApp::start_configured(move |c| c.database_url = t.start(&c.database_url)).await;
    (app, tracer)
}

/// The server's own time per statement, when the cluster runs
/// `pg_stat_statements` (`FOUNDRY_PG_SETTINGS=shared_preload_libraries=pg_stat_statements`):
/// reset by [`measure`] before its runs, printed after them.
struct Stats(Option<sqlx::PgConnection>);

impl Stats {
    async fn open(app: &TestApp) -> Stats {
        let mut db = app.admin_db().await;
        let on = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(&mut db)
            .await
            .is_ok()
            && sqlx::query("SELECT pg_stat_statements_reset()")
                .execute(&mut db)
                .await
                .is_ok();
        Stats(on.then_some(db))
    }

    async fn reset(&mut self) {
        if let Some(db) = &mut self.0 {
            sqlx::query("SELECT pg_stat_statements_reset()")
                .execute(db)
                .await
                .expect("reset");
        }
    }

    /// Statements run `runs` times or more (the measured call's), with
    /// their mean execution time, how many times they were planned and
    /// the mean planning time, in µs.
    async fn print(&mut self, runs: usize) {
        let Some(db) = &mut self.0 else { return };
        let rows: Vec<(String, i64, f64, i64, f64)> = sqlx::query_as(
            "SELECT query, calls, mean_exec_time * 1000, plans, mean_plan_time * 1000 \
             FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid \
             WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND r.rolname = 'foundry_delivery' AND calls >= $1 ORDER BY calls DESC, query",
        )
        .bind(runs as i64)
        .fetch_all(db)
        .await
        .expect("pg_stat_statements");
        println!("| statement (server) | calls | exec µs | plans | plan µs |");
        println!("| --- | --- | --- | --- | --- |");
        for (q, calls, exec, plans, plan) in rows {
            println!(
                "| {} | {calls} | {exec:.0} | {plans} | {plan:.0} |",
                shorten(&q)
            );
        }
    }
}

/// Runs `call` `runs` times (after two unmeasured runs that prepare its
/// statements) and returns the trips of the last run, each with the median
/// time of its position over the runs.
async fn measure<F, Fut>(
    what: &str,
    (tracer, stats): (&Tracer, &mut Stats),
    org: uuid::Uuid,
    runs: usize,
    mut call: F,
) -> Vec<Trip>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..2 {
        call(i).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    stats.reset().await;
    let mut all: Vec<Vec<Trip>> = Vec::new();
    let mut calls = Vec::new();
    for i in 0..runs {
        let from = tracer.mark();
        let t = Instant::now();
        call(2 + i).await;
        calls.push(t.elapsed());
        all.push(tracer.since(from, org).await);
    }
    calls.sort_unstable();
    let mut last = all.last().cloned().unwrap_or_default();
    for (n, trip) in last.iter_mut().enumerate() {
        let mut times: Vec<u64> = all
            .iter()
            .filter(|r| r.len() == all[all.len() - 1].len())
            .map(|r| r[n].micros)
            .collect();
        times.sort_unstable();
        trip.micros = times[times.len() / 2];
    }
    print(what, &last);
    println!(
        "the call, as its client saw it: {:?} (median)",
        calls[runs / 2]
    );
    stats.print(runs).await;
    last
}

fn print(what: &str, trips: &[Trip]) {
    println!("\n{what}: {} round trips", trips.len());
    println!("| # | statement(s) | µs (median) |");
    println!("| --- | --- | --- |");
    for (i, t) in trips.iter().enumerate() {
        println!("| {} | {} | {} |", i + 1, t.label(), t.micros);
    }
}

/// Of a call's trips, those on its critical path: all but the pool's ping
/// on release (after the response is on its way), and what sqlx queued
/// before it.
fn in_call(trips: &[Trip]) -> usize {
    match trips.last() {
        Some(t) if t.is_release() => trips.len() - 1,
        _ => trips.len(),
    }
}

/// The task mutations measured.
#[derive(Clone, Copy, Debug)]
enum Mutation {
    Create,
    CreateWithRequestId,
    CreateAssigned,
    UpdateTitle,
    UpdateAssignees,
    ChangeStatus,
}

/// What the mutations act on: a program, a task in it, a member to assign.
struct Subjects {
    program: String,
    task: String,
    member: String,
}

/// The `i`th call of mutation `m`, as alice.
async fn mutate(app: &TestApp, s: &Subjects, m: Mutation, i: usize) {
    use Mutation::*;
    let (token, mut tasks) = (&app.alice.token, app.tasks());
    let assignees = || match i % 2 {
        0 => vec![s.member.clone()],
        _ => vec![],
    };
    match m {
        Create | CreateWithRequestId | CreateAssigned => {
            let mut r = new_task(&s.program, &format!("Task {i}"));
            match m {
                CreateWithRequestId => r.request_id = rid(),
                CreateAssigned => r.task.as_mut().unwrap().assignee_ids = vec![s.member.clone()],
                _ => {}
            }
            tasks.create_task(authed(token, r)).await.expect("create");
        }
        UpdateTitle | UpdateAssignees => {
            let (title, assignee_ids, path) = match m {
                UpdateTitle => (format!("Title {i}"), vec![], "title"),
                _ => (String::new(), assignees(), "assignee_ids"),
            };
            let task = Task {
                id: s.task.clone(),
                title,
                assignee_ids,
                ..Default::default()
            };
            let r = UpdateTaskRequest {
                task: Some(task),
                update_mask: mask(&[path]),
            };
            tasks.update_task(authed(token, r)).await.expect("update");
        }
        ChangeStatus => {
            let to = [TaskStatus::Todo, TaskStatus::Backlog][i % 2];
            let r = ChangeTaskStatusRequest {
                id: s.task.clone(),
                status: to as i32,
                ..Default::default()
            };
            tasks
                .change_task_status(authed(token, r))
                .await
                .expect("status");
        }
    }
}

#[tokio::test]
async fn task_mutations_take_the_round_trips_they_need() {
    let (app, tracer) = traced().await;
    let token = &app.alice.token;
    let p = program(&app, token, "trips").await;
    let subjects = Subjects {
        task: crate::task(&app, token, &p.id, "Updated").await.id,
        member: member(&app).await,
        program: p.id,
    };
    let mut stats = Stats::open(&app).await;
    // Each mutation and the round trips on its call's path: the pool's ping
    // on release (and the ROLLBACK queued before it) come after the
    // response, and a connection in use a moment ago is not pinged before.
    let expected = [
        ("CreateTask", Mutation::Create, 3),
        (
            "CreateTask with a request_id",
            Mutation::CreateWithRequestId,
            4,
        ),
        ("CreateTask with an assignee", Mutation::CreateAssigned, 6),
        ("UpdateTask (title)", Mutation::UpdateTitle, 4),
        ("UpdateTask (assignee_ids)", Mutation::UpdateAssignees, 6),
        ("ChangeTaskStatus", Mutation::ChangeStatus, 4),
    ];
    // More runs for steadier times: ROUND_TRIP_RUNS=101.
    let runs = std::env::var("ROUND_TRIP_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let mut counts = Vec::new();
    for (what, m, _) in expected {
        let (app, subjects) = (&app, &subjects);
        let trips = measure(what, (&tracer, &mut stats), app.alice.org_id, runs, |i| {
            mutate(app, subjects, m, i)
        })
        .await;
        counts.push((what, in_call(&trips)));
    }
    assert_eq!(counts, expected.map(|(what, _, n)| (what, n)));
}
