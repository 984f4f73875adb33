//! Local verification of access tokens against the identity service's
//! published keys, cached. No database and no network per call: keys are
//! fetched at start-up, again on a timer ([`Verifier::keep_fresh`], every
//! minute at most, so a key identity withdrew stops verifying everywhere
//! within that interval), and when a token names an unknown `kid`
//! (rate-limited, so a flood of forged `kid`s cannot hammer identity). A key
//! is refused from its `retires_at` on, whether or not a fetch has happened
//! since, and at once when an in-process source knows it was withdrawn (a
//! revocation in this process; a key such a source knows is fetched at once
//! too, rate limit or not).
//! Verified tokens are remembered until they expire, so a busy client pays
//! for one signature check per token, not per call; a remembered token is
//! refused too once its key is gone.

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
    /// When it retires (Unix seconds): its tokens are refused from then on.
    pub retires_at: Option<i64>,
}

impl PublicKey {
    /// Whether it still verifies at `now`.
    pub fn current(&self, now: i64) -> bool {
        self.retires_at.is_none_or(|at| now < at)
    }
}

/// Where a verifier gets the published keys: in process from the identity
/// service, or over gRPC (`AuthService/GetJwks`) in a split deployment.
#[async_trait]
pub trait KeySource: Send + Sync + 'static {
    /// The currently published keys.
    async fn fetch(&self) -> anyhow::Result<Vec<PublicKey>>;

    /// Whether the source knows, without a fetch, that `kid` is a current
    /// key (`Some(true)`: a key made in this process) or not (`Some(false)`:
    /// revoked in this process, or unknown); `None` when it cannot tell
    /// without fetching, as a remote source cannot (the default). Asked on
    /// every verification, so it must be cheap.
    fn knows(&self, _kid: &str) -> Option<bool> {
        None
    }
}

/// How often a verifier refetches the published keys unless configured.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);

/// Verifies access tokens.
pub struct Verifier {
    expect: Expectations,
    keys: ArcSwap<HashMap<String, PublicKey>>,
    source: Arc<dyn KeySource>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refetch: Duration,
    refresh_every: Duration,
    /// Verified tokens, with the `kid` that signed each.
    cache: Mutex<HashMap<String, (String, Arc<Claims>)>>,
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
            refresh_every: DEFAULT_REFRESH,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Sets how often [`Verifier::keep_fresh`] refetches the keys.
    pub fn with_refresh_every(mut self, interval: Duration) -> Self {
        self.refresh_every = interval;
        self
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
        let map: HashMap<_, _> = keys.into_iter().map(|k| (k.kid.clone(), k)).collect();
        self.keys.store(Arc::new(map));
        Ok(())
    }

    /// Refetches the keys every refresh interval until `stop` resolves. A
    /// failed fetch keeps the keys it had (each still refused from its
    /// `retires_at` on) and is retried at the next tick.
    pub async fn keep_fresh(&self, stop: impl std::future::Future<Output = ()> + Send) {
        foundry_platform::server::every("token key refresh", self.refresh_every, stop, || {
            self.refresh()
        })
        .await;
    }

    /// Verifies a token at the current time.
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        let now = now_unix();
        if let Some((kid, hit)) = self.cached(token) {
            // Its key may have retired, or left the JWKS, since.
            self.known_key(&kid, now)?;
            jwt::check_claims(&hit, &self.expect, now)?;
            return Ok(hit);
        }
        let unverified = jwt::decode_header(token)?;
        let key = match self.known_key(&unverified.kid, now) {
            Err(TokenError::UnknownKey) => self.refetch_for(&unverified.kid, now).await?,
            known => known?,
        };

        let claims = Arc::new(unverified.verify(&key, &self.expect, now)?);
        self.remember(token, &unverified.kid, &claims, now);
        Ok(claims)
    }

    /// The key `kid` if it is known and current at `now`.
    fn known_key(&self, kid: &str, now: i64) -> Result<VerifyingKey, TokenError> {
        match self.keys.load().get(kid) {
            None => Err(TokenError::UnknownKey),
            Some(k) if !k.current(now) || self.source.knows(kid) == Some(false) => {
                Err(TokenError::RetiredKey)
            }
            Some(k) => Ok(k.key),
        }
    }

    async fn refetch_for(&self, kid: &str, now: i64) -> Result<VerifyingKey, TokenError> {
        let mut last = self.last_fetch.lock().await;
        // Another caller may have fetched while we waited for the lock.
        if let Ok(k) = self.known_key(kid, now) {
            return Ok(k);
        }
        let vouched = self.source.knows(kid) == Some(true);
        if !vouched && last.is_some_and(|t| t.elapsed() < self.min_refetch) {
            return Err(TokenError::UnknownKey);
        }
        if let Err(e) = self.fetch_locked(&mut last).await {
            tracing::warn!(error = %format!("{e:#}"), "fetching signing keys failed");
            return Err(TokenError::UnknownKey);
        }
        self.known_key(kid, now)
    }

    fn cached(&self, token: &str) -> Option<(String, Arc<Claims>)> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(token).cloned()
    }

    fn remember(&self, token: &str, kid: &str, claims: &Arc<Claims>, now: i64) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_CAP {
            // Drop what expired; if that is not enough, start over. Tokens
            // live minutes, so a full reset costs one verify per live token.
            cache.retain(|_, (_, c)| c.exp >= now);
            if cache.len() >= CACHE_CAP {
                cache.clear();
            }
        }
        cache.insert(token.to_owned(), (kid.to_owned(), claims.clone()));
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
                    retires_at: k.retire_time.map(|t| t.seconds),
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
        withdrawn: std::sync::Mutex<Vec<String>>,
    }

    impl Counting {
        fn of(keys: Vec<PublicKey>) -> Arc<Counting> {
            Arc::new(Counting {
                keys: std::sync::Mutex::new(keys),
                fetches: AtomicUsize::new(0),
                withdrawn: std::sync::Mutex::new(vec![]),
            })
        }
    }

    #[async_trait]
    impl KeySource for Counting {
        async fn fetch(&self) -> anyhow::Result<Vec<PublicKey>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            Ok(self.keys.lock().expect("lock").clone())
        }

        fn knows(&self, kid: &str) -> Option<bool> {
            let withdrawn = self
                .withdrawn
                .lock()
                .expect("lock")
                .iter()
                .any(|k| k == kid);
            withdrawn.then_some(false)
        }
    }

    fn public(kid: &str, key: &SigningKey, retires_at: Option<i64>) -> PublicKey {
        PublicKey {
            kid: kid.into(),
            key: key.verifying_key(),
            retires_at,
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
            resource_id: None,
            cexp: None,
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
        let source = Counting::of(vec![public("k1", &k1, None)]);
        let v = Verifier::new(expect(), source.clone()).with_min_refetch(Duration::from_secs(60));
        v.refresh().await.expect("refresh");
        assert!(v.verify(&jwt::sign(&claims(), "k1", &k1)).await.is_ok());
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

        // A new key published after start-up: not yet known. The refresh at
        // start-up was just now, so the rate limit refuses a refetch.
        source
            .keys
            .lock()
            .expect("lock")
            .push(public("k2", &k2, None));
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
        let v = Verifier::new(expect(), Arc::new(StaticKeys(vec![public("k", &k, None)])));
        v.refresh().await.expect("refresh");
        let mut c = claims();
        c.exp = now_unix() - 1;
        let t = jwt::sign(&c, "k", &k);
        // Plant it in the cache as if it had been verified while valid.
        v.remember(&t, "k", &Arc::new(c), now_unix());
        assert_eq!(v.verify(&t).await.err(), Some(TokenError::Expired));
    }

    #[tokio::test]
    async fn a_key_is_refused_from_its_retirement_on_without_a_fetch() {
        let k = SigningKey::from_bytes(&rand::random());
        let retires = now_unix() + 2;
        let source = Counting::of(vec![public("k", &k, Some(retires))]);
        let v = Verifier::new(expect(), source.clone());
        v.refresh().await.expect("refresh");
        let used = jwt::sign(&claims(), "k", &k);
        assert!(v.verify(&used).await.is_ok(), "current until it retires");
        while now_unix() < retires {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let unseen = jwt::sign(&claims(), "k", &k);
        assert_eq!(v.verify(&unseen).await.err(), Some(TokenError::RetiredKey));
        assert_eq!(
            v.verify(&used).await.err(),
            Some(TokenError::RetiredKey),
            "a remembered token goes with its key"
        );
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn keep_fresh_drops_a_withdrawn_key_at_the_next_tick() {
        let k = SigningKey::from_bytes(&rand::random());
        let source = Counting::of(vec![public("k", &k, None)]);
        let v = Arc::new(
            Verifier::new(expect(), source.clone())
                .with_refresh_every(Duration::from_secs(30))
                .with_min_refetch(Duration::from_secs(3600)),
        );
        v.refresh().await.expect("refresh");
        let token = jwt::sign(&claims(), "k", &k);
        assert!(v.verify(&token).await.is_ok());

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let fresh = v.clone();
        let task = tokio::spawn(async move {
            fresh
                .keep_fresh(async {
                    let _ = stopped.await;
                })
                .await;
        });
        source.keys.lock().expect("lock").clear();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(v.verify(&token).await.is_ok(), "not before the tick");
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(v.verify(&token).await.err(), Some(TokenError::UnknownKey));
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
        stop.send(()).expect("stop");
        task.await.expect("stopped");
    }

    #[tokio::test]
    async fn a_key_the_source_withdrew_is_refused_before_any_fetch() {
        let k = SigningKey::from_bytes(&rand::random());
        let source = Counting::of(vec![public("k", &k, None)]);
        let v = Verifier::new(expect(), source.clone());
        v.refresh().await.expect("refresh");
        let token = jwt::sign(&claims(), "k", &k);
        assert!(v.verify(&token).await.is_ok());
        source.withdrawn.lock().expect("lock").push("k".into());
        assert_eq!(v.verify(&token).await.err(), Some(TokenError::RetiredKey));
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    }
}
