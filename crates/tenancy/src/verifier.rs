//! Local verification of access tokens against the identity service's
//! published keys, cached. No database and no network per call: keys are
//! fetched at start-up and again only when a token names an unknown `kid`
//! (rate-limited, so a flood of forged `kid`s cannot hammer identity).
//! Verified tokens are remembered until they expire, so a busy client pays
//! for one signature check per token, not per call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use ed25519_dalek::VerifyingKey;

use crate::jwt::{self, Claims, Expectations, TokenError};

/// A published public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// Key id.
    pub kid: String,
    /// The key.
    pub key: VerifyingKey,
}

/// Where a verifier gets the published keys: in process from the identity
/// service, or over gRPC (`AuthService/GetJwks`) in a split deployment.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// The currently published keys.
    async fn fetch(&self) -> anyhow::Result<Vec<PublicKey>>;
}

/// Verifies access tokens.
pub struct Verifier {
    expect: Expectations,
    keys: ArcSwap<HashMap<String, VerifyingKey>>,
    source: Arc<dyn KeySource>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refetch: Duration,
    cache: Mutex<HashMap<String, Arc<Claims>>>,
}

const CACHE_CAP: usize = 16_384;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("expect", &self.expect)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier; call [`Verifier::refresh`] once before serving.
    pub fn new(expect: Expectations, source: Arc<dyn KeySource>) -> Self {
        Self {
            expect,
            keys: ArcSwap::from_pointee(HashMap::new()),
            source,
            last_fetch: tokio::sync::Mutex::new(None),
            min_refetch: Duration::from_secs(5),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the minimum interval between two key fetches caused by unknown
    /// `kid`s.
    pub fn with_min_refetch(mut self, interval: Duration) -> Self {
        self.min_refetch = interval;
        self
    }

    /// What the verifier accepts.
    pub fn expectations(&self) -> &Expectations {
        &self.expect
    }

    /// Fetches the published keys now.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let mut last = self.last_fetch.lock().await;
        self.fetch_locked(&mut last).await
    }

    async fn fetch_locked(&self, last: &mut Option<Instant>) -> anyhow::Result<()> {
        *last = Some(Instant::now());
        let keys = self.source.fetch().await?;
        let map: HashMap<_, _> = keys.into_iter().map(|k| (k.kid, k.key)).collect();
        self.keys.store(Arc::new(map));
        Ok(())
    }

    /// Verifies a token at the current time.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        let now = now_unix();
        if let Some(hit) = self.cached(token) {
            jwt::check_claims(&hit, &self.expect, now)?;
            return Ok(hit);
        }
        let unverified = jwt::decode_header(token)?;
        let key = match self.keys.load().get(&unverified.kid) {
            Some(k) => *k,
            None => self
                .refetch_for(&unverified.kid)
                .await
                .ok_or(TokenError::UnknownKey)?,
        };
        let claims = Arc::new(unverified.verify(&key, &self.expect, now)?);
        self.remember(token, &claims, now);
        Ok(claims)
    }

    async fn refetch_for(&self, kid: &str) -> Option<VerifyingKey> {
        let mut last = self.last_fetch.lock().await;
        // Another caller may have fetched while we waited for the lock.
        if let Some(k) = self.keys.load().get(kid) {
            return Some(*k);
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refetch) {
            return None;
        }
        if let Err(e) = self.fetch_locked(&mut last).await {
            tracing::warn!(error = %format!("{e:#}"), "fetching signing keys failed");
            return None;
        }
        self.keys.load().get(kid).copied()
    }

    fn cached(&self, token: &str) -> Option<Arc<Claims>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(token).cloned()
    }

    fn remember(&self, token: &str, claims: &Arc<Claims>, now: i64) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAP {
            // Drop what expired; if that is not enough, start over. Tokens
            // live minutes, so a full reset costs one verify per live token.
            cache.retain(|_, c| c.exp >= now);
            if cache.len() >= CACHE_CAP {
                cache.clear();
            }
        }
        cache.insert(token.to_owned(), claims.clone());
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fixed set of keys (tests, tools).
#[derive(Clone, Debug, Default)]
pub struct StaticKeys(pub Vec<PublicKey>);

#[async_trait]
impl KeySource for StaticKeys {
    async fn fetch(&self) -> anyhow::Result<Vec<PublicKey>> {
        Ok(self.0.clone())
    }
}

/// Keys fetched from the identity service's `GetJwks` over gRPC.
#[derive(Clone, Debug)]
pub struct GrpcKeySource {
    channel: tonic::transport::Channel,
}

impl GrpcKeySource {
    /// Fetches from identity at `channel`.
    pub fn new(channel: tonic::transport::Channel) -> Self {
        Self { channel }
    }
}

#[async_trait]
impl KeySource for GrpcKeySource {
    async fn fetch(&self) -> anyhow::Result<Vec<PublicKey>> {
        use foundry_proto::foundry::identity::v1::GetJwksRequest;
        use foundry_proto::foundry::identity::v1::auth_service_client::AuthServiceClient;
        let jwks = AuthServiceClient::new(self.channel.clone())
            .get_jwks(GetJwksRequest {})
            .await?
            .into_inner();
        Ok(jwks
            .keys
            .into_iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519" && k.alg == "EdDSA")
            .filter_map(|k| {
                Some(PublicKey {
                    key: jwt::verifying_key_from_x(&k.x)?,
                    kid: k.kid,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::PrincipalType;
    use ed25519_dalek::SigningKey;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use uuid::Uuid;

    struct Counting {
        keys: std::sync::Mutex<Vec<PublicKey>>,
        fetches: AtomicUsize,
    }

    #[async_trait]
    impl KeySource for Counting {
        async fn fetch(&self) -> anyhow::Result<Vec<PublicKey>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            Ok(self.keys.lock().expect("lock").clone())
        }
    }

    fn claims() -> Claims {
        let now = now_unix();
        Claims {
            iss: "i".into(),
            aud: "a".into(),
            sub: Uuid::now_v7(),
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: Uuid::now_v7(),
            ptype: PrincipalType::User,
            org_id: None,
            org_role: None,
            perms: vec![],
            project_id: None,
            sid: None,
            svc: None,
            obo: None,
        }
    }

    fn expect() -> Expectations {
        Expectations {
            issuer: "i".into(),
            audience: "a".into(),
            leeway_secs: 0,
        }
    }

    #[tokio::test]
    async fn an_unknown_kid_triggers_one_rate_limited_refetch() {
        let k1 = SigningKey::from_bytes(&rand::random());
        let k2 = SigningKey::from_bytes(&rand::random());
        let source = Arc::new(Counting {
            keys: std::sync::Mutex::new(vec![PublicKey {
                kid: "k1".into(),
                key: k1.verifying_key(),
            }]),
            fetches: AtomicUsize::new(0),
        });
        let v = Verifier::new(expect(), source.clone()).with_min_refetch(Duration::from_secs(60));
        v.refresh().await.expect("refresh");
        assert!(v.verify(&jwt::sign(&claims(), "k1", &k1)).await.is_ok());
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

        // A new key published after start-up: not yet known. The refresh at
        // start-up was just now, so the rate limit refuses a refetch.
        source.keys.lock().expect("lock").push(PublicKey {
            kid: "k2".into(),
            key: k2.verifying_key(),
        });
        let t2 = jwt::sign(&claims(), "k2", &k2);
        assert_eq!(v.verify(&t2).await.err(), Some(TokenError::UnknownKey));
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

        let v = Verifier::new(expect(), source.clone()).with_min_refetch(Duration::ZERO);
        assert!(v.verify(&t2).await.is_ok(), "unknown kid refetches");
        for _ in 0..10 {
            assert!(v.verify(&jwt::sign(&claims(), "nope", &k2)).await.is_err());
        }
    }

    #[tokio::test]
    async fn a_cached_token_still_expires() {
        let k = SigningKey::from_bytes(&rand::random());
        let v = Verifier::new(
            expect(),
            Arc::new(StaticKeys(vec![PublicKey {
                kid: "k".into(),
                key: k.verifying_key(),
            }])),
        );
        v.refresh().await.expect("refresh");
        let mut c = claims();
        c.exp = now_unix() - 1;
        let t = jwt::sign(&c, "k", &k);
        // Plant it in the cache as if it had been verified while valid.
        v.remember(&t, &Arc::new(c), now_unix());
        assert_eq!(v.verify(&t).await.err(), Some(TokenError::Expired));
    }
}
