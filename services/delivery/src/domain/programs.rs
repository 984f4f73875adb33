//! Programs: the delivery phases and how a program moves between them.

use chrono::{DateTime, Utc};
use foundry_domain::{Audited, Change, Patch, Record, Stamp};
use serde::{Deserialize, Serialize};

use super::*;

/// A delivery program (a project).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Record, Audited)]
#[record(project = id)]
pub struct Program {
    pub id: ProgramId,
    pub fields: NewProgram,
    /// Changed only through [`advance_phase`].
    pub phase: Phase,
    /// Set while archived (ArchiveProgram / UnarchiveProgram).
    pub archive_time: Option<DateTime<Utc>>,
    pub stamp: Stamp,
}

/// A program's own fields, held by a [`Program`]: to create, as parsed at the
/// edge (it starts in [`Phase::Discovery`], unarchived).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewProgram {
    pub name: String,
    /// Unique in the organization.
    pub slug: String,
    pub description: String,
    pub source_platform: String,
    pub target_platform: String,
}

/// One field's new value in an update.
#[derive(Clone, Debug, PartialEq, Change)]
#[change(path = ProgramPath, fields = NewProgram, output_only = &[
        "id",
        "phase",
        "archived",
        "archive_time",
        "created_by",
        "create_time",
        "update_time",
        "etag",
    ])]
pub enum ProgramChange {
    Name(String),
    Slug(String),
    Description(String),
    SourcePlatform(String),
    TargetPlatform(String),
}

impl Patch for Program {
    type Change = ProgramChange;
}

impl Program {
    /// Refuses changes to an archived program.
    pub fn check_not_archived(&self) -> Result<(), Error> {
        refuse_if(
            self.archive_time.is_some(),
            "PROGRAM_ARCHIVED",
            "the program is archived; unarchive it first",
        )
    }

    /// Refuses archiving an archived program.
    pub fn check_archivable(&self) -> Result<(), Error> {
        refuse_if(
            self.archive_time.is_some(),
            "PROGRAM_ALREADY_ARCHIVED",
            "the program is already archived",
        )
    }

    /// Refuses unarchiving a program that is not archived.
    pub fn check_unarchivable(&self) -> Result<(), Error> {
        refuse_if(
            self.archive_time.is_none(),
            "PROGRAM_NOT_ARCHIVED",
            "the program is not archived",
        )
    }
}

foundry_domain::stored_enum! {
    /// The delivery phase of a program, in order.
    Phase {
        /// Understanding the current system; where every program starts.
        Discovery = "discovery",
        /// Building.
        Build = "build",
        /// Testing.
        Test = "test",
        /// Deploying.
        Deploy = "deploy",
        /// Delivered.
        Complete = "complete",
    }
}

/// How a phase change relates to the phase order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhaseMove {
    /// Already there: nothing to do.
    Unchanged,
    /// The next phase: always allowed.
    Next,
    /// Further ahead than the next phase: forced only.
    Skip,
    /// An earlier phase: forced only.
    Back,
}

impl PhaseMove {
    /// Classifies a move from `from` to `to`.
    pub fn of(from: Phase, to: Phase) -> PhaseMove {
        let (a, b) = (from as i32, to as i32);
        if b == a {
            PhaseMove::Unchanged
        } else if b == a + 1 {
            PhaseMove::Next
        } else if b > a {
            PhaseMove::Skip
        } else {
            PhaseMove::Back
        }
    }

    /// The audit spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseMove::Unchanged => "unchanged",
            PhaseMove::Next => "next",
            PhaseMove::Skip => "skip",
            PhaseMove::Back => "back",
        }
    }
}

/// Checks a phase change. Moving to the next phase is always allowed;
/// skipping ahead or going back only when forced (the caller checked that
/// the forcer may). Returns what kind of move it is.
pub fn advance_phase(from: Phase, to: Phase, force: bool) -> Result<PhaseMove, Error> {
    let step = PhaseMove::of(from, to);
    match step {
        PhaseMove::Skip if !force => Err(Error::failed_precondition(
            "PHASE_SKIP_NOT_ALLOWED",
            format!(
                "a program in phase {} moves to {} next; skipping to {} needs force",
                from.as_str(),
                next_phase(from).map_or("nothing", Phase::as_str),
                to.as_str()
            ),
        )),
        PhaseMove::Back if !force => Err(Error::failed_precondition(
            "PHASE_BACKWARDS_NOT_ALLOWED",
            format!(
                "a program in phase {} cannot go back to {} without force",
                from.as_str(),
                to.as_str()
            ),
        )),
        _ => Ok(step),
    }
}

/// The phase after `p`, if any.
pub fn next_phase(p: Phase) -> Option<Phase> {
    Phase::ALL.get(p as usize + 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_advance_one_step_at_a_time_unless_forced() {
        use Phase::*;
        for (from, to, force, step) in [
            (Discovery, Build, false, PhaseMove::Next),
            (Deploy, Complete, false, PhaseMove::Next),
            (Build, Build, false, PhaseMove::Unchanged),
            (Discovery, Complete, true, PhaseMove::Skip),
            (Complete, Discovery, true, PhaseMove::Back),
        ] {
            let got = advance_phase(from, to, force).ok();
            assert_eq!(got, Some(step), "{from:?} -> {to:?}");
        }
        let skip = advance_phase(Discovery, Test, false).expect_err("skip");
        assert_eq!(skip.reason(), "PHASE_SKIP_NOT_ALLOWED");
        assert!(skip.message().contains("build"), "{}", skip.message());
        let back = advance_phase(Test, Build, false).expect_err("back");
        assert_eq!(back.reason(), "PHASE_BACKWARDS_NOT_ALLOWED");
        assert_eq!(next_phase(Complete), None);
        assert_eq!(next_phase(Discovery), Some(Build));
    }
}
