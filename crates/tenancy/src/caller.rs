//! The verified caller, put into request extensions by the tenancy layer and
//! read by handlers.

use std::sync::Arc;

use foundry_platform::Error;
use uuid::Uuid;

use crate::access::granted;
use crate::binding::{Binding, Limits};
use crate::jwt::{Claims, PrincipalType};

/// Who is calling, as the token says (verified).
#[derive(Clone, Debug)]
pub struct Caller {
    /// The verified claims.
    pub claims: Arc<Claims>,
    /// The raw bearer token, for propagation to other services.
    pub token: Arc<str>,
    /// The call's request id.
    pub request_id: Uuid,
}

impl Caller {
    /// The principal id.
    pub fn principal_id(&self) -> Uuid {
        self.claims.sub
    }

    /// The principal type.
    pub fn principal_type(&self) -> PrincipalType {
        self.claims.ptype
    }

    /// The organization the token acts in; `PERMISSION_DENIED` if none.
    pub fn org_id(&self) -> Result<Uuid, Error> {
        self.claims.org_id.ok_or_else(|| {
            Error::permission_denied(
                "NO_ACTIVE_ORGANIZATION",
                "this method needs a token acting in an organization; exchange for one with org_id",
            )
        })
    }

    /// Checks that an organization named in a request is the token's own.
    /// Naming another organization is `PERMISSION_DENIED`, whether or not it
    /// exists, so nothing is revealed.
    pub fn require_org(&self, field: &str, org_id: &str) -> Result<Uuid, Error> {
        let own = self.org_id()?;
        let mut v = foundry_platform::validate::Violations::new();
        let named = v.id(field, org_id);
        v.finish()?;
        if named == Some(own) {
            Ok(own)
        } else {
            Err(Error::permission_denied(
                "WRONG_ORGANIZATION",
                "the token does not act in that organization",
            ))
        }
    }

    /// The user id, for methods only users may call.
    pub fn user_id(&self) -> Result<Uuid, Error> {
        if self.claims.ptype == PrincipalType::User {
            Ok(self.claims.sub)
        } else {
            Err(Error::permission_denied(
                "USER_REQUIRED",
                "only a user may call this method",
            ))
        }
    }

    /// The role in the active organization.
    pub fn role(&self) -> Option<&str> {
        self.claims.org_role.as_deref()
    }

    /// Whether the token grants a permission.
    pub fn can(&self, permission: &str) -> bool {
        granted(&self.claims.perms, permission)
    }

    /// The permission patterns the token grants.
    pub fn permissions(&self) -> &[String] {
        &self.claims.perms
    }

    /// What the token is confined to, if it is bound ([`Binding`]).
    pub fn binding(&self) -> Option<Binding> {
        Binding::of(self.claims.project_id, self.claims.resource_id)
    }

    /// Whether the caller may see a thing of `project` (none: of the
    /// organization as a whole) whose id is `id`: anything of its
    /// organization when it is not bound, else what its binding admits.
    pub fn sees(&self, project: Option<Uuid>, id: Uuid) -> bool {
        self.binding().is_none_or(|b| b.admits(project, id))
    }

    /// The project a list is narrowed to, given the project the request
    /// names in `field` (`asked`): `asked` for a caller not bound; for a
    /// bound one, its project ([`Binding::narrow_list`]: another project is
    /// `PERMISSION_DENIED` `PROJECT_BOUND_CREDENTIAL`).
    pub fn confine(&self, field: &str, asked: Option<Uuid>) -> Result<Option<Uuid>, Error> {
        match self.binding() {
            None => Ok(asked),
            Some(b) => b.narrow_list(field, asked).map(Some),
        }
    }

    /// What a credential the caller mints may have at most, with `scopes`
    /// the permissions it holds now: its binding and its credential's
    /// expiry ([`Limits::narrow`]).
    pub fn limits(&self, scopes: Vec<String>) -> Limits {
        Limits {
            binding: self.binding(),
            scopes,
            expires_at: self
                .claims
                .cexp
                .and_then(|s| chrono::DateTime::from_timestamp(s, 0)),
        }
    }
}

/// Reads the caller of a request (set by the tenancy layer). Missing means
/// the handler runs without the layer, a wiring bug: `UNAUTHENTICATED`.
pub fn caller<T>(req: &tonic::Request<T>) -> Result<Caller, Error> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Error::unauthenticated("NO_CALLER", "authentication required"))
}

/// Reads the caller if there is one (public methods called with a token).
pub fn caller_opt<T>(req: &tonic::Request<T>) -> Option<Caller> {
    req.extensions().get::<Caller>().cloned()
}
