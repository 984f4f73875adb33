//! Delivery rules: the states of programs, requirements, tasks, subtasks,
//! goals, work orders, risks and sprints and which moves between them are
//! allowed, a risk's severity, a sprint gate's verdict, and the requirement
//! graph (cycle detection, planning order) in [`graph`]. One module per
//! aggregate; no I/O, no transport: errors are [`Error`]
//! (`foundry_domain::DomainError`), mapped to a gRPC status in one place.

pub use foundry_domain::{DomainError as Error, StoredEnum};

/// An enum stored as lowercase text (CHECK-constrained in the schema):
/// the enum, its `ALL` and its [`StoredEnum`] spelling. Its proto mapping
/// lives in `api` (`proto_enum!`), so the domain knows no wire type.
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl StoredEnum for $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = <$name as StoredEnum>::ALL;

            /// Database spelling.
            pub fn as_str(self) -> &'static str {
                <$name as StoredEnum>::as_str(self)
            }
        }
    };
}

/// The output-only fields of a resource of a program (its `FieldPath::
/// OUTPUT_ONLY`): what an update mask naming one refuses as such.
pub const PROGRAM_CHILD_OUTPUT_ONLY: &[&str] = &[
    "id",
    "program_id",
    "created_by",
    "create_time",
    "update_time",
    "etag",
];

pub mod features;
pub mod gates;
pub mod goals;
pub mod graph;
pub mod ids;
pub mod planner_phases;
pub mod programs;
pub mod requirements;
pub mod risks;
pub mod sprints;
pub mod subtasks;
pub mod tasks;
pub mod work_orders;
pub mod workstreams;

pub use features::*;
pub use gates::*;
pub use goals::*;
pub use ids::*;
pub use planner_phases::*;
pub use programs::*;
pub use requirements::*;
pub use risks::*;
pub use sprints::*;
pub use subtasks::*;
pub use tasks::*;
pub use work_orders::*;
pub use workstreams::*;
