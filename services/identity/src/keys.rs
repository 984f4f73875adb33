//! Token signing keys and minting. Keys live in `signing_keys`; each is
//! published (JWKS) from creation, signs from `activates_at`, and is withdrawn
//! at `retires_at`, after every token it signed has expired. So a rotation
//! never produces a token a verifier cannot check: the new key is in the JWKS
//! before it signs, and verifiers refetch on an unknown `kid` anyway.
//!
//! A retired key is gone everywhere by its `retires_at`: the JWKS carries
//! it, so verifiers refuse its tokens from then on even between fetches, and
//! neither this ring nor the JWKS offers it after. A revocation retires a
//! key now. The ring is reloaded by the in-process verifier's refresh
//! ([`RingSource`]), so other replicas' rotations and revocations reach it
//! within the refresh interval; this process's own reach its verifier at
//! once ([`KeySource::knows`]).
//!
//! The private keys are stored sealed ([`foundry_keyring`], purpose
//! [`SIGNING_KEY_PURPOSE`], bound to the `kid`): the database alone cannot
//! sign. Loading reseals what an earlier version stored in plaintext or an
//! older key-encryption key sealed; a key that does not open with the
//! configured keys stops the service from starting.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use foundry_keyring::{Binding, Keyring};
use foundry_platform::Error;
use foundry_platform::db::Db;
use foundry_tenancy::jwt::{self, Claims, Expectations, PrincipalType};
use foundry_tenancy::{KeySource, PublicKey};
use uuid::Uuid;

/// Token settings.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    /// `iss` of access tokens.
    pub issuer: String,
    /// `aud` of access tokens.
    pub audience: String,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token (session) lifetime.
    pub refresh_ttl: Duration,
    /// How long a new key is published before it signs.
    pub publish_ahead: Duration,
    /// How long a replaced key stays published after the last token it
    /// signed has expired (clock skew, in-flight calls).
    pub retire_grace: Duration,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            issuer: foundry_tenancy::jwt::DEFAULT_ISSUER.into(),
            audience: foundry_tenancy::jwt::DEFAULT_AUDIENCE.into(),
            access_ttl: Duration::from_secs(300),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            publish_ahead: Duration::from_secs(60),
            retire_grace: Duration::from_secs(60),
        }
    }
}

impl TokenConfig {
    /// What verifiers of these tokens expect.
    pub fn expectations(&self) -> Expectations {
        Expectations {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_secs: 30,
        }
    }
}

#[derive(Clone, sqlx::FromRow)]
struct KeyRow {
    kid: String,
    private_key: Vec<u8>,
    public_key: Vec<u8>,
    activates_at: DateTime<Utc>,
    retires_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
struct Loaded {
    kid: String,
    signing: SigningKey,
    public: VerifyingKey,
    activates_at: DateTime<Utc>,
    retires_at: Option<DateTime<Utc>>,
}

impl Loaded {
    fn current(&self, now: DateTime<Utc>) -> bool {
        self.retires_at.is_none_or(|at| now < at)
    }
}

/// What identity's private signing keys are sealed for.
pub const SIGNING_KEY_PURPOSE: &str = "identity.signing_key";

/// The signing keys, cached from the database.
pub struct KeyRing {
    db: Db,
    config: TokenConfig,
    keyring: Keyring,
    keys: RwLock<Vec<Loaded>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").finish_non_exhaustive()
    }
}

/// What a token is minted for.
#[derive(Clone, Debug)]
pub struct Grant {
    /// Principal.
    pub sub: Uuid,
    /// Principal type.
    pub ptype: PrincipalType,
    /// Active organization.
    pub org_id: Option<Uuid>,
    /// Role there.
    pub org_role: Option<String>,
    /// Permission patterns.
    pub perms: Vec<String>,
    /// Project binding.
    pub project_id: Option<Uuid>,
    /// The resource inside the project it is bound to.
    pub resource_id: Option<Uuid>,
    /// When the credential exchanged expires, if it does: the token
    /// expires no later ([`foundry_tenancy::Limits::cap`]).
    pub expires_at: Option<chrono::DateTime<Utc>>,
    /// Session.
    pub sid: Option<Uuid>,
    /// The service a service account runs as.
    pub svc: Option<String>,
    /// Whom it acts for.
    pub obo: Option<foundry_tenancy::OnBehalfOf>,
}

impl Grant {
    /// A principal in no organization, with no permissions, no project and
    /// no session: what the other grants are made from.
    pub fn of(sub: Uuid, ptype: PrincipalType) -> Grant {
        Grant {
            sub,
            ptype,
            org_id: None,
            org_role: None,
            perms: vec![],
            project_id: None,
            resource_id: None,
            expires_at: None,
            sid: None,
            svc: None,
            obo: None,
        }
    }

    /// What a service account's token is minted for: in no organization,
    /// with its capabilities, as its service.
    pub fn service(sa: &crate::domain::ServiceAccount) -> Grant {
        Grant {
            perms: sa.fields.capabilities.clone(),
            svc: Some(sa.fields.service.clone()).filter(|s| !s.is_empty()),
            ..Grant::of(sa.id.uuid(), PrincipalType::Service)
        }
    }

    /// A user's in session `sid`, in no organization (user-scoped
    /// methods).
    pub fn user(id: Uuid, sid: Option<Uuid>) -> Grant {
        Grant {
            sid,
            ..Grant::of(id, PrincipalType::User)
        }
    }
}

impl KeyRing {
    /// Loads the keys (sealing any stored unsealed, or by an older
    /// key-encryption key, first), creating the first one if there is none.
    pub async fn load(
        db: Db,
        config: TokenConfig,
        keyring: Keyring,
    ) -> anyhow::Result<Arc<KeyRing>> {
        foundry_keyring::store::reseal_column(
            db.pool(),
            &keyring,
            SIGNING_KEY_PURPOSE,
            "signing_keys",
            "kid",
            "private_key",
        )
        .await?;
        let ring = Arc::new(KeyRing {
            db,
            config,
            keyring,
            keys: RwLock::new(Vec::new()),
        });
        ring.reload().await?;
        if ring.keys.read().map(|k| k.is_empty()).unwrap_or(true) {
            // First start: nothing can verify yet, so the key signs at once.
            ring.insert_key(ring.db.pool(), Utc::now()).await?;
            ring.reload().await?;
        }
        Ok(ring)
    }

    /// The token settings.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// Re-reads the published keys (other replicas may have rotated).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT kid, private_key, public_key, activates_at, retires_at FROM signing_keys \
             WHERE retires_at IS NULL OR retires_at > now() ORDER BY activates_at",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut loaded = Vec::with_capacity(rows.len());
        for r in rows {
            let binding = Binding {
                purpose: SIGNING_KEY_PURPOSE,
                resource: &r.kid,
            };
            let seed = self
                .keyring
                .open_array::<32>(binding, &r.private_key)
                .await
                .map_err(|e| anyhow::anyhow!("signing key {}: {e}", r.kid))?;
            let signing = SigningKey::from_bytes(&seed);
            if signing.verifying_key().as_bytes().as_slice() != r.public_key.as_slice() {
                anyhow::bail!("signing key {} does not match its public key", r.kid);
            }
            loaded.push(Loaded {
                public: signing.verifying_key(),
                signing,
                kid: r.kid,
                activates_at: r.activates_at,
                retires_at: r.retires_at,
            });
        }
        if let Ok(mut keys) = self.keys.write() {
            *keys = loaded;
        }
        Ok(())
    }

    async fn insert_key<'c, E: sqlx::PgExecutor<'c>>(
        &self,
        conn: E,
        activates_at: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let signing = SigningKey::from_bytes(&rand::random());
        let kid = Uuid::now_v7().simple().to_string();
        let binding = Binding {
            purpose: SIGNING_KEY_PURPOSE,
            resource: &kid,
        };
        let sealed = self.keyring.seal(binding, &signing.to_bytes()).await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_key, public_key, activates_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&kid)
        .bind(sealed)
        .bind(signing.verifying_key().to_bytes().to_vec())
        .bind(activates_at)
        .execute(conn)
        .await?;
        Ok(kid)
    }

    /// Starts a rotation: a new key is published now and signs after
    /// `publish_ahead`; the keys it replaces retire once their last tokens
    /// have expired. One transaction with its audit event.
    pub async fn rotate(&self, actor: &foundry_outbox::Actor) -> Result<(), Error> {
        let activates = Utc::now()
            + chrono::Duration::from_std(self.config.publish_ahead).map_err(Error::internal)?;
        let retire = activates
            + chrono::Duration::from_std(self.config.access_ttl).map_err(Error::internal)?
            + chrono::Duration::from_std(self.config.retire_grace).map_err(Error::internal)?;
        let mut tx = self.db.system().await?;
        lock_keys(&mut tx).await?;
        let kid = self
            .insert_key(&mut *tx, activates)
            .await
            .map_err(Error::internal)?;
        let retired: Vec<String> = sqlx::query_scalar(
            "UPDATE signing_keys SET retires_at = $2 WHERE kid <> $1 AND retires_at IS NULL RETURNING kid",
        )
        .bind(&kid)
        .bind(retire)
        .fetch_all(&mut *tx)
        .await?;
        actor
            .event("identity.signing_key.rotate", "identity.signing_key", &kid)
            .org(foundry_outbox::PLATFORM_ORG)
            .set("activate_time", activates)
            .set("retiring", &retired)
            .set("retire_time", retire)
            .commit(tx)
            .await?;
        self.reload().await.map_err(Error::internal)
    }

    /// Revokes key `kid` now: it retires at once (out of the JWKS; the
    /// verifier of this process drops it at once, every other one within its
    /// refresh interval). If no other key is signing, a new one signs from
    /// now on. One transaction with its audit event. `NOT_FOUND` for a key
    /// that is unknown or already retired.
    pub async fn revoke(&self, actor: &foundry_outbox::Actor, kid: &str) -> Result<(), Error> {
        let mut tx = self.db.system().await?;
        lock_keys(&mut tx).await?;
        // `now()` is the transaction's start: the key is retired as of it.
        let revoked: Option<DateTime<Utc>> = sqlx::query_scalar(
            "UPDATE signing_keys SET retires_at = now() \
             WHERE kid = $1 AND (retires_at IS NULL OR retires_at > now()) RETURNING retires_at",
        )
        .bind(kid)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(revoked) = revoked else {
            return Err(Error::not_found("SIGNING_KEY_NOT_FOUND", "signing key"));
        };
        let signing: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE activates_at <= now() \
             AND (retires_at IS NULL OR retires_at > now()))",
        )
        .fetch_one(&mut *tx)
        .await?;
        let replacement = if signing {
            None
        } else {
            // Nothing left that signs: a new key signs at once. Verifiers
            // that do not know it yet fetch it on its first token.
            Some(
                self.insert_key(&mut *tx, revoked)
                    .await
                    .map_err(Error::internal)?,
            )
        };
        actor
            .event("identity.signing_key.revoke", "identity.signing_key", kid)
            .org(foundry_outbox::PLATFORM_ORG)
            .set("retire_time", revoked)
            .set("replaced_by", &replacement)
            .commit(tx)
            .await?;
        self.reload().await.map_err(Error::internal)
    }

    /// Whether key `kid` is loaded and not retired.
    pub fn is_current(&self, kid: &str) -> bool {
        let now = Utc::now();
        self.keys
            .read()
            .map(|keys| keys.iter().any(|k| k.kid == kid && k.current(now)))
            .unwrap_or(false)
    }

    /// The keys verifiers should know: every key not yet retired, with its
    /// retirement time.
    pub fn published(&self) -> Vec<PublicKey> {
        let now = Utc::now();
        self.keys
            .read()
            .map(|keys| {
                keys.iter()
                    .filter(|k| k.current(now))
                    .map(|k| PublicKey {
                        kid: k.kid.clone(),
                        key: k.public,
                        retires_at: k.retires_at.map(|t| t.timestamp()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn signer(&self) -> Option<(String, SigningKey)> {
        let now = Utc::now();
        let keys = self.keys.read().ok()?;
        keys.iter()
            .filter(|k| k.activates_at <= now && k.current(now))
            .max_by_key(|k| k.activates_at)
            .map(|k| (k.kid.clone(), k.signing.clone()))
    }

    /// Mints an access token with the configured lifetime.
    pub fn mint(&self, grant: Grant) -> Result<(String, Claims), Error> {
        self.mint_for(grant, self.config.access_ttl)
    }

    /// Mints an access token with a chosen lifetime (development tokens).
    pub fn mint_for(&self, grant: Grant, ttl: Duration) -> Result<(String, Claims), Error> {
        let (kid, key) = self
            .signer()
            .ok_or_else(|| Error::unavailable("NO_SIGNING_KEY", "no signing key is active"))?;
        let now = Utc::now().timestamp();
        // A token inherits its credential's limits: its binding and scopes
        // as they are, its expiry at most the credential's.
        let limits = foundry_tenancy::Limits {
            binding: foundry_tenancy::Binding::of(grant.project_id, grant.resource_id),
            scopes: grant.perms,
            expires_at: grant.expires_at,
        };
        let until = DateTime::from_timestamp(now + ttl.as_secs() as i64, 0)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("token lifetime out of range")))?;
        let claims = Claims {
            iss: self.config.issuer.clone(),
            aud: self.config.audience.clone(),
            sub: grant.sub,
            iat: now,
            nbf: now,
            exp: limits.cap(until).timestamp(),
            jti: Uuid::now_v7(),
            ptype: grant.ptype,
            org_id: grant.org_id,
            org_role: grant.org_role,
            perms: limits.scopes,
            project_id: limits.binding.map(|b| b.project),
            resource_id: limits.binding.and_then(|b| b.resource),
            cexp: limits.expires_at.map(|e| e.timestamp()),
            sid: grant.sid,
            svc: grant.svc,
            obo: grant.obo,
        };
        Ok((jwt::sign(&claims, &kid, &key), claims))
    }
}

/// Serializes rotations and revocations (so two of them cannot leave no
/// key signing).
async fn lock_keys(tx: &mut foundry_platform::db::Tx) -> Result<(), Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('foundry_identity_signing_keys'))")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The in-process key source for verifiers in the same process as identity:
/// each fetch re-reads the table (so the verifier's refresh timer reloads
/// the ring too, and a rotation or revocation by another replica is seen),
/// and a key this process revoked (or made) is known at once.
#[derive(Clone, Debug)]
pub struct RingSource(pub Arc<KeyRing>);

#[async_trait]
impl KeySource for RingSource {
    async fn fetch(&self) -> anyhow::Result<Vec<PublicKey>> {
        self.0.reload().await?;
        Ok(self.0.published())
    }

    fn knows(&self, kid: &str) -> Option<bool> {
        Some(self.0.is_current(kid))
    }
}
