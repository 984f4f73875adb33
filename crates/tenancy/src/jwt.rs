//! EdDSA (Ed25519) JSON Web Tokens, signed and verified here in ~150 lines
//! rather than through a general JWT library, so that exactly one algorithm
//! is accepted: a header with any `alg` but `EdDSA` (`none`, `HS256` with the
//! public key as secret, …) is refused before any key is looked at.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who a token speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalType {
    /// A person.
    User,
    /// An API key of an organization.
    ApiKey,
    /// An agent token of an organization.
    Agent,
    /// A platform service account.
    Service,
}

impl PrincipalType {
    /// Stable lowercase name (audit `actor_type`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::Agent => "agent",
            Self::Service => "service",
        }
    }
}

/// The claims of a Foundry access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The principal's id.
    pub sub: Uuid,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expires (Unix seconds).
    pub exp: i64,
    /// Token id.
    pub jti: Uuid,
    /// Principal type.
    pub ptype: PrincipalType,
    /// The one organization the token acts in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<Uuid>,
    /// The user's role there (`owner`, `admin`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
    /// Permission patterns granted (`service.resource.verb`, `*` a segment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perms: Vec<String>,
    /// The project a key is bound to ([`crate::Binding`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    /// The one resource inside `project_id` a key is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<Uuid>,
    /// When the credential the token was exchanged for expires (Unix
    /// seconds), if it does: what that credential mints expires no later
    /// ([`crate::Limits`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cexp: Option<i64>,
    /// The session that minted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// The service a service account runs as (`delivery`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svc: Option<String>,
    /// Whom a service account's token acts for (the user or agent whose
    /// request the service carries out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub obo: Option<OnBehalfOf>,
}

/// Whom a token's principal acts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnBehalfOf {
    /// Their principal type.
    pub ptype: PrincipalType,
    /// Their id.
    pub id: Uuid,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

/// Why a token was refused. All of them are `UNAUTHENTICATED` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// `alg` other than `EdDSA`.
    #[error("token algorithm {0:?} is not accepted")]
    Algorithm(String),
    /// No key with that `kid` is published.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The key that signed it has retired (rotated out or revoked).
    #[error("token signed by a retired key")]
    RetiredKey,
    /// Signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// Wrong issuer.
    #[error("token issuer is not accepted")]
    Issuer,
    /// Wrong audience.
    #[error("token audience is not accepted")]
    Audience,
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Before `nbf`.
    #[error("token not yet valid")]
    NotYetValid,
}

impl TokenError {
    /// Stable UPPER_SNAKE reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "TOKEN_MALFORMED",
            Self::Algorithm(_) => "TOKEN_ALGORITHM",
            Self::UnknownKey => "TOKEN_UNKNOWN_KEY",
            Self::RetiredKey => "TOKEN_KEY_RETIRED",
            Self::BadSignature => "TOKEN_SIGNATURE",
            Self::Issuer => "TOKEN_ISSUER",
            Self::Audience => "TOKEN_AUDIENCE",
            Self::Expired => "TOKEN_EXPIRED",
            Self::NotYetValid => "TOKEN_NOT_YET_VALID",
        }
    }
}

/// Signs claims with an Ed25519 key whose id is `kid`.
pub fn sign(claims: &Claims, kid: &str, key: &SigningKey) -> String {
    let header = Header {
        alg: "EdDSA".into(),
        typ: Some("JWT".into()),
        kid: Some(kid.into()),
    };
    // Serializing these plain structs cannot fail.
    let h = serde_json::to_vec(&header).unwrap_or_default();
    let c = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = String::with_capacity(512);
    token.push_str(&URL_SAFE_NO_PAD.encode(h));
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(c));
    let sig = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig.to_bytes()));
    token
}

/// A token split and its header checked, not yet verified.
pub struct Unverified<'a> {
    /// The `kid` of the header.
    pub kid: String,
    signing_input: &'a str,
    payload: &'a str,
    signature: Signature,
}

/// Splits a token and checks its header: only `EdDSA` with a `kid`.
pub fn decode_header(token: &str) -> Result<Unverified<'_>, TokenError> {
    let mut parts = token.splitn(3, '.');
    let (Some(h), Some(p), Some(s)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    if s.contains('.') {
        return Err(TokenError::Malformed);
    }
    let header: Header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Malformed)?;
    if header.alg != "EdDSA" {
        return Err(TokenError::Algorithm(header.alg));
    }
    let kid = header.kid.ok_or(TokenError::UnknownKey)?;
    let sig_bytes: [u8; 64] = URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(TokenError::Malformed)?;
    Ok(Unverified {
        kid,
        signing_input: &token[..h.len() + 1 + p.len()],
        payload: p,
        signature: Signature::from_bytes(&sig_bytes),
    })
}

/// The `iss` of Foundry access tokens unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "https://identity.foundry.dev";
/// The `aud` of Foundry access tokens unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "foundry";

/// What a verifier accepts.
#[derive(Clone, Debug)]
pub struct Expectations {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Clock skew tolerated on `exp`/`nbf`, seconds.
    pub leeway_secs: i64,
}

impl Default for Expectations {
    fn default() -> Self {
        Expectations {
            issuer: DEFAULT_ISSUER.into(),
            audience: DEFAULT_AUDIENCE.into(),
            leeway_secs: 30,
        }
    }
}

impl<'a> Unverified<'a> {
    /// Verifies the signature with `key` (strict: no malleable signatures or
    /// weak keys) and checks issuer, audience and validity window at `now`.
    pub fn verify(
        &self,
        key: &VerifyingKey,
        expect: &Expectations,
        now: i64,
    ) -> Result<Claims, TokenError> {
        key.verify_strict(self.signing_input.as_bytes(), &self.signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(self.payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        check_claims(&claims, expect, now)?;
        Ok(claims)
    }
}

/// Checks issuer, audience and the validity window.
pub fn check_claims(claims: &Claims, expect: &Expectations, now: i64) -> Result<(), TokenError> {
    if claims.iss != expect.issuer {
        return Err(TokenError::Issuer);
    }
    if claims.aud != expect.audience {
        return Err(TokenError::Audience);
    }
    if now > claims.exp + expect.leeway_secs {
        return Err(TokenError::Expired);
    }
    if now + expect.leeway_secs < claims.nbf {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// A public key as a JWK (RFC 8037).
pub fn jwk_x(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Parses the `x` of an Ed25519 JWK.
pub fn verifying_key_from_x(x: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(x).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&rand::random())
    }

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "foundry".into(),
            aud: "foundry-api".into(),
            sub: Uuid::now_v7(),
            iat: now,
            nbf: now,
            exp: now + 300,
            jti: Uuid::now_v7(),
            ptype: PrincipalType::User,
            org_id: Some(Uuid::now_v7()),
            org_role: Some("owner".into()),
            perms: vec!["*".into()],
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
            issuer: "foundry".into(),
            audience: "foundry-api".into(),
            leeway_secs: 30,
        }
    }

    #[test]
    fn a_signed_token_verifies_with_its_key() {
        let k = key();
        let c = claims(1000);
        let t = sign(&c, "k1", &k);
        let u = decode_header(&t).expect("header");
        assert_eq!(u.kid, "k1");
        assert_eq!(
            u.verify(&k.verifying_key(), &expect(), 1000)
                .expect("valid"),
            c
        );
    }

    #[test]
    fn alg_none_is_refused_before_any_key_is_used() {
        let c = claims(1000);
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("json"));
        let t = format!("{h}.{p}.");
        assert_eq!(
            decode_header(&t).err(),
            Some(TokenError::Algorithm("none".into()))
        );
        let hs = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"k1"}"#);
        let t = format!("{hs}.{p}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]));
        assert_eq!(
            decode_header(&t).err(),
            Some(TokenError::Algorithm("HS256".into()))
        );
    }

    #[test]
    fn a_token_signed_by_another_key_is_forged() {
        let t = sign(&claims(1000), "k1", &key());
        let u = decode_header(&t).expect("header");
        assert_eq!(
            u.verify(&key().verifying_key(), &expect(), 1000).err(),
            Some(TokenError::BadSignature)
        );
    }

    #[test]
    fn an_edited_payload_breaks_the_signature() {
        let k = key();
        let t = sign(&claims(1000), "k1", &k);
        let mut parts: Vec<&str> = t.split('.').collect();
        let mut c = claims(1000);
        c.perms = vec!["*".into(), "extra".into()];
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("json"));
        parts[1] = &p;
        let forged = parts.join(".");
        let u = decode_header(&forged).expect("header");
        assert_eq!(
            u.verify(&k.verifying_key(), &expect(), 1000).err(),
            Some(TokenError::BadSignature)
        );
    }

    #[test]
    fn expiry_audience_issuer_and_not_before_are_enforced() {
        let k = key();
        let vk = k.verifying_key();
        let c = claims(1000);
        let t = sign(&c, "k1", &k);
        let u = decode_header(&t).expect("header");
        assert_eq!(
            u.verify(&vk, &expect(), 1000 + 300 + 31).err(),
            Some(TokenError::Expired)
        );
        assert!(u.verify(&vk, &expect(), 1000 + 300 + 29).is_ok());
        assert_eq!(
            u.verify(&vk, &expect(), 1000 - 31).err(),
            Some(TokenError::NotYetValid)
        );
        let mut e = expect();
        e.audience = "other".into();
        assert_eq!(u.verify(&vk, &e, 1000).err(), Some(TokenError::Audience));
        let mut e = expect();
        e.issuer = "other".into();
        assert_eq!(u.verify(&vk, &e, 1000).err(), Some(TokenError::Issuer));
    }

    #[test]
    fn garbage_is_malformed() {
        for t in ["", "a", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(decode_header(t).is_err(), "{t}");
        }
    }
}
