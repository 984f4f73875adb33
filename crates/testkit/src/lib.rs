//! The test kit: one embedded PostgreSQL cluster per test process, a fresh
//! database per test (cloned from a template migrated once, so a test costs
//! milliseconds), the real suite served in-process on `127.0.0.1:0`, and
//! callers from two organizations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod conformance;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use foundry::{Suite, SuiteConfig};
use foundry_identity::TokenConfig;
use foundry_identity::domain::Role;
use foundry_pgembed::{EmbeddedPg, PgOptions};
use foundry_platform::page::PageTokens;
use sqlx::Connection;
use tokio::sync::{Mutex, OnceCell};
use tonic::transport::Channel;
use uuid::Uuid;

pub use foundry_proto::foundry::audit::v1 as audit;
pub use foundry_proto::foundry::delivery::v1 as delivery;
pub use foundry_proto::foundry::identity::v1 as identity;
pub use tonic::Code;

struct Cluster {
    pg: EmbeddedPg,
    _dir: tempfile::TempDir,
}

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();
static CREATE_LOCK: Mutex<()> = Mutex::const_new(());
const TEMPLATE: &str = "foundry_template";

async fn cluster() -> &'static Cluster {
    CLUSTER
        .get_or_init(|| async {
            let dir = tempfile::Builder::new()
                .prefix("foundry-test-pg")
                .tempdir()
                .expect("temp dir");
            let pg = EmbeddedPg::start(PgOptions::ephemeral(dir.path()))
                .await
                .expect("start embedded PostgreSQL for tests");
            foundry::ensure_database(&pg.url("postgres"), TEMPLATE)
                .await
                .expect("template db");
            foundry::migrate(&pg.url(TEMPLATE))
                .await
                .expect("migrate template");
            Cluster { pg, _dir: dir }
        })
        .await
}

/// A new, empty database (no schemas migrated); returns its URL.
pub async fn empty_database() -> String {
    let c = cluster().await;
    let name = format!("e_{}", Uuid::now_v7().simple());
    foundry::ensure_database(&c.pg.url("postgres"), &name)
        .await
        .expect("create empty database");
    c.pg.url(&name)
}

/// A fresh, migrated database; returns its URL.
pub async fn fresh_database() -> String {
    let c = cluster().await;
    let name = format!("t_{}", Uuid::now_v7().simple());
    let _serial = CREATE_LOCK.lock().await;
    let mut admin = sqlx::PgConnection::connect(&c.pg.url("postgres"))
        .await
        .expect("admin connection");
    sqlx::query(&format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
        .execute(&mut admin)
        .await
        .expect("clone template");
    admin.close().await.ok();
    c.pg.url(&name)
}

/// The configuration tests start the suite with on `database_url`: no OIDC
/// issuers, outbox relays and audit checkpointer off, a fresh random
/// key-encryption key.
pub fn suite_config(database_url: String) -> SuiteConfig {
    SuiteConfig {
        database_url,
        page_tokens: PageTokens::random(),
        tokens: TokenConfig::default(),
        keyring: foundry_keyring::Keyring::generate(),
        jwks_refresh: foundry_tenancy::verifier::DEFAULT_REFRESH,
        max_connections: 4,
        read_path: foundry_platform::db::ReadPath::Session,
        oidc: vec![],
        audit_delivery: foundry::AuditDelivery::Off,
        audit_checkpoint_interval: None,
        request_id_retention: foundry_platform::idempotency::DEFAULT_RETENTION,
        audit_retention: foundry::RetentionPolicy::default(),
        trusted_proxy_hops: 0,
        limits: foundry_platform::load::Limits::default(),
    }
}

/// A member of an organization, with a token acting there.
#[derive(Clone, Debug)]
pub struct Member {
    /// The user.
    pub user_id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// An owner access token for that organization.
    pub token: String,
}

/// The suite served for one test.
pub struct TestApp {
    /// Where it listens.
    pub addr: SocketAddr,
    /// A channel to it.
    pub channel: Channel,
    /// The suite (for minting tokens, seeding).
    pub suite: Suite,
    /// The database URL (superuser: bypasses RLS, for assertions).
    pub database_url: String,
    /// The key-encryption keys its private signing keys are sealed with
    /// (a fresh random key per app unless the test sets one).
    pub keyring: foundry_keyring::Keyring,
    /// Owner of organization A.
    pub alice: Member,
    /// Owner of organization B.
    pub bob: Member,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestApp {
    /// Starts the suite on a fresh database with two organizations.
    pub async fn start() -> TestApp {
        Self::start_with_oidc(vec![]).await
    }

    /// [`TestApp::start`], trusting external OIDC issuers for sign-in.
    pub async fn start_with_oidc(oidc: Vec<foundry_identity::OidcProvider>) -> TestApp {
        Self::start_configured(|c| c.oidc = oidc).await
    }

    /// [`TestApp::start`] with the configuration adjusted by `adjust`
    /// (defaults: no OIDC issuers, outbox relays and audit checkpointer
    /// off).
    pub async fn start_configured(adjust: impl FnOnce(&mut SuiteConfig)) -> TestApp {
        let database_url = fresh_database().await;
        let mut config = suite_config(database_url.clone());
        adjust(&mut config);
        let keyring = config.keyring.clone();
        let suite = Suite::connect(config).await.expect("suite");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = suite.clone();
        tokio::spawn(async move {
            let _ = serving
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await;
        });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        let mut app = TestApp {
            addr,
            channel,
            suite,
            database_url,
            keyring,
            alice: placeholder(),
            bob: placeholder(),
            _shutdown: tx,
        };
        app.alice = app.new_org("alice").await;
        app.bob = app.new_org("bob").await;
        for owner in [&app.alice, &app.bob] {
            app.in_replica(owner, true).await;
        }
        app
    }

    /// Waits (at most 20 s) until delivery's membership replica has
    /// `member` as a member (`active`) or not: identity's event has come
    /// through the relay, and the member can be referenced (assigned a
    /// task, own a goal) in delivery.
    pub async fn in_replica(&self, member: &Member, active: bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut db = self.admin_db().await;
        loop {
            let now: bool = sqlx::query_scalar(
                "SELECT coalesce((SELECT active FROM delivery.members \
                                  WHERE org_id = $1 AND user_id = $2), false)",
            )
            .bind(member.org_id)
            .bind(member.user_id)
            .fetch_one(&mut db)
            .await
            .expect("read delivery's replica");
            if now == active {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{member:?} did not reach delivery's membership replica (active: {active}) within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A new user owning a new organization (slug from `name`).
    pub async fn new_org(&self, name: &str) -> Member {
        let slug = format!("{name}-{}", &Uuid::now_v7().simple().to_string()[20..]);
        let dev = self
            .suite
            .identity
            .create_user_with_org(&format!("{slug}@example.com"), name, &slug)
            .await
            .expect("seed org");
        Member {
            user_id: dev.user_id,
            org_id: dev.org_id,
            token: self.token(dev.user_id, Some(dev.org_id), Some(Role::Owner)),
        }
    }

    /// A new user who is a member of `org` with `role`, once delivery's
    /// membership replica has it (so delivery takes it as an assignee or
    /// owner); returns a token.
    pub async fn new_member(&self, org: &Member, role: Role) -> Member {
        let email = format!("m-{}@example.com", Uuid::now_v7().simple());
        let user_id = self
            .suite
            .identity
            .create_user(&email, "Member")
            .await
            .expect("user");
        self.suite
            .identity
            .add_member(org.org_id, user_id, role)
            .await
            .expect("member");
        let member = Member {
            user_id,
            org_id: org.org_id,
            token: self.token(user_id, Some(org.org_id), Some(role)),
        };
        self.in_replica(&member, true).await;
        member
    }

    /// Mints an access token.
    pub fn token(&self, user_id: Uuid, org_id: Option<Uuid>, role: Option<Role>) -> String {
        self.suite
            .identity
            .mint_member_token(user_id, org_id, role, Duration::from_secs(300))
            .expect("mint")
    }

    /// A new service account running as `identity` and holding every
    /// capability, and an access token for it: the caller of internal
    /// methods (`SCOPE_INTERNAL`) in tests of those methods.
    pub async fn service_token(&self) -> String {
        self.service_token_with("identity", foundry_identity::domain::CAPABILITIES)
            .await
    }

    /// A new service account running as `service` and holding only
    /// `capabilities`, and an access token for it.
    pub async fn service_token_with(&self, service: &str, capabilities: &[&str]) -> String {
        let name = format!("svc-{}", Uuid::now_v7().simple());
        let (id, _key) = self
            .suite
            .identity
            .create_service_account(&name, "tests", service, capabilities)
            .await
            .expect("service account");
        self.suite
            .identity
            .mint_service_token(id, Duration::from_secs(300))
            .await
            .expect("mint")
    }

    /// Creates `key` (an API key or agent token) as the caller of
    /// `creator_token` and exchanges it: the key as created (its secret
    /// shown) and an access token acting as it.
    pub async fn key_and_token(
        &self,
        creator_token: &str,
        key: identity::ApiKey,
    ) -> (identity::ApiKey, String) {
        let created = self
            .api_keys()
            .create_api_key(authed(
                creator_token,
                identity::CreateApiKeyRequest {
                    api_key: Some(key),
                    request_id: String::new(),
                },
            ))
            .await
            .expect("create key")
            .into_inner();
        let grant = if created.kind == identity::ApiKeyKind::Agent as i32 {
            identity::exchange_token_request::Grant::AgentToken(created.secret.clone())
        } else {
            identity::exchange_token_request::Grant::ApiKey(created.secret.clone())
        };
        let token = self
            .auth()
            .exchange_token(identity::ExchangeTokenRequest {
                grant: Some(grant),
                org_id: String::new(),
            })
            .await
            .expect("exchange key")
            .into_inner()
            .access_token;
        (created, token)
    }

    /// The superuser connection (bypasses RLS), for assertions on rows.
    pub async fn admin_db(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.database_url)
            .await
            .expect("admin db")
    }

    /// Organization client.
    pub fn orgs(
        &self,
    ) -> identity::organization_service_client::OrganizationServiceClient<Channel> {
        identity::organization_service_client::OrganizationServiceClient::new(self.channel.clone())
    }
    /// Membership client.
    pub fn members(&self) -> identity::membership_service_client::MembershipServiceClient<Channel> {
        identity::membership_service_client::MembershipServiceClient::new(self.channel.clone())
    }
    /// Auth client.
    pub fn auth(&self) -> identity::auth_service_client::AuthServiceClient<Channel> {
        identity::auth_service_client::AuthServiceClient::new(self.channel.clone())
    }
    /// API key client.
    pub fn api_keys(&self) -> identity::api_key_service_client::ApiKeyServiceClient<Channel> {
        identity::api_key_service_client::ApiKeyServiceClient::new(self.channel.clone())
    }
    /// Invitation client.
    pub fn invitations(
        &self,
    ) -> identity::invitation_service_client::InvitationServiceClient<Channel> {
        identity::invitation_service_client::InvitationServiceClient::new(self.channel.clone())
    }
    /// User client.
    pub fn users(&self) -> identity::user_service_client::UserServiceClient<Channel> {
        identity::user_service_client::UserServiceClient::new(self.channel.clone())
    }
    /// Service account client (internal callers only).
    pub fn service_accounts(
        &self,
    ) -> identity::service_account_service_client::ServiceAccountServiceClient<Channel> {
        identity::service_account_service_client::ServiceAccountServiceClient::new(
            self.channel.clone(),
        )
    }
    /// Audit log client.
    pub fn audit(&self) -> audit::audit_service_client::AuditServiceClient<Channel> {
        audit::audit_service_client::AuditServiceClient::new(self.channel.clone())
    }
    /// Audit ingest client (internal callers only: see [`TestApp::service_token`]).
    pub fn audit_ingest(
        &self,
    ) -> audit::audit_ingest_service_client::AuditIngestServiceClient<Channel> {
        audit::audit_ingest_service_client::AuditIngestServiceClient::new(self.channel.clone())
    }
    /// Program client.
    pub fn programs(&self) -> delivery::program_service_client::ProgramServiceClient<Channel> {
        delivery::program_service_client::ProgramServiceClient::new(self.channel.clone())
    }
    /// Workstream client.
    pub fn workstreams(
        &self,
    ) -> delivery::workstream_service_client::WorkstreamServiceClient<Channel> {
        delivery::workstream_service_client::WorkstreamServiceClient::new(self.channel.clone())
    }
    /// Requirement client (requirements, their dependency graph, the plan).
    pub fn requirements(
        &self,
    ) -> delivery::requirement_service_client::RequirementServiceClient<Channel> {
        delivery::requirement_service_client::RequirementServiceClient::new(self.channel.clone())
    }
    /// Task client.
    pub fn tasks(&self) -> delivery::task_service_client::TaskServiceClient<Channel> {
        delivery::task_service_client::TaskServiceClient::new(self.channel.clone())
    }
    /// Subtask client.
    pub fn subtasks(&self) -> delivery::subtask_service_client::SubtaskServiceClient<Channel> {
        delivery::subtask_service_client::SubtaskServiceClient::new(self.channel.clone())
    }

    pub fn risks(&self) -> delivery::risk_service_client::RiskServiceClient<Channel> {
        delivery::risk_service_client::RiskServiceClient::new(self.channel.clone())
    }

    pub fn sprints(&self) -> delivery::sprint_service_client::SprintServiceClient<Channel> {
        delivery::sprint_service_client::SprintServiceClient::new(self.channel.clone())
    }

    pub fn sprint_gates(
        &self,
    ) -> delivery::sprint_gate_service_client::SprintGateServiceClient<Channel> {
        delivery::sprint_gate_service_client::SprintGateServiceClient::new(self.channel.clone())
    }

    /// Goal client.
    pub fn goals(&self) -> delivery::goal_service_client::GoalServiceClient<Channel> {
        delivery::goal_service_client::GoalServiceClient::new(self.channel.clone())
    }

    /// Work order client.
    pub fn work_orders(
        &self,
    ) -> delivery::work_order_service_client::WorkOrderServiceClient<Channel> {
        delivery::work_order_service_client::WorkOrderServiceClient::new(self.channel.clone())
    }

    /// Feature client.
    pub fn features(&self) -> delivery::feature_service_client::FeatureServiceClient<Channel> {
        delivery::feature_service_client::FeatureServiceClient::new(self.channel.clone())
    }

    /// Planner phase client.
    pub fn planner_phases(
        &self,
    ) -> delivery::planner_phase_service_client::PlannerPhaseServiceClient<Channel> {
        delivery::planner_phase_service_client::PlannerPhaseServiceClient::new(self.channel.clone())
    }
}

fn placeholder() -> Member {
    Member {
        user_id: Uuid::nil(),
        org_id: Uuid::nil(),
        token: String::new(),
    }
}

/// A request carrying a bearer token.
pub fn authed<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    req
}

/// Asserts a status code and `ErrorInfo.reason`; returns the status.
pub fn assert_status<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    code: Code,
    reason: &str,
) -> tonic::Status {
    use tonic_types::StatusExt;
    let status = r.expect_err("expected an error");
    assert_eq!(status.code(), code, "status: {status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("every error carries ErrorInfo");
    assert_eq!(info.reason, reason, "status: {status:?}");
    assert_eq!(info.domain, "foundry.dev");
    status
}

/// The field names of a `BadRequest`.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// Shared handle type, for helpers taking the app.
pub type App = Arc<TestApp>;
