//! Update-mask paths (AIP-134) as an enum per resource.
//!
//! A resource lists its updatable paths as enum variants; the platform kit
//! parses a `FieldMask` into them (refusing unknown, output-only and repeated
//! paths, each by name), the api module parses each named field's new value
//! with an exhaustive `match` over the enum, and the domain applies the
//! resulting patch with another exhaustive `match`. No wildcard arm
//! anywhere, so a new path that is not handled does not compile.

use std::fmt::Debug;

/// The updatable paths of one resource.
pub trait FieldPath: Copy + Eq + Debug + 'static {
    /// Every updatable path (what `*` means), in the order they are applied.
    const ALL: &'static [Self];
    /// Paths of fields the server sets (`id`, `create_time`, `etag`, …):
    /// naming one is refused as "output only".
    const OUTPUT_ONLY: &'static [&'static str];

    /// The proto field path.
    fn name(self) -> &'static str;

    /// Why `path`, a real field that is neither updatable here nor output
    /// only, is refused (e.g. a status that has its own method). `None` for
    /// every other path.
    fn elsewhere(path: &str) -> Option<&'static str> {
        let _ = path;
        None
    }
}

/// An update's change of one field: its path and how it is written. Written
/// by `#[derive(Change)]` from the change enum (one variant per updatable
/// field), which also writes the path enum, so the fields an update may
/// change are listed once.
pub trait Change {
    /// The mask path it changes.
    type Path: FieldPath;
    /// What it writes to (the resource's own fields).
    type Fields;

    /// Its path.
    fn path(&self) -> Self::Path;
    /// Writes its value to its field.
    fn set(self, fields: &mut Self::Fields);
}

/// The path named `s`, if `P` has one.
pub fn path_from_str<P: FieldPath>(s: &str) -> Option<P> {
    P::ALL.iter().copied().find(|p| p.name() == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Path {
        Title,
        Labels,
    }

    impl FieldPath for Path {
        const ALL: &'static [Self] = &[Path::Title, Path::Labels];
        const OUTPUT_ONLY: &'static [&'static str] = &["id"];
        fn name(self) -> &'static str {
            match self {
                Path::Title => "title",
                Path::Labels => "labels",
            }
        }
    }

    #[test]
    fn paths_parse_by_their_proto_name() {
        assert_eq!(path_from_str::<Path>("labels"), Some(Path::Labels));
        assert_eq!(path_from_str::<Path>("id"), None);
        assert_eq!(Path::elsewhere("status"), None);
    }
}
