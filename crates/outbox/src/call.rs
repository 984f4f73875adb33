//! What every tenant handler starts from: who calls, in which
//! organization, and the audit actor of the call.

use foundry_platform::Error;
use foundry_tenancy::access::granted;
use foundry_tenancy::{Access, Caller, caller};
use uuid::Uuid;

use crate::event::Actor;

/// A call acting in an organization.
#[derive(Clone, Debug)]
pub struct Call {
    /// The authenticated caller.
    pub caller: Caller,
    /// The organization the call acts in.
    pub org_id: Uuid,
    /// The audit actor (caller, request id, trace, client).
    pub actor: Actor,
    /// The permission the method declares (`identity.members.write`), on
    /// which the tenancy layer admitted the call by the token's grants;
    /// `None` for a call that did not come through the layer.
    pub permission: Option<String>,
}

impl Call {
    /// The call `req` makes to `service`: `UNAUTHENTICATED` without a
    /// caller, `PERMISSION_DENIED` without an active organization.
    pub fn of<T>(service: &'static str, req: &tonic::Request<T>) -> Result<Call, Error> {
        let caller = caller(req)?;
        let org_id = caller.org_id()?;
        Ok(Call {
            caller,
            org_id,
            actor: Actor::of(service, req),
            permission: req
                .extensions()
                .get::<Access>()
                .map(|a| a.permission.clone()),
        })
    }

    /// Decides the call again on `held`, what the caller is granted now as
    /// the service's own records say (a user's role as its membership is
    /// in the call's transaction), rather than on what its token said when
    /// it was minted: `PERMISSION_DENIED` `MISSING_PERMISSION` when `held`
    /// no longer grants the method's permission. A call that came without
    /// the layer's declaration is refused (fail closed).
    pub fn recheck(&self, held: &[String]) -> Result<(), Error> {
        let Some(permission) = &self.permission else {
            return Err(Error::permission_denied(
                "METHOD_NOT_DECLARED",
                "the call carries no declared permission to check",
            ));
        };
        if granted(held, permission) {
            Ok(())
        } else {
            Err(Error::permission_denied(
                "MISSING_PERMISSION",
                format!("the caller no longer holds {permission}"),
            )
            .with_metadata("permission", permission.clone()))
        }
    }

    /// The principal making the call.
    pub fn principal_id(&self) -> Uuid {
        self.caller.principal_id()
    }
}

/// A service's state, which names the service on the audit events of its
/// calls.
pub trait Serves: Send + Sync + 'static {
    /// The service's name on audit events (`delivery`).
    const SERVICE: &'static str;
}

/// A call to a tenant method as the method's function takes it
/// ([`foundry_platform::rpc::Methods::call`]): the service's state, the
/// [`Call`] (its caller and organization checked before the function
/// runs) and the request's message.
pub struct In<S, Q> {
    /// The service's state.
    pub state: std::sync::Arc<S>,
    /// Who calls, in which organization.
    pub call: Call,
    /// The request's message.
    pub req: Q,
}

impl<S: Serves, Q> foundry_platform::rpc::Called<std::sync::Arc<S>, Q> for In<S, Q> {
    fn called(state: std::sync::Arc<S>, req: tonic::Request<Q>) -> Result<Self, tonic::Status> {
        let call = Call::of(S::SERVICE, &req)?;
        Ok(In {
            state,
            call,
            req: req.into_inner(),
        })
    }
}
