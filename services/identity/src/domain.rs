//! Identity rules: roles and what they grant, credential formats, the
//! last-owner rule. No I/O.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use foundry_platform::Error;
use foundry_proto::foundry::identity::v1 as pb;
use sha2::{Digest, Sha256};

/// A role in an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Owner,
    /// Everything but deleting the organization and managing owners.
    Admin,
    /// Reads; writes delivery, knowledge and integrations data.
    Editor,
    /// Reads.
    Viewer,
    /// Reads the organization; manages billing.
    Billing,
}

impl Role {
    /// Database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
            Role::Billing => "billing",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            "editor" => Role::Editor,
            "viewer" => Role::Viewer,
            "billing" => Role::Billing,
            _ => return None,
        })
    }

    /// The permission patterns the role grants (`service.resource.verb`).
    pub fn permissions(self) -> Vec<String> {
        let p: &[&str] = match self {
            Role::Owner => &["*"],
            Role::Admin => &[
                "identity.organizations.read",
                "identity.organizations.write",
                "identity.members.*",
                "identity.invitations.*",
                "identity.api_keys.*",
                "delivery.*.*",
                "knowledge.*.*",
                "integrations.*.*",
                "audit.*.read",
                "audit.checkpoints.write",
                "audit.settings.write",
                "billing.*.read",
            ],
            Role::Editor => &[
                "*.*.read",
                "delivery.*.write",
                "knowledge.*.write",
                "integrations.*.write",
            ],
            Role::Viewer => &["*.*.read"],
            Role::Billing => &["identity.organizations.read", "billing.*.*"],
        };
        p.iter().map(|s| (*s).to_owned()).collect()
    }
}

impl From<Role> for pb::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Owner => pb::Role::Owner,
            Role::Admin => pb::Role::Admin,
            Role::Editor => pb::Role::Editor,
            Role::Viewer => pb::Role::Viewer,
            Role::Billing => pb::Role::Billing,
        }
    }
}

impl TryFrom<i32> for Role {
    type Error = ();
    fn try_from(v: i32) -> Result<Self, ()> {
        match pb::Role::try_from(v).map_err(|_| ())? {
            pb::Role::Owner => Ok(Role::Owner),
            pb::Role::Admin => Ok(Role::Admin),
            pb::Role::Editor => Ok(Role::Editor),
            pb::Role::Viewer => Ok(Role::Viewer),
            pb::Role::Billing => Ok(Role::Billing),
            pb::Role::Unspecified => Err(()),
        }
    }
}

/// Refuses a change that would leave an organization without an owner.
pub fn keep_an_owner(owners: i64, member_is_owner: bool, stays_owner: bool) -> Result<(), Error> {
    if member_is_owner && !stays_owner && owners <= 1 {
        Err(Error::failed_precondition(
            "LAST_OWNER",
            "the last owner cannot leave or be demoted; make another member owner first",
        ))
    } else {
        Ok(())
    }
}

/// Only owners grant or take away the owner role.
pub fn may_change_role(caller: Option<Role>, from: Role, to: Role) -> Result<(), Error> {
    if (from == Role::Owner || to == Role::Owner) && caller != Some(Role::Owner) {
        Err(Error::permission_denied(
            "OWNER_REQUIRED",
            "only an owner grants or removes the owner role",
        ))
    } else {
        Ok(())
    }
}

/// Kinds of long-lived secrets, by their prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// Session refresh token.
    Refresh,
    /// API key.
    ApiKey,
    /// Agent token.
    Agent,
    /// Service account key.
    Service,
    /// Invitation token.
    Invitation,
}

impl SecretKind {
    fn tag(self) -> &'static str {
        match self {
            SecretKind::Refresh => "rt",
            SecretKind::ApiKey => "key",
            SecretKind::Agent => "agt",
            SecretKind::Service => "svc",
            SecretKind::Invitation => "inv",
        }
    }
}

/// A freshly minted secret: shown once, stored as its hash.
#[derive(Debug)]
pub struct Secret {
    /// The clear text, `fnd_<kind>_<random><checksum>`.
    pub value: String,
    /// SHA-256 of the clear text, what is stored.
    pub hash: Vec<u8>,
    /// The first characters, for recognition in lists.
    pub prefix: String,
}

const RANDOM_BYTES: usize = 24; // 192 bits
const CHECKSUM_CHARS: usize = 6;

/// Mints a secret: 192 random bits and a 6-character checksum, so a typo or
/// a truncated paste is refused without a database look-up.
pub fn mint_secret(kind: SecretKind) -> Secret {
    let random: [u8; RANDOM_BYTES] = rand::random();
    let body = format!("fnd_{}_{}", kind.tag(), URL_SAFE_NO_PAD.encode(random));
    let value = format!("{body}{}", checksum(&body));
    Secret {
        hash: hash_secret(&value),
        prefix: value[..body.len().min(16)].to_owned(),
        value,
    }
}

fn checksum(body: &str) -> String {
    let d = Sha256::digest(body.as_bytes());
    URL_SAFE_NO_PAD.encode(&d[..6])[..CHECKSUM_CHARS].to_owned()
}

/// SHA-256 of a secret. The secrets carry 192 random bits, so a fast hash
/// is enough (no password stretching needed).
pub fn hash_secret(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// Checks a presented secret's shape and checksum; returns its hash.
pub fn parse_secret(kind: SecretKind, value: &str) -> Option<Vec<u8>> {
    let head = format!("fnd_{}_", kind.tag());
    let rest = value.strip_prefix(&head)?;
    let random_len = URL_SAFE_NO_PAD.encode([0u8; RANDOM_BYTES]).len();
    if rest.len() != random_len + CHECKSUM_CHARS || !rest.is_ascii() {
        return None;
    }
    let (body, sum) = value.split_at(head.len() + random_len);
    if checksum(body) != sum {
        return None;
    }
    Some(hash_secret(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_secret_parses_and_a_typo_does_not() {
        let s = mint_secret(SecretKind::ApiKey);
        assert!(s.value.starts_with("fnd_key_"));
        assert_eq!(
            parse_secret(SecretKind::ApiKey, &s.value),
            Some(s.hash.clone())
        );
        assert_eq!(parse_secret(SecretKind::Agent, &s.value), None);
        let mut typo = s.value.clone().into_bytes();
        typo[10] = if typo[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            parse_secret(SecretKind::ApiKey, &String::from_utf8(typo).expect("ascii")),
            None
        );
        assert_eq!(
            parse_secret(SecretKind::ApiKey, &s.value[..s.value.len() - 1]),
            None
        );
        assert!(!s.prefix.is_empty() && s.value.starts_with(&s.prefix));
    }

    #[test]
    fn the_last_owner_cannot_leave_or_be_demoted() {
        assert!(keep_an_owner(1, true, false).is_err());
        assert!(keep_an_owner(2, true, false).is_ok());
        assert!(keep_an_owner(1, false, false).is_ok());
        assert!(keep_an_owner(1, true, true).is_ok());
    }

    #[test]
    fn only_owners_touch_the_owner_role() {
        assert!(may_change_role(Some(Role::Admin), Role::Viewer, Role::Owner).is_err());
        assert!(may_change_role(Some(Role::Admin), Role::Owner, Role::Viewer).is_err());
        assert!(may_change_role(Some(Role::Admin), Role::Viewer, Role::Editor).is_ok());
        assert!(may_change_role(Some(Role::Owner), Role::Viewer, Role::Owner).is_ok());
    }
}
