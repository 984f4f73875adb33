//! What a credential is confined to, and what a credential it mints
//! inherits: the one place both are decided.
//!
//! A [`Binding`] is a project and, optionally, one resource inside it (a
//! chat agent, for the keys its embed widget uses). A bound caller sees
//! only what the binding admits ([`Binding::admits`]); a method declares in
//! its proto whether its handler confines a bound caller (`confined` of the
//! access option), and the tenancy layer refuses every other method to
//! bound callers with `PERMISSION_DENIED` [`BOUND_REASON`], so a new
//! organization-wide method fails closed.
//!
//! [`Limits`] are what a credential may hand on: its binding, its scopes
//! and its expiry. A key or token minted by a credential gets at most its
//! parent's ([`Limits::narrow`], [`Limits::cap`]).

use chrono::{DateTime, Utc};
use foundry_platform::Error;
use foundry_platform::validate::Violations;
use uuid::Uuid;

use crate::access::pattern_matches;

/// The reason of every refusal of a bound caller.
pub const BOUND_REASON: &str = "PROJECT_BOUND_CREDENTIAL";

/// What a credential is confined to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The project (a delivery program).
    pub project: Uuid,
    /// One resource inside the project, if the credential is bound to it.
    pub resource: Option<Uuid>,
}

impl Binding {
    /// The binding of a credential bound to `project` (none: not bound)
    /// and optionally to `resource` in it.
    pub fn of(project: Option<Uuid>, resource: Option<Uuid>) -> Option<Binding> {
        project.map(|project| Binding { project, resource })
    }

    /// Whether a thing of `project` (none: of the organization as a whole)
    /// whose id is `id` is within the binding: in its project and, for a
    /// binding to one resource, that resource.
    pub fn admits(&self, project: Option<Uuid>, id: Uuid) -> bool {
        project == Some(self.project) && self.resource.is_none_or(|r| r == id)
    }

    /// Whether a credential bound to `self` is confined at least as much as
    /// one bound to `parent`: the same project, and the parent's resource
    /// if it has one.
    pub fn within(&self, parent: &Binding) -> bool {
        self.project == parent.project
            && (parent.resource.is_none() || self.resource == parent.resource)
    }

    /// `PERMISSION_DENIED` [`BOUND_REASON`]: the caller asks for `what`,
    /// outside its binding.
    pub fn refusal(what: &str) -> Error {
        Error::permission_denied(
            BOUND_REASON,
            format!("a credential bound to one project cannot {what}"),
        )
    }

    /// The project a list of a bound caller is narrowed to, given the
    /// project the request names in `field` (`asked`): unset, the
    /// binding's; the binding's, kept; another, refused (whether or not it
    /// exists). A binding to one resource cannot be narrowed to by a
    /// project's list: refused.
    pub fn narrow_list(&self, field: &str, asked: Option<Uuid>) -> Result<Uuid, Error> {
        if self.resource.is_some() {
            return Err(Self::refusal(
                "list its project's data (it is bound to one resource)",
            ));
        }
        match asked {
            Some(p) if p != self.project => {
                Err(Self::refusal("read another project").with_metadata("field", field))
            }
            _ => Ok(self.project),
        }
    }
}

/// What a credential may hand on to one it mints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Its binding; none: the whole organization.
    pub binding: Option<Binding>,
    /// The permission patterns it grants.
    pub scopes: Vec<String>,
    /// When it expires; none: never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// The request fields that ask for each of a new credential's limits, by
/// their proto paths: violations name them.
#[derive(Clone, Copy, Debug)]
pub struct LimitFields<'a> {
    /// The project (`api_key.project_id`).
    pub project: &'a str,
    /// The resource (`api_key.resource_id`).
    pub resource: &'a str,
    /// The scopes (`api_key.scopes`; each is `<scopes>[i]`).
    pub scopes: &'a str,
    /// The expiry (`api_key.expire_time`).
    pub expiry: &'a str,
}

impl Limits {
    /// The limits of a credential minted by one with `self`'s, as `asked`.
    /// What the request leaves unset is the parent's: no binding asked is
    /// the parent's binding, no expiry the parent's expiry. What it asks
    /// for beyond the parent's is `INVALID_ARGUMENT`, each field named: a
    /// binding outside the parent's (another project, or another resource
    /// than the parent's), a scope the parent's do not cover, an expiry
    /// after the parent's.
    pub fn narrow(&self, asked: Limits, fields: LimitFields<'_>) -> Result<Limits, Error> {
        let mut v = Violations::new();
        let binding = match (asked.binding, self.binding) {
            (None, parent) => parent,
            (Some(b), None) => Some(b),
            (Some(b), Some(parent)) => {
                if b.project != parent.project {
                    v.add(fields.project, "must be the creator's own project");
                } else if !b.within(&parent) {
                    v.add(fields.resource, "must be the creator's own resource");
                }
                Some(b)
            }
        };
        for (i, scope) in asked.scopes.iter().enumerate() {
            if !covers(&self.scopes, scope) {
                v.add(
                    format!("{}[{i}]", fields.scopes),
                    "grants more than the caller holds",
                );
            }
        }
        let expires_at = match (asked.expires_at, self.expires_at) {
            (None, parent) => parent,
            (Some(e), Some(parent)) if e > parent => {
                v.add(fields.expiry, "must not be after the creator's own expiry");
                Some(e)
            }
            (Some(e), _) => Some(e),
        };
        v.finish()?;
        Ok(Limits {
            binding,
            scopes: asked.scopes,
            expires_at,
        })
    }

    /// The expiry of a token minted now for a credential of these limits,
    /// to live until `until`: no later than the credential's own.
    pub fn cap(&self, until: DateTime<Utc>) -> DateTime<Utc> {
        self.expires_at.map_or(until, |e| e.min(until))
    }
}

/// Whether the patterns `held` cover a requested scope pattern: every
/// permission the scope could match is granted. A held `*` covers
/// anything; otherwise segment by segment, a held `*` covering any
/// segment and any other only itself.
pub fn covers(held: &[String], scope: &str) -> bool {
    held.iter().any(|h| {
        if h == "*" {
            return true;
        }
        let hs: Vec<&str> = h.split('.').collect();
        let ss: Vec<&str> = scope.split('.').collect();
        (hs.len() == ss.len() && hs.iter().zip(&ss).all(|(h, s)| *h == "*" || h == s))
            || (!scope.contains('*') && pattern_matches(h, scope))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: LimitFields<'static> = LimitFields {
        project: "p",
        resource: "r",
        scopes: "s",
        expiry: "e",
    };

    fn limits(binding: Option<Binding>, scopes: &[&str], expires_at: Option<i64>) -> Limits {
        Limits {
            binding,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: expires_at.and_then(|s| DateTime::from_timestamp(s, 0)),
        }
    }

    fn fields(e: Error) -> Vec<String> {
        e.violations().iter().map(|v| v.field.clone()).collect()
    }

    #[test]
    fn what_a_request_leaves_unset_is_the_parents() {
        let p = Binding::of(Some(Uuid::now_v7()), Some(Uuid::now_v7()));
        let parent = limits(p, &["delivery.*.*"], Some(2000));
        let got = parent
            .narrow(limits(None, &["delivery.tasks.read"], None), FIELDS)
            .expect("narrower");
        assert_eq!(got, limits(p, &["delivery.tasks.read"], Some(2000)));
    }

    #[test]
    fn more_than_the_parent_has_is_refused_field_by_field() {
        let p = Binding::of(Some(Uuid::now_v7()), None);
        let parent = limits(p, &["delivery.*.read"], Some(2000));
        let other = Binding::of(Some(Uuid::now_v7()), None);
        let asked = limits(other, &["delivery.tasks.read", "*"], Some(2001));
        let e = parent.narrow(asked, FIELDS).expect_err("wider");
        assert_eq!(fields(e), ["p", "s[1]", "e"]);

        let r = Binding::of(Some(Uuid::now_v7()), Some(Uuid::now_v7()));
        let parent = limits(r, &["*"], None);
        let sibling = r.map(|b| Binding {
            resource: Some(Uuid::now_v7()),
            ..b
        });
        let whole_project = r.map(|b| Binding {
            resource: None,
            ..b
        });
        for asked in [sibling, whole_project] {
            let e = parent.narrow(limits(asked, &["*"], None), FIELDS);
            assert_eq!(fields(e.expect_err("wider")), ["r"]);
        }
    }

    #[test]
    fn an_unbound_parent_passes_on_what_is_asked_within_its_scopes() {
        let parent = limits(None, &["*"], None);
        let asked = limits(
            Binding::of(Some(Uuid::now_v7()), None),
            &["*.*.read"],
            Some(9),
        );
        assert_eq!(parent.narrow(asked.clone(), FIELDS).expect("ok"), asked);
    }

    #[test]
    fn a_token_expires_no_later_than_its_credential() {
        let at = |s| DateTime::from_timestamp(s, 0).expect("time");
        assert_eq!(limits(None, &[], Some(100)).cap(at(400)), at(100));
        assert_eq!(limits(None, &[], Some(900)).cap(at(400)), at(400));
        assert_eq!(limits(None, &[], None).cap(at(400)), at(400));
    }

    #[test]
    fn a_binding_admits_its_project_and_its_resource() {
        let (p, r, x) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let project = Binding::of(Some(p), None).expect("bound");
        assert!(project.admits(Some(p), x));
        assert!(!project.admits(Some(x), x));
        assert!(!project.admits(None, x), "nothing organization-wide");
        let resource = Binding::of(Some(p), Some(r)).expect("bound");
        assert!(resource.admits(Some(p), r));
        assert!(!resource.admits(Some(p), x));
        assert_eq!(project.narrow_list("f", None).ok(), Some(p));
        assert_eq!(project.narrow_list("f", Some(p)).ok(), Some(p));
        assert_eq!(
            project.narrow_list("f", Some(x)).err().map(|e| e.reason()),
            Some(BOUND_REASON)
        );
        assert!(resource.narrow_list("f", None).is_err());
    }

    #[test]
    fn covering_is_per_segment() {
        let held = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(covers(&held(&["*"]), "*"));
        assert!(covers(&held(&["*.*.read"]), "delivery.*.read"));
        assert!(covers(
            &held(&["delivery.tasks.read"]),
            "delivery.tasks.read"
        ));
        assert!(!covers(&held(&["delivery.*.read"]), "*.*.read"));
        assert!(!covers(&held(&["delivery.tasks.read"]), "delivery.*.read"));
        assert!(!covers(&held(&["*.*.read"]), "*"));
    }
}
