//! Sign-in with an external OpenID Connect issuer (Clerk, Google, GitHub
//! Actions, Auth0, …): the `id_token` grant of `ExchangeToken`.
//!
//! Each configured issuer names its audience(s) and where its JSON Web Key
//! Set lives (a URL, a file, or OIDC discovery). Keys are cached; a token
//! signed with an unknown `kid` triggers a refetch, at most one per
//! [`REFETCH_INTERVAL`] per issuer, so a flood of forged tokens cannot turn
//! into a flood of fetches. Only asymmetric algorithms are accepted, and the
//! algorithm must match the key's.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use foundry_platform::Error;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The default least time between two key fetches of one issuer on an
/// unknown `kid`.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Cached keys older than this are refreshed on the next sign-in.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(3600);
/// Clock skew tolerated on `exp`/`nbf`/`iat`.
const LEEWAY_SECS: u64 = 60;
/// The default longest time after its `iat` that an ID token is accepted:
/// a sign-in presents a token just issued.
pub const MAX_TOKEN_AGE: Duration = Duration::from_secs(600);

/// Where an issuer's keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// `https://…` or `http://…` (a JWKS document).
    Url(String),
    /// A JWKS file on disk (air-gapped or pinned keys).
    File(PathBuf),
    /// `<issuer>/.well-known/openid-configuration`'s `jwks_uri`.
    Discover,
}

/// One trusted external issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcProvider {
    /// A label stored on linked accounts (`google`, `clerk`, …).
    pub name: String,
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// Accepted `aud` values (the client ids); at least one.
    pub audiences: Vec<String>,
    /// Its keys.
    pub jwks: JwksSource,
    /// The least time between two fetches on unknown `kid`.
    pub refetch: Duration,
    /// Whether a first sign-in may be linked to the existing user with the
    /// token's verified email (`link_email=true`). Off by default: anyone
    /// who holds an account with that address at this issuer would become
    /// that user, so only an issuer that owns its addresses (a company's
    /// own directory) should be trusted with it.
    pub link_email: bool,
    /// The email domains linking by email is limited to (`email_domain=`,
    /// repeatable); none: any.
    pub email_domains: Vec<String>,
    /// How long after its `iat` an ID token is still accepted
    /// (`max_age=SECONDS`; default [`MAX_TOKEN_AGE`]), whatever its `exp`.
    pub max_age: Duration,
}

impl OidcProvider {
    /// Whether a first sign-in with the verified `email` is linked to the
    /// user who has that email already.
    pub fn links_email(&self, email: &str) -> bool {
        let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
        self.link_email
            && (self.email_domains.is_empty()
                || self
                    .email_domains
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(domain)))
    }
}

impl FromStr for OidcProvider {
    type Err = String;

    /// `issuer=URL,audience=ID[,audience=ID…][,jwks=URL|PATH][,name=LABEL][,refetch=SECONDS]`
    /// `[,link_email=true|false][,email_domain=DOMAIN…][,max_age=SECONDS]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (mut issuer, mut audiences, mut jwks, mut name) = (None, vec![], None, None);
        let (mut refetch, mut max_age) = (REFETCH_INTERVAL, MAX_TOKEN_AGE);
        let (mut link_email, mut email_domains) = (false, vec![]);
        let seconds = |key: &str, v: &str| {
            v.trim()
                .parse::<u64>()
                .map(|s| Duration::from_secs(s.max(1)))
                .map_err(|_| format!("{key} `{v}` is not a number of seconds"))
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not key=value"))?;
            match k.trim() {
                "issuer" => issuer = Some(v.trim().to_owned()),
                "audience" => audiences.push(v.trim().to_owned()),
                "jwks" => jwks = Some(v.trim().to_owned()),
                "name" => name = Some(v.trim().to_owned()),
                "refetch" => refetch = seconds("refetch", v)?,
                "max_age" => max_age = seconds("max_age", v)?,
                "link_email" => {
                    link_email = v
                        .trim()
                        .parse()
                        .map_err(|_| format!("link_email `{v}` is not true or false"))?;
                }
                "email_domain" => {
                    let d = v.trim().trim_start_matches('@').to_ascii_lowercase();
                    if d.is_empty() || d.contains(['@', '/', ' ']) {
                        return Err(format!("email_domain `{v}` is not a domain"));
                    }
                    email_domains.push(d);
                }
                other => {
                    return Err(format!(
                        "unknown key `{other}` (issuer, audience, jwks, name, refetch, \
                         link_email, email_domain, max_age)"
                    ));
                }
            }
        }
        let issuer = issuer.ok_or("issuer= is required")?;
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(format!("issuer `{issuer}` is not a URL"));
        }
        if audiences.is_empty() {
            return Err("at least one audience= is required".into());
        }
        let jwks = match jwks {
            None => JwksSource::Discover,
            Some(j) if j.starts_with("https://") || j.starts_with("http://") => JwksSource::Url(j),
            Some(j) => JwksSource::File(PathBuf::from(j.strip_prefix("file://").unwrap_or(&j))),
        };
        let name = name.unwrap_or_else(|| {
            let host = issuer.split("://").nth(1).unwrap_or(&issuer);
            host.split(['/', ':']).next().unwrap_or(host).to_owned()
        });
        if !email_domains.is_empty() && !link_email {
            return Err("email_domain= limits link_email=true, which is not set".into());
        }
        Ok(OidcProvider {
            name,
            issuer,
            audiences,
            jwks,
            refetch,
            link_email,
            email_domains,
            max_age,
        })
    }
}

/// The command-line/environment configuration of external issuers.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct OidcArgs {
    /// A trusted external OIDC issuer for sign-in:
    /// `issuer=URL,audience=CLIENT_ID[,jwks=URL|PATH][,name=LABEL][,refetch=SECONDS]`
    /// `[,link_email=true][,email_domain=DOMAIN…][,max_age=SECONDS]`.
    /// Repeat the flag, or separate entries with `;` in the variable.
    #[arg(
        long = "oidc-provider",
        env = "FOUNDRY_OIDC_PROVIDERS",
        value_delimiter = ';',
        global = true
    )]
    pub providers: Vec<OidcProvider>,
}

/// What Foundry reads from a verified ID token.
#[derive(Clone, Debug, Deserialize)]
pub struct IdClaims {
    /// Issuer.
    pub iss: String,
    /// The subject: stable id of the user at the issuer.
    pub sub: String,
    /// Issued at (seconds since the epoch); required.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// The token's id at the issuer, if it gives one.
    #[serde(default)]
    pub jti: Option<String>,
    /// Email, if shared.
    #[serde(default)]
    pub email: Option<String>,
    /// Whether the issuer verified the email (bool, or "true" from some).
    #[serde(default)]
    pub email_verified: Option<serde_json::Value>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Avatar URL.
    #[serde(default)]
    pub picture: Option<String>,
}

impl IdClaims {
    /// The email, when the issuer says it verified it.
    pub fn verified_email(&self) -> Option<&str> {
        let verified = match &self.email_verified {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::String(s)) => s == "true",
            _ => false,
        };
        self.email
            .as_deref()
            .filter(|e| verified && e.contains('@'))
    }
}

#[derive(Debug)]
struct Issuer {
    cfg: OidcProvider,
    keys: ArcSwap<JwkSet>,
    fetched: std::sync::Mutex<Option<Instant>>,
    fetching: tokio::sync::Mutex<()>,
}

/// The trusted issuers and their cached keys.
#[derive(Debug, Default)]
pub struct Oidc {
    issuers: Vec<Arc<Issuer>>,
}

fn refused(reason: &'static str, message: &str) -> Error {
    Error::unauthenticated(reason, format!("ID token refused: {message}"))
}

fn fetch_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_json()
        .map_err(|e| format!("GET {url}: {e}"))
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

impl Issuer {
    async fn load(&self) -> Result<JwkSet, String> {
        let source = self.cfg.jwks.clone();
        let issuer = self.cfg.issuer.trim_end_matches('/').to_owned();
        tokio::task::spawn_blocking(move || match source {
            JwksSource::File(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
            }
            JwksSource::Url(url) => fetch_json(&url),
            JwksSource::Discover => {
                let d: Discovery =
                    fetch_json(&format!("{issuer}/.well-known/openid-configuration"))?;
                fetch_json(&d.jwks_uri)
            }
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Refetches the keys unless that happened within `min_gap`.
    async fn refresh(&self, min_gap: Duration) {
        let _one_at_a_time = self.fetching.lock().await;
        let recent = self
            .fetched
            .lock()
            .map(|f| f.is_some_and(|t| t.elapsed() < min_gap))
            .unwrap_or(false);
        if recent {
            return;
        }
        let result = self.load().await;
        if let Ok(mut f) = self.fetched.lock() {
            *f = Some(Instant::now());
        }
        match result {
            Ok(set) => self.keys.store(Arc::new(set)),
            Err(e) => {
                tracing::warn!(issuer = %self.cfg.issuer, error = %e, "fetching the issuer's keys failed")
            }
        }
    }

    fn find(&self, kid: Option<&str>) -> Option<Jwk> {
        let keys = self.keys.load();
        match kid {
            Some(kid) => keys.find(kid).cloned(),
            None if keys.keys.len() == 1 => keys.keys.first().cloned(),
            None => None,
        }
    }

    fn stale(&self) -> bool {
        self.fetched
            .lock()
            .map(|f| f.is_none_or(|t| t.elapsed() > MAX_KEY_AGE))
            .unwrap_or(true)
    }
}

const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The `iss` of a token, unverified (to pick the issuer's keys).
fn peek_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Peek {
        iss: String,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Peek>(&bytes).ok().map(|p| p.iss)
}

impl Oidc {
    /// The configured issuers; keys are fetched on first use.
    pub fn new(providers: Vec<OidcProvider>) -> Oidc {
        Oidc {
            issuers: providers
                .into_iter()
                .map(|cfg| {
                    Arc::new(Issuer {
                        cfg,
                        keys: ArcSwap::from_pointee(JwkSet { keys: vec![] }),
                        fetched: std::sync::Mutex::new(None),
                        fetching: tokio::sync::Mutex::new(()),
                    })
                })
                .collect(),
        }
    }

    /// Whether any issuer is configured.
    pub fn is_configured(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// Verifies an ID token: signed by a trusted issuer's published key,
    /// for one of its audiences, unexpired, and issued at most the
    /// issuer's `max_age` ago. Whether it was used before is the caller's
    /// to check ([`Verified::token_id`]).
    pub async fn verify(&self, token: &str) -> Result<Verified, Error> {
        if !self.is_configured() {
            return Err(Error::failed_precondition(
                "OIDC_NOT_CONFIGURED",
                "no external OIDC issuer is configured on this server",
            ));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| refused("TOKEN_MALFORMED", "not a JWT"))?;
        if !ASYMMETRIC.contains(&header.alg) {
            return Err(refused(
                "TOKEN_ALGORITHM",
                "only asymmetric signatures are accepted",
            ));
        }
        let iss = peek_issuer(token).ok_or_else(|| refused("TOKEN_MALFORMED", "no issuer"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.cfg.issuer == iss)
            .ok_or_else(|| refused("TOKEN_ISSUER", "the issuer is not trusted here"))?;
        if issuer.stale() {
            issuer.refresh(issuer.cfg.refetch).await;
        }
        let jwk = match issuer.find(header.kid.as_deref()) {
            Some(jwk) => jwk,
            None => {
                issuer.refresh(issuer.cfg.refetch).await;
                issuer.find(header.kid.as_deref()).ok_or_else(|| {
                    refused(
                        "TOKEN_UNKNOWN_KEY",
                        "the signing key is not published by the issuer",
                    )
                })?
            }
        };
        if let Some(alg) = jwk.common.key_algorithm
            && alg.to_string() != format!("{:?}", header.alg)
        {
            return Err(refused(
                "TOKEN_ALGORITHM",
                "the algorithm does not match the key",
            ));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|_| refused("TOKEN_UNKNOWN_KEY", "the issuer's key is unusable"))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[&issuer.cfg.issuer]);
        validation.set_audience(&issuer.cfg.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        use jsonwebtoken::errors::ErrorKind as K;
        let data =
            jsonwebtoken::decode::<IdClaims>(token, &key, &validation).map_err(|e| {
                match e.kind() {
                    K::ExpiredSignature => refused("TOKEN_EXPIRED", "expired"),
                    K::ImmatureSignature => refused("TOKEN_NOT_YET_VALID", "not yet valid"),
                    K::InvalidAudience => refused("TOKEN_AUDIENCE", "wrong audience"),
                    K::InvalidIssuer => refused("TOKEN_ISSUER", "wrong issuer"),
                    K::InvalidSignature => refused("TOKEN_SIGNATURE", "bad signature"),
                    K::InvalidAlgorithm => {
                        refused("TOKEN_ALGORITHM", "the algorithm does not match the key")
                    }
                    _ => refused("TOKEN_MALFORMED", "malformed claims"),
                }
            })?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(refused("TOKEN_MALFORMED", "bad subject"));
        }
        let now = Utc::now().timestamp();
        let iat = claims
            .iat
            .ok_or_else(|| refused("TOKEN_MALFORMED", "no iat"))?;
        let max_age = i64::try_from(issuer.cfg.max_age.as_secs()).unwrap_or(i64::MAX);
        if iat > now.saturating_add(LEEWAY_SECS as i64) {
            return Err(refused("TOKEN_NOT_YET_VALID", "issued in the future"));
        }
        if now.saturating_sub(iat) > max_age {
            return Err(refused(
                "ID_TOKEN_TOO_OLD",
                &format!("issued more than {max_age} seconds ago; sign in again at the issuer"),
            ));
        }
        let token_id = match claims.jti.as_deref() {
            Some(jti) if !jti.is_empty() && jti.len() <= 255 => format!("jti:{jti}"),
            _ => format!(
                "sha256:{}",
                URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
            ),
        };
        let last = claims.exp.min(iat.saturating_add(max_age));
        let usable_until = DateTime::from_timestamp(last.saturating_add(LEEWAY_SECS as i64), 0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Ok(Verified {
            provider: issuer.cfg.clone(),
            claims,
            token_id,
            usable_until,
        })
    }
}

/// A verified ID token.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The issuer's configuration.
    pub provider: OidcProvider,
    /// Its claims.
    pub claims: IdClaims,
    /// What tells this token from every other of its issuer: `jti:<jti>`,
    /// or `sha256:<digest of the token>` when it has no `jti`. A token is
    /// used once: its id is remembered until [`Verified::usable_until`].
    pub token_id: String,
    /// The last moment it could be accepted (the earlier of its `exp` and
    /// `iat` + the issuer's `max_age`, plus the clock leeway).
    pub usable_until: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_provider_specs() {
        let p: OidcProvider = "issuer=https://accounts.google.com,audience=a,audience=b"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.name, "accounts.google.com");
        assert_eq!(p.audiences, vec!["a", "b"]);
        assert_eq!(p.jwks, JwksSource::Discover);
        let p: OidcProvider =
            "issuer=https://clerk.example.com, audience=x, jwks=/etc/jwks.json, name=clerk"
                .parse()
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.jwks, JwksSource::File("/etc/jwks.json".into()));
        assert_eq!(p.name, "clerk");
        assert!("audience=x".parse::<OidcProvider>().is_err());
        assert!("issuer=https://a".parse::<OidcProvider>().is_err());
        assert!("issuer=nope,audience=x".parse::<OidcProvider>().is_err());
        assert!(
            "issuer=https://a,audience=x,color=red"
                .parse::<OidcProvider>()
                .is_err()
        );
    }

    #[test]
    fn linking_by_email_is_off_unless_configured_and_kept_to_its_domains() {
        let p: OidcProvider = "issuer=https://a,audience=x"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!p.link_email && !p.links_email("a@corp.example"));
        assert_eq!(p.max_age, MAX_TOKEN_AGE);
        let p: OidcProvider = "issuer=https://a,audience=x,link_email=true"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(p.links_email("a@anywhere.example"));
        let p: OidcProvider = "issuer=https://a,audience=x,link_email=true,\
                               email_domain=Corp.Example,email_domain=@sub.example,max_age=90"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.email_domains, ["corp.example", "sub.example"]);
        assert!(p.links_email("a@CORP.example"));
        assert!(p.links_email("b@sub.example"));
        assert!(!p.links_email("a@corp.example.evil.com"));
        assert!(!p.links_email("a@other.example"));
        assert_eq!(p.max_age, Duration::from_secs(90));
        for bad in [
            "issuer=https://a,audience=x,link_email=yes",
            "issuer=https://a,audience=x,email_domain=corp.example",
            "issuer=https://a,audience=x,link_email=true,email_domain=a@b",
            "issuer=https://a,audience=x,max_age=soon",
        ] {
            assert!(bad.parse::<OidcProvider>().is_err(), "{bad}");
        }
    }

    #[test]
    fn email_counts_only_when_verified() {
        let mut c = IdClaims {
            iss: "i".into(),
            sub: "s".into(),
            iat: None,
            exp: 0,
            jti: None,
            email: Some("a@b.c".into()),
            email_verified: None,
            name: None,
            picture: None,
        };
        assert_eq!(c.verified_email(), None);
        c.email_verified = Some(serde_json::json!(true));
        assert_eq!(c.verified_email(), Some("a@b.c"));
        c.email_verified = Some(serde_json::json!("true"));
        assert_eq!(c.verified_email(), Some("a@b.c"));
        c.email_verified = Some(serde_json::json!(false));
        assert_eq!(c.verified_email(), None);
    }
}
