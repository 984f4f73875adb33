//! Delivery rules: the states of programs, requirements, tasks, subtasks,
//! goals, work orders, risks and sprints and which moves between them are
//! allowed, a risk's severity, a sprint gate's verdict, and the requirement
//! graph (cycle detection, planning order) in [`graph`]. One module per
//! aggregate; no I/O, no transport: errors are [`Error`]
//! (`foundry_domain::DomainError`), mapped to a gRPC status in one place.

pub use foundry_domain::{DomainError as Error, StoredEnum};

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

/// [`PROGRAM_CHILD_OUTPUT_ONLY`] and then `extra`, as one list of `N`
/// (checked when compiled): the output-only fields of a resource that has
/// more than those.
pub const fn program_child_output_only_and<const N: usize>(
    extra: &[&'static str],
) -> [&'static str; N] {
    let base = PROGRAM_CHILD_OUTPUT_ONLY;
    assert!(
        N == base.len() + extra.len(),
        "N is the length of both lists"
    );
    let mut all = [""; N];
    let mut i = 0;
    while i < N {
        all[i] = if i < base.len() {
            base[i]
        } else {
            extra[i - base.len()]
        };
        i += 1;
    }
    all
}

/// `reason` with `message` (a failed precondition) when `refused`.
pub fn refuse_if(
    refused: bool,
    reason: &'static str,
    message: impl Into<String>,
) -> Result<(), Error> {
    if refused {
        return Err(Error::failed_precondition(reason, message));
    }
    Ok(())
}

/// Refuses a workflow move from `from` to `to` unless `to` is one of
/// `allowed` (`from`'s successors): `reason`, naming `what` moves and where
/// it may go instead.
pub fn check_move<S: StoredEnum + PartialEq>(
    what: &str,
    reason: &'static str,
    from: S,
    to: S,
    allowed: &[S],
) -> Result<(), Error> {
    if allowed.contains(&to) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
    Err(Error::failed_precondition(
        reason,
        format!(
            "{what} cannot move from {} to {}; allowed: {}",
            from.as_str(),
            to.as_str(),
            names.join(", ")
        ),
    ))
}

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
