//! The tenancy spine (see ARCHITECTURE.md): every call of every service is
//! authenticated locally against the identity service's published keys,
//! authorized against the method's declared access, and carries its caller
//! into handlers and onward to other services.

pub mod access;
pub mod binding;
pub mod caller;
pub mod jwt;
pub mod layer;
pub mod propagate;
pub mod server;
pub mod verifier;

pub use access::{Access, MethodTable, Scope};
pub use binding::{BOUND_REASON, Binding, LimitFields, Limits};
pub use caller::{Caller, caller, caller_opt};
pub use jwt::{Claims, OnBehalfOf, PrincipalType};
pub use layer::{ClientIp, IdentityArgs, Tenancy, TenancyLayer};
pub use propagate::Propagate;
pub use verifier::{KeySource, PublicKey, Verifier};
