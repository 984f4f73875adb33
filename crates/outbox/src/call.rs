//! What every tenant handler starts from: who calls, in which
//! organization, and the audit actor of the call.

use foundry_platform::Error;
use foundry_tenancy::{Caller, caller};
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
        })
    }

    /// The principal making the call.
    pub fn principal_id(&self) -> Uuid {
        self.caller.principal_id()
    }
}
