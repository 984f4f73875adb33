//! The split deployment's processes for the end-to-end tests: each
//! service binary configured by environment over one database, as
//! `crates/foundry/tests/binaries.rs` and `telemetry.rs` run them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use foundry_identity::{Identity, TokenConfig};
use foundry_platform::db::Db;
use foundry_platform::page::PageTokens;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use super::free_port;

/// The key-encryption key this test process's services share, as an
/// operator would configure it (`FOUNDRY_KEY_ENCRYPTION_KEY`).
pub fn kek() -> &'static str {
    static KEK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEK.get_or_init(|| {
        foundry_keyring::LocalKek::generate()
            .to_base64()
            .to_string()
    })
}

/// Identity over the split deployment's database, as the tests' seed: it
/// makes users and mints their tokens with the keys the processes use.
pub async fn seed(url: &str) -> Identity {
    Identity::new(
        Db::connect(url, foundry_identity::SCHEMA, 2).await.unwrap(),
        TokenConfig::default(),
        PageTokens::random(),
        vec![],
        foundry_keyring::parse(kek()).unwrap(),
    )
    .await
    .unwrap()
}

/// Identity serving (without an audit endpoint), and audit starting on
/// `audit_port`, verifying tokens with identity's keys; `env` for both.
pub async fn identity_and_audit(
    url: &str,
    audit_port: u16,
    env: &[(&str, String)],
) -> (Proc, Proc) {
    let mut identity = spawn(
        env!("CARGO_BIN_EXE_foundry-identity"),
        "foundry-identity",
        free_port(),
        &[env, &[("DATABASE_URL", url.to_owned())]].concat(),
    );
    identity.ready("foundry.identity.v1.AuthService").await;
    let audit = spawn(
        env!("CARGO_BIN_EXE_foundry-audit"),
        "foundry-audit",
        audit_port,
        &[
            env,
            &[
                ("DATABASE_URL", url.to_owned()),
                ("FOUNDRY_IDENTITY_ENDPOINT", identity.endpoint()),
            ],
        ]
        .concat(),
    );
    (identity, audit)
}

/// A five-minute token of `user` as the owner of `org`.
pub fn owner_token(seed: &Identity, user: uuid::Uuid, org: uuid::Uuid) -> String {
    seed.mint_member_token(
        user,
        Some(org),
        Some(foundry_identity::domain::Role::Owner),
        Duration::from_secs(300),
    )
    .unwrap()
}

/// A service process, killed if the test fails before stopping it.
pub struct Proc {
    pub child: Child,
    pub port: u16,
    pub name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub fn spawn(exe: &str, name: &'static str, port: u16, env: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(exe);
    cmd.env("FOUNDRY_LISTEN", format!("127.0.0.1:{port}"))
        .env("FOUNDRY_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .env("FOUNDRY_KEY_ENCRYPTION_KEY", kek())
        .env_remove("FOUNDRY_AUDIT_ENDPOINT")
        .arg("--migrate")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc {
        child: cmd.spawn().unwrap(),
        port,
        name,
    }
}

impl Proc {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until the process serves; returns a channel to it.
    pub async fn ready(&mut self, service: &str) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(c) = Channel::from_shared(self.endpoint())
                .unwrap()
                .connect()
                .await
            {
                let health = HealthClient::new(c.clone())
                    .check(HealthCheckRequest {
                        service: service.into(),
                    })
                    .await;
                if health.is_ok_and(|h| h.into_inner().status == ServingStatus::Serving as i32) {
                    return c;
                }
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "{} exited early",
                self.name
            );
            assert!(Instant::now() < deadline, "{} did not serve", self.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then the exit status; asserts a clean exit.
    pub async fn stop(mut self) {
        assert!(
            Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "{} ignored SIGTERM", self.name);
            // An async sleep: our client connections must keep being driven
            // to see the server's GOAWAY and close, as a real client would.
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(status.success(), "{} exit status {status:?}", self.name);
    }
}

/// Identity, audit and delivery as separate processes, delivery's relay
/// delivering to audit with the key of `--create-relay-account delivery`,
/// identity's to audit and to delivery (its membership events); `env` for
/// each, and `delivery_env` for delivery too.
pub struct Split {
    pub identity: Proc,
    pub audit: Proc,
    pub delivery: Proc,
    /// Identity over the same database, to make users and tokens.
    pub seed: Identity,
}

impl Split {
    pub async fn start(
        url: &str,
        env: &[(&str, String)],
        delivery_env: &[(&str, String)],
    ) -> Split {
        let (audit_port, delivery_port) = (free_port(), free_port());
        let delivery_endpoint = format!("http://127.0.0.1:{delivery_port}");
        let identity_env = [env, &[("FOUNDRY_DELIVERY_ENDPOINT", delivery_endpoint)]].concat();
        let (identity, audit) = identity_and_audit(url, audit_port, &identity_env).await;
        let seed = seed(url).await;
        // The operator's command for the relay's account, as the README says.
        let made = Command::new(env!("CARGO_BIN_EXE_foundry-identity"))
            .env("DATABASE_URL", url)
            .env("FOUNDRY_KEY_ENCRYPTION_KEY", kek())
            .args(["--create-relay-account", "delivery"])
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        let key = String::from_utf8(made.stdout).unwrap().trim().to_owned();
        assert!(key.starts_with("fnd_svc_"), "{key}");
        let delivery = spawn(
            env!("CARGO_BIN_EXE_foundry-delivery"),
            "foundry-delivery",
            delivery_port,
            &[
                env,
                delivery_env,
                &[
                    ("DATABASE_URL", url.to_owned()),
                    ("FOUNDRY_IDENTITY_ENDPOINT", identity.endpoint()),
                    (
                        "FOUNDRY_AUDIT_ENDPOINT",
                        format!("http://127.0.0.1:{audit_port}"),
                    ),
                    ("FOUNDRY_SERVICE_ACCOUNT_KEY", key),
                ],
            ]
            .concat(),
        );
        Split {
            identity,
            audit,
            delivery,
            seed,
        }
    }

    /// Waits until delivery serves; makes an organization `slug` and its
    /// owner: a channel to delivery, the two, and the owner's token.
    pub async fn delivery_owner(
        &mut self,
        slug: &str,
    ) -> (Channel, foundry_identity::DevBootstrap, String) {
        let channel = self
            .delivery
            .ready("foundry.delivery.v1.ProgramService")
            .await;
        let dev = self
            .seed
            .create_user_with_org(&format!("{slug}@example.com"), slug, slug)
            .await
            .unwrap();
        let owner = owner_token(&self.seed, dev.user_id, dev.org_id);
        (channel, dev, owner)
    }

    /// Stops delivery, audit and identity in turn (SIGTERM), asserting
    /// clean exits.
    pub async fn stop(self) {
        self.delivery.stop().await;
        self.audit.stop().await;
        self.identity.stop().await;
    }
}
