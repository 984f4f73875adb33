//! SQL of the identity service: runtime `query_as` into private `FromRow`
//! rows decoded into domain types (stored enums loudly), columns listed,
//! every tenant query led by `org_id`. Constraint names map to errors here
//! and nowhere else. One module per aggregate.

mod api_keys;
mod invitations;
mod linked;
mod memberships;
mod organizations;
mod service_accounts;
mod sessions;
mod users;

pub use api_keys::*;
pub use invitations::*;
pub use linked::*;
pub use memberships::*;
pub use organizations::*;
pub use service_accounts::*;
pub use sessions::*;
pub use users::*;
