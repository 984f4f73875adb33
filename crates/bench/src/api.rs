//! The API scenarios, each measured beside its baselines in the same run:
//!
//! - the suite as deployed (gRPC, request tracing, tenancy layer, handler,
//!   PostgreSQL with row-level security);
//! - the same handlers with the tenancy layer replaced by a fixed caller
//!   (tenancy off), and the layer's own `admit` timed in process;
//! - the framework ceiling ([`crate::ceiling`]): bare tonic, same messages;
//! - the database ceiling ([`crate::pgbench`]): the handler's statements,
//!   taken from the server as one call ran ([`crate::capture`]), prepared,
//!   as the service's role;
//! - for the reads, the same handler on a full tenant transaction per read
//!   (`--db-read-path transaction`, the read path before one round trip);
//! - for the Gets, a second load generator in its own process
//!   ([`crate::h2load`]);
//!
//! then the same Get/List/Create at a small and a large table (seeded with
//! COPY), a token exchange, a 90/10 read/write mix over many organizations,
//! and, when Envoy is installed, the HTTP/JSON gateway against native gRPC.

use std::sync::Arc;
use std::time::{Duration, Instant};

use foundry::AuditDelivery;
use foundry_platform::db::ReadPath;
use foundry_proto::foundry::delivery::v1 as dpb;
use foundry_proto::foundry::identity::v1 as ipb;
use serde::Serialize;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::capture::{self, Shape};
use crate::ceiling::{self, Replies};
use crate::env::{Env, Tenant, authed, channel, serve_without_tenancy};
use crate::load::{self, Mode, Summary};
use crate::pgbench::{self, Target};
use crate::seed::{self, ORG, TASK};

/// The scenarios, each runnable alone (`--scenario`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Identity `GetOrganization` beside its baselines.
    GetOrganization,
    /// Delivery `GetTask` beside its baselines.
    GetTask,
    /// Delivery `ListTasks`, a page of 50, beside its baselines.
    ListTasks,
    /// Delivery `CreateTask` (with its outbox write) beside its baselines.
    CreateTask,
    /// Delivery `UpdateTask` (a title, with its outbox write) beside its
    /// baselines.
    UpdateTask,
    /// `ExchangeToken` with an API key.
    ExchangeToken,
    /// 90/10 reads/writes over many organizations.
    Mixed,
    /// The tenancy layer's `admit`, in process.
    Tenancy,
    /// Get/List/Create at the small and the large table.
    Scale,
    /// HTTP/JSON through Envoy against native gRPC.
    Gateway,
}

/// Knobs.
#[derive(Clone, Debug)]
pub struct Params {
    /// What to run (empty: everything).
    pub scenarios: Vec<Scenario>,
    /// Concurrent callers (and pgbench clients).
    pub concurrency: usize,
    /// Measured time per scenario.
    pub duration: Duration,
    /// Discarded time before it.
    pub warmup: Duration,
    /// Rows per table for the side-by-side runs and the small scale.
    pub small: u64,
    /// Rows per table at the large scale.
    pub large: u64,
    /// Organizations in the mixed workload.
    pub mixed_orgs: usize,
    /// Tasks seeded per organization of the mixed workload.
    pub mixed_tasks: u64,
    /// Calls of the in-process tenancy micro-benchmark.
    pub admit_calls: u32,
    /// Envoy, for the gateway comparison (skipped when `None`).
    pub envoy: Option<std::path::PathBuf>,
    /// h2load, the second load generator (skipped when `None`).
    pub h2load: Option<std::path::PathBuf>,
}

impl Params {
    fn wants(&self, s: Scenario) -> bool {
        self.scenarios.is_empty() || self.scenarios.contains(&s)
    }
}

/// One scenario beside its baselines.
#[derive(Debug, Serialize)]
pub struct SideBySide {
    /// The suite as deployed.
    pub suite: Summary,
    /// The same handler with each read a full tenant transaction (reads).
    pub full_transaction: Option<Summary>,
    /// Tenancy layer off.
    pub no_tenancy: Option<Summary>,
    /// Bare tonic, same message.
    pub framework: Option<Summary>,
    /// pgbench, the handler's SQL.
    pub database: Option<Summary>,
    /// The suite under h2load, from a process of its own (Gets).
    pub h2load: Option<Summary>,
    /// The handler's read alone, in process, no gRPC: `Db::read` and the
    /// store's statement through sqlx (Gets), the driver's side of the
    /// database ceiling.
    pub store: Option<Summary>,
    /// The statements one call sends, as the server logged them (a
    /// pipeline of a simple query's statements counts once).
    pub statements: Option<usize>,
}

impl SideBySide {
    /// The serial ceiling: the framework's cost plus the database's, one
    /// after the other (1 / (1 / bare tonic + 1 / pgbench) calls/s).
    pub fn ceiling(&self) -> Option<f64> {
        let (f, d) = (self.framework.as_ref()?, self.database.as_ref()?);
        (f.throughput > 0.0 && d.throughput > 0.0)
            .then(|| 1.0 / (1.0 / f.throughput + 1.0 / d.throughput))
    }

    /// Every row, the suite's first.
    pub fn rows(&self) -> impl Iterator<Item = &Summary> {
        std::iter::once(&self.suite).chain(
            [
                &self.full_transaction,
                &self.no_tenancy,
                &self.framework,
                &self.database,
                &self.h2load,
                &self.store,
            ]
            .into_iter()
            .flatten(),
        )
    }
}

/// A scenario at both scales.
#[derive(Debug, Serialize)]
pub struct Growth {
    /// At `small` rows.
    pub small: Summary,
    /// At `large` rows.
    pub large: Summary,
}

/// The tenancy layer timed alone, in process (nanoseconds).
#[derive(Debug, Serialize)]
pub struct Admit {
    /// Calls timed per case.
    pub calls: u64,
    /// A token seen before (its verified claims are cached): median.
    pub cached_p50_ns: u64,
    /// The same, 99th percentile.
    pub cached_p99_ns: u64,
    /// A token never seen (full signature verification against the cached
    /// keys): median.
    pub fresh_p50_ns: u64,
    /// The same, 99th percentile.
    pub fresh_p99_ns: u64,
    /// The Ed25519 signature check alone (`verify_strict` over a
    /// token-sized input), the floor of a never-seen token: median.
    pub ed25519_verify_p50_ns: u64,
}

/// The gateway against native gRPC, same call, same callers.
#[derive(Debug, Serialize)]
pub struct Gateway {
    /// gRPC straight to the suite.
    pub native_grpc: Summary,
    /// gRPC through Envoy (proxy cost alone).
    pub grpc_via_envoy: Summary,
    /// HTTP/JSON through Envoy's transcoder.
    pub http_via_envoy: Summary,
}

/// Everything measured (a scenario not run is `None`).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Callers.
    pub concurrency: usize,
    /// Tasks in the table at the small scale.
    pub tasks_small: i64,
    /// Organizations at the small scale.
    pub orgs_small: i64,
    /// Tasks at the large scale.
    pub tasks_large: Option<i64>,
    /// Organizations at the large scale.
    pub orgs_large: Option<i64>,
    /// Side by side, at the small scale.
    pub get_organization: Option<SideBySide>,
    /// GetTask.
    pub get_task: Option<SideBySide>,
    /// ListTasks, a page of 50.
    pub list_tasks: Option<SideBySide>,
    /// CreateTask with its outbox write.
    pub create_task: Option<SideBySide>,
    /// UpdateTask with its outbox write.
    pub update_task: Option<SideBySide>,
    /// API key → access token.
    pub exchange_token: Option<Summary>,
    /// 90/10 over many organizations.
    pub mixed: Option<Summary>,
    /// The tenancy layer alone.
    pub admit: Option<Admit>,
    /// Growth from small to large: GetOrganization over seeded orgs,
    /// GetTask, ListTasks, CreateTask.
    pub growth: Vec<Growth>,
    /// Envoy, when installed.
    pub gateway: Option<Gateway>,
}

/// The calls a scenario makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    /// The caller's own organization.
    GetOwnOrganization,
    /// A random seeded organization.
    GetSeededOrganization,
    GetTask,
    ListTasks,
    CreateTask,
    UpdateTask,
}

/// What callers need to know.
struct Ctx {
    tenant: Tenant,
    program: Uuid,
    /// Seeded tasks `task_base..task_base + tasks`.
    task_base: u64,
    tasks: u64,
    /// Tokens for seeded organizations, by seed number.
    seeded_orgs: Vec<(u64, String)>,
}

impl Ctx {
    /// The seeded task the call of index `i` reads or updates.
    fn task(&self, i: u64) -> Uuid {
        seed::id(TASK, self.task_base + mix(i) % self.tasks.max(1))
    }
}

/// A cheap deterministic scramble of the call index (splitmix64).
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Clone)]
struct Clients {
    orgs: ipb::organization_service_client::OrganizationServiceClient<Channel>,
    tasks: dpb::task_service_client::TaskServiceClient<Channel>,
}

impl Clients {
    fn new(ch: &Channel) -> Clients {
        Clients {
            orgs: ipb::organization_service_client::OrganizationServiceClient::new(ch.clone()),
            tasks: dpb::task_service_client::TaskServiceClient::new(ch.clone()),
        }
    }
}

fn new_task(program: Uuid, i: u64) -> dpb::CreateTaskRequest {
    dpb::CreateTaskRequest {
        task: Some(dpb::Task {
            program_id: program.to_string(),
            title: format!("Benchmark task {i}"),
            description: "Created by the benchmark.".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

async fn call(mut c: Clients, ctx: Arc<Ctx>, kind: Call, i: u64) -> anyhow::Result<()> {
    let token = &ctx.tenant.token;
    match kind {
        Call::GetOwnOrganization => {
            c.orgs
                .get_organization(authed(
                    token,
                    ipb::GetOrganizationRequest {
                        id: ctx.tenant.org.to_string(),
                    },
                )?)
                .await?;
        }
        Call::GetSeededOrganization => {
            let (n, token) = &ctx.seeded_orgs[(mix(i) % ctx.seeded_orgs.len() as u64) as usize];
            c.orgs
                .get_organization(authed(
                    token,
                    ipb::GetOrganizationRequest {
                        id: seed::id(ORG, *n).to_string(),
                    },
                )?)
                .await?;
        }
        Call::GetTask => {
            c.tasks
                .get_task(authed(
                    token,
                    dpb::GetTaskRequest {
                        id: ctx.task(i).to_string(),
                    },
                )?)
                .await?;
        }
        Call::ListTasks => {
            let page = c
                .tasks
                .list_tasks(authed(
                    token,
                    dpb::ListTasksRequest {
                        program_id: ctx.program.to_string(),
                        page_size: 50,
                        ..Default::default()
                    },
                )?)
                .await?
                .into_inner();
            anyhow::ensure!(page.tasks.len() == 50, "a page of {}", page.tasks.len());
        }
        Call::CreateTask => {
            c.tasks
                .create_task(authed(token, new_task(ctx.program, i))?)
                .await?;
        }
        Call::UpdateTask => {
            c.tasks
                .update_task(authed(token, retitle(ctx.task(i), i))?)
                .await?;
        }
    }
    Ok(())
}

/// UpdateTask of one field, the title (no etag: last writer wins).
fn retitle(id: Uuid, i: u64) -> dpb::UpdateTaskRequest {
    dpb::UpdateTaskRequest {
        task: Some(dpb::Task {
            id: id.to_string(),
            title: format!("Benchmark task {i}"),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["title".into()],
        }),
    }
}

struct Run<'a> {
    p: &'a Params,
}

impl Run<'_> {
    async fn closed(&self, name: &str, ch: &Channel, ctx: &Arc<Ctx>, kind: Call) -> Summary {
        let (clients, ctx) = (Clients::new(ch), ctx.clone());
        load::run(
            name,
            Mode::Closed(self.p.concurrency),
            self.p.warmup,
            self.p.duration,
            move |i| call(clients.clone(), ctx.clone(), kind, i),
        )
        .await
    }

    async fn pgbench(
        &self,
        t: &Target,
        name: &str,
        script: &pgbench::Script,
    ) -> anyhow::Result<Summary> {
        pgbench::run(
            t,
            name,
            script,
            self.p.concurrency,
            self.p.warmup,
            self.p.duration,
        )
        .await
    }
}

/// A Get's read alone: the handler's `Db::read` and the store's
/// statement, through sqlx, from as many tasks as callers, in process.
async fn store_read(env: &Env, ctx: &Arc<Ctx>, kind: Call, run: &Run<'_>, name: &str) -> Summary {
    use foundry_domain::Id;
    use foundry_platform::db::Lock;
    use foundry_resource::read;
    let (identity, delivery) = (
        env.suite.identity.db().clone(),
        env.suite.delivery.db().clone(),
    );
    let ctx = ctx.clone();
    load::run(
        &format!("{name}, store alone"),
        Mode::Closed(run.p.concurrency),
        run.p.warmup,
        run.p.duration,
        move |i| {
            let (identity, delivery, ctx) = (identity.clone(), delivery.clone(), ctx.clone());
            async move {
                let org = ctx.tenant.org;
                let found = if kind == Call::GetTask {
                    let id = ctx.task(i);
                    let mut conn = delivery.read(org).await?;
                    read::<foundry_delivery::domain::Task>(
                        &mut conn,
                        org,
                        Id::from_uuid(id),
                        Lock::None,
                    )
                    .await?
                    .is_some()
                } else {
                    let mut conn = identity.read(org).await?;
                    read::<foundry_identity::domain::Organization>(&mut conn, org, org, Lock::None)
                        .await?
                        .is_some()
                };
                anyhow::ensure!(found, "not found");
                Ok(())
            }
        },
    )
    .await
}

/// A Get under h2load: one request body (h2load sends the same one each
/// time), first sent once through tonic, where it must succeed.
async fn h2load_get(
    bin: &std::path::Path,
    env: &Env,
    ctx: &Arc<Ctx>,
    kind: Call,
    p: &Params,
) -> anyhow::Result<Summary> {
    let base = format!("http://{}", env.addr);
    let token = ctx.tenant.token.as_str();
    let mut c = Clients::new(&env.channel);
    let run = |name: &'static str, path: &'static str, body: Vec<u8>| async move {
        let call = crate::h2load::Call {
            base,
            path,
            token,
            body,
        };
        crate::h2load::run(bin, name, &call, p.concurrency, p.warmup, p.duration).await
    };
    if kind == Call::GetTask {
        let req = dpb::GetTaskRequest {
            id: seed::id(TASK, ctx.task_base).to_string(),
        };
        c.tasks.get_task(authed(token, req.clone())?).await?;
        run(
            "GetTask, h2load",
            "/foundry.delivery.v1.TaskService/GetTask",
            prost::Message::encode_to_vec(&req),
        )
        .await
    } else {
        let req = ipb::GetOrganizationRequest {
            id: ctx.tenant.org.to_string(),
        };
        c.orgs.get_organization(authed(token, req.clone())?).await?;
        run(
            "GetOrganization, h2load",
            "/foundry.identity.v1.OrganizationService/GetOrganization",
            prost::Message::encode_to_vec(&req),
        )
        .await
    }
}

/// Creates a program through the API.
async fn program(ch: &Channel, t: &Tenant, slug: &str) -> anyhow::Result<Uuid> {
    let mut programs = dpb::program_service_client::ProgramServiceClient::new(ch.clone());
    let p = programs
        .create_program(authed(
            &t.token,
            dpb::CreateProgramRequest {
                program: Some(dpb::Program {
                    name: format!("Benchmark {slug}"),
                    slug: slug.to_owned(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        )?)
        .await?
        .into_inner();
    Ok(p.id.parse()?)
}

/// Tokens acting in `k` seeded organizations spread over `0..n`.
fn seeded_tokens(env: &Env, user: Uuid, n: u64, k: u64) -> anyhow::Result<Vec<(u64, String)>> {
    (0..k)
        .map(|j| {
            let s = mix(j ^ n) % n.max(1);
            Ok((s, env.owner_token(user, seed::id(ORG, s))?))
        })
        .collect()
}

/// Runs the selected scenarios.
pub async fn run(p: &Params) -> anyhow::Result<Report> {
    let env = Env::start(AuditDelivery::Off).await?;
    let url = env.database_url.clone();
    let target = Target::new(&url)?;
    let run = Run { p };
    let tenant = env
        .orgs(1)
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no tenant"))?;
    let program_id = program(&env.channel, &tenant, "scale").await?;
    let mut report = Report {
        concurrency: p.concurrency,
        ..Default::default()
    };

    // Small scale.
    let started = Instant::now();
    seed::tasks(&url, tenant.org, program_id, tenant.user, 0..p.small).await?;
    let existing = seed::count(&url, "identity.organizations").await? as u64;
    let orgs_seeded_small = p.small.saturating_sub(existing);
    seed::organizations(&url, 0..orgs_seeded_small).await?;
    seed::analyze(&url).await?;
    tracing::info!(rows = p.small, elapsed = ?started.elapsed(), "seeded the small scale");
    report.tasks_small = seed::count(&url, "delivery.tasks").await?;
    report.orgs_small = seed::count(&url, "identity.organizations").await?;
    let ctx = Arc::new(Ctx {
        tenant: tenant.clone(),
        program: program_id,
        task_base: 0,
        tasks: p.small,
        seeded_orgs: seeded_tokens(&env, tenant.user, orgs_seeded_small, 256)?,
    });

    // The framework ceiling returns copies of real responses.
    let mut c = Clients::new(&env.channel);
    let replies = Replies {
        organization: c
            .orgs
            .get_organization(authed(
                &tenant.token,
                ipb::GetOrganizationRequest {
                    id: tenant.org.to_string(),
                },
            )?)
            .await?
            .into_inner(),
        task: c
            .tasks
            .get_task(authed(
                &tenant.token,
                dpb::GetTaskRequest {
                    id: seed::id(TASK, 0).to_string(),
                },
            )?)
            .await?
            .into_inner(),
        tasks: c
            .tasks
            .list_tasks(authed(
                &tenant.token,
                dpb::ListTasksRequest {
                    program_id: program_id.to_string(),
                    page_size: 50,
                    ..Default::default()
                },
            )?)
            .await?
            .into_inner(),
    };
    let (ceiling_addr, _stop_ceiling) = ceiling::serve(replies).await?;
    let framework = channel(ceiling_addr).await?;
    let (bare_addr, _stop_bare) = serve_without_tenancy(&env.suite, &tenant.token).await?;
    let bare = channel(bare_addr).await?;
    let suite = &env.channel;

    let (org, user, program) = (
        tenant.org.to_string(),
        tenant.user.to_string(),
        program_id.to_string(),
    );
    // The task the call of index 0 names.
    let task0 = ctx.task(0).to_string();
    let random_task = || Shape {
        vary: [(task0.clone(), seed::id_sql(TASK, ":i"))].into(),
        prelude: format!("\\set i random(0, {})\n", p.small.max(1) - 1),
        ..Shape::default()
    };
    let sides = [
        (
            Scenario::GetOrganization,
            "GetOrganization",
            Call::GetOwnOrganization,
            Shape {
                needle: org.clone(),
                ..Shape::default()
            },
        ),
        (
            Scenario::GetTask,
            "GetTask",
            Call::GetTask,
            Shape {
                needle: task0.clone(),
                ..random_task()
            },
        ),
        (
            Scenario::ListTasks,
            "ListTasks",
            Call::ListTasks,
            Shape {
                needle: program.clone(),
                ..Shape::default()
            },
        ),
        (
            Scenario::CreateTask,
            "CreateTask",
            Call::CreateTask,
            Shape {
                needle: program.clone(),
                ..Shape::default()
            },
        ),
        (
            Scenario::UpdateTask,
            "UpdateTask",
            Call::UpdateTask,
            Shape {
                needle: task0.clone(),
                ..random_task()
            },
        ),
    ];
    for (scenario, name, kind, mut shape) in sides {
        if !p.wants(scenario) {
            continue;
        }
        let (schema, service) = match kind {
            Call::GetOwnOrganization => ("identity", "foundry-identity"),
            _ => ("delivery", "foundry-delivery"),
        };
        shape.application = service.into();
        shape.keep = vec![org.clone(), user.clone(), program.clone()];
        let reads = matches!(
            kind,
            Call::GetOwnOrganization | Call::GetTask | Call::ListTasks
        );
        // The statements of one call (index 0), after one call that sets a
        // read connection to the organization.
        let first = || call(Clients::new(suite), ctx.clone(), kind, 0);
        first().await?;
        let captured = match &env.capture {
            Some(c) => Some(c.around(&shape, first()).await?.1),
            None => {
                tracing::warn!("DATABASE_URL set: no statement log, so no pgbench run");
                None
            }
        };
        let database = match &captured {
            Some(statements) => {
                let (text, vars) = capture::script(statements, &shape);
                tracing::info!(scenario = name, script = %text, "pgbench script");
                let script = pgbench::Script {
                    schema,
                    org: tenant.org,
                    text,
                    vars,
                };
                Some(
                    run.pgbench(&target, &format!("{name}, pgbench"), &script)
                        .await?,
                )
            }
            None => None,
        };
        let suite_row = run.closed(name, suite, &ctx, kind).await;
        let full_transaction = if reads {
            env.suite.set_read_path(ReadPath::Transaction);
            let s = run
                .closed(
                    &format!("{name}, full tenant transaction"),
                    suite,
                    &ctx,
                    kind,
                )
                .await;
            env.suite.set_read_path(ReadPath::Session);
            Some(s)
        } else {
            None
        };
        let h2load = match (&p.h2load, kind) {
            (Some(bin), Call::GetOwnOrganization | Call::GetTask) => {
                Some(h2load_get(bin, &env, &ctx, kind, p).await?)
            }
            _ => None,
        };
        let store = match kind {
            Call::GetOwnOrganization | Call::GetTask => {
                Some(store_read(&env, &ctx, kind, &run, name).await)
            }
            _ => None,
        };
        let side = SideBySide {
            store,
            suite: suite_row,
            full_transaction,
            no_tenancy: Some(
                run.closed(&format!("{name}, tenancy off"), &bare, &ctx, kind)
                    .await,
            ),
            framework: Some(
                run.closed(&format!("{name}, bare tonic"), &framework, &ctx, kind)
                    .await,
            ),
            database,
            h2load,
            statements: captured.map(|c| c.len()),
        };
        let slot = match scenario {
            Scenario::GetOrganization => &mut report.get_organization,
            Scenario::GetTask => &mut report.get_task,
            Scenario::ListTasks => &mut report.list_tasks,
            Scenario::UpdateTask => &mut report.update_task,
            _ => &mut report.create_task,
        };
        *slot = Some(side);
    }
    if p.wants(Scenario::Tenancy) {
        report.admit = Some(admit(&env, &tenant, p.admit_calls).await?);
    }
    if p.wants(Scenario::ExchangeToken) {
        report.exchange_token = Some(exchange(&env, &tenant, &run).await?);
    }
    if p.wants(Scenario::Mixed) {
        report.mixed = Some(mixed(&env, &run).await?);
    }
    if p.wants(Scenario::Gateway) {
        match &p.envoy {
            Some(bin) => report.gateway = Some(crate::gateway::run(&env, bin, &tenant, p).await?),
            None => tracing::warn!("Envoy not found: the gateway comparison is skipped"),
        }
    }

    if p.wants(Scenario::Scale) {
        // The same calls at the small scale, then the same program and
        // tables grown to the large one.
        let growth = [
            ("GetOrganization (seeded orgs)", Call::GetSeededOrganization),
            ("GetTask", Call::GetTask),
            ("ListTasks", Call::ListTasks),
            ("CreateTask", Call::CreateTask),
        ];
        let mut small = vec![];
        for (name, kind) in growth {
            small.push(
                run.closed(&format!("{name} @ {}", p.small), suite, &ctx, kind)
                    .await,
            );
        }
        let started = Instant::now();
        seed::tasks(&url, tenant.org, program_id, tenant.user, p.small..p.large).await?;
        seed::organizations(&url, orgs_seeded_small..p.large.saturating_sub(existing)).await?;
        seed::analyze(&url).await?;
        tracing::info!(rows = p.large, elapsed = ?started.elapsed(), "seeded the large scale");
        report.tasks_large = Some(seed::count(&url, "delivery.tasks").await?);
        report.orgs_large = Some(seed::count(&url, "identity.organizations").await?);
        let ctx_large = Arc::new(Ctx {
            tenant: tenant.clone(),
            program: program_id,
            task_base: 0,
            tasks: p.large,
            seeded_orgs: seeded_tokens(&env, tenant.user, p.large.saturating_sub(existing), 256)?,
        });
        for ((name, kind), small) in growth.into_iter().zip(small) {
            let large = run
                .closed(&format!("{name} @ {}", p.large), suite, &ctx_large, kind)
                .await;
            report.growth.push(Growth { small, large });
        }
    }
    env.stop().await?;
    Ok(report)
}

/// The tenancy layer's `admit` (bearer parsing, token verification
/// with cached keys, method look-up, permission check), timed call by call
/// in process: with a token it has seen (the verified-claims cache hits, as
/// for a client's every call after its first) and with tokens it has not
/// (every call verifies an Ed25519 signature).
async fn admit(env: &Env, t: &Tenant, calls: u32) -> anyhow::Result<Admit> {
    let tenancy = env.suite.tenancy.clone();
    let path = "/foundry.delivery.v1.TaskService/GetTask";
    let headers = |token: &str| -> anyhow::Result<http::HeaderMap> {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
        Ok(h)
    };
    // Fresh tokens, minted before the clock starts (at most the verifier's
    // cache capacity, so none is evicted before use).
    let fresh = (0..calls.min(10_000))
        .map(|_| headers(&env.owner_token(t.user, t.org)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cached = headers(&t.token)?;
    let time = |h: &mut hdrhistogram::Histogram<u64>, start: Instant| {
        let _ = h.record((start.elapsed().as_nanos() as u64).max(1));
    };
    let new = || hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3);
    let (mut hot, mut cold) = (new()?, new()?);
    for _ in 0..calls {
        let start = Instant::now();
        let caller = tenancy.admit(path, &cached, Uuid::now_v7()).await?;
        time(&mut hot, start);
        anyhow::ensure!(caller.is_some(), "admitted without a caller");
    }
    for h in &fresh {
        let start = Instant::now();
        let caller = tenancy.admit(path, h, Uuid::now_v7()).await?;
        time(&mut cold, start);
        anyhow::ensure!(caller.is_some(), "admitted without a caller");
    }
    // The signature primitive alone, over an input the size of a token's.
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let input = t
        .token
        .rsplit_once('.')
        .map_or(t.token.as_str(), |(i, _)| i);
    let signature = ed25519_dalek::Signer::sign(&key, input.as_bytes());
    let verifying = key.verifying_key();
    let mut primitive = new()?;
    for _ in 0..calls.min(10_000) {
        let start = Instant::now();
        verifying.verify_strict(input.as_bytes(), &signature)?;
        time(&mut primitive, start);
    }
    Ok(Admit {
        ed25519_verify_p50_ns: primitive.value_at_quantile(0.5),
        calls: hot.len(),
        cached_p50_ns: hot.value_at_quantile(0.5),
        cached_p99_ns: hot.value_at_quantile(0.99),
        fresh_p50_ns: cold.value_at_quantile(0.5),
        fresh_p99_ns: cold.value_at_quantile(0.99),
    })
}

/// ExchangeToken: an API key for an access token (hash look-up, key
/// checks, signing), as programs acting for an organization do.
async fn exchange(env: &Env, t: &Tenant, run: &Run<'_>) -> anyhow::Result<Summary> {
    let mut keys = ipb::api_key_service_client::ApiKeyServiceClient::new(env.channel.clone());
    let key = keys
        .create_api_key(authed(
            &t.token,
            ipb::CreateApiKeyRequest {
                api_key: Some(ipb::ApiKey {
                    kind: ipb::ApiKeyKind::ApiKey as i32,
                    display_name: "benchmark".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        )?)
        .await?
        .into_inner();
    let auth = ipb::auth_service_client::AuthServiceClient::new(env.channel.clone());
    let secret = Arc::new(key.secret);
    let s = load::run(
        "ExchangeToken (API key)",
        Mode::Closed(run.p.concurrency),
        run.p.warmup,
        run.p.duration,
        move |_| {
            let (mut auth, secret) = (auth.clone(), secret.clone());
            async move {
                let r = auth
                    .exchange_token(ipb::ExchangeTokenRequest {
                        grant: Some(ipb::exchange_token_request::Grant::ApiKey(
                            secret.as_ref().clone(),
                        )),
                        org_id: String::new(),
                    })
                    .await?
                    .into_inner();
                anyhow::ensure!(!r.access_token.is_empty(), "no token");
                Ok(())
            }
        },
    )
    .await;
    Ok(s)
}

/// 90% reads (GetTask and ListTasks alternately), 10% CreateTask, each
/// call by a random one of many organizations, each with its own program.
async fn mixed(env: &Env, run: &Run<'_>) -> anyhow::Result<Summary> {
    let p = run.p;
    let tenants = env.orgs(p.mixed_orgs).await?;
    let mut ctxs = vec![];
    for (k, t) in tenants.into_iter().enumerate() {
        let program = program(&env.channel, &t, "mixed").await?;
        // Ids past any scale's range: the tasks' key is (org, id), but
        // distinct ids keep every lookup unambiguous for a reader.
        let base = 1 << 40 | (k as u64) << 20;
        seed::tasks(
            &env.database_url,
            t.org,
            program,
            t.user,
            base..base + p.mixed_tasks,
        )
        .await?;
        ctxs.push(Arc::new(Ctx {
            tenant: t,
            program,
            task_base: base,
            tasks: p.mixed_tasks,
            seeded_orgs: vec![],
        }));
    }
    seed::analyze(&env.database_url).await?;
    let ctxs = Arc::new(ctxs);
    let clients = Clients::new(&env.channel);
    let s = load::run(
        "Mixed 90/10, many orgs",
        Mode::Closed(p.concurrency),
        p.warmup,
        p.duration,
        move |i| {
            let r = mix(i);
            let ctx = ctxs[(r % ctxs.len() as u64) as usize].clone();
            let kind = match (r >> 32) % 10 {
                0 => Call::CreateTask,
                k if k % 2 == 1 => Call::ListTasks,
                _ => Call::GetTask,
            };
            call(clients.clone(), ctx, kind, i)
        },
    )
    .await;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_spreads_indices() {
        let buckets = (0..10_000u64).fold([0u32; 10], |mut b, i| {
            b[(mix(i) % 10) as usize] += 1;
            b
        });
        assert!(
            buckets.iter().all(|&n| (800..1200).contains(&n)),
            "{buckets:?}"
        );
    }
}
