//! SQL of the audit service, one module per aggregate: runtime `query_as`
//! into rows, columns listed, every tenant query led by `org_id`; rows are
//! decoded into domain types here (stored enums loudly).

pub mod checkpoints;
pub mod events;
pub mod records;
pub mod settings;

pub use events::{
    EventRow, Head, Keyset, ListFilter, chain_chunk, event_at, existing_ids, get_event, get_head,
    hash_at, insert_events, list_events, lock_heads, update_heads,
};
