//! Parse-once validation at the edge. A handler collects every problem of a
//! request in one [`Violations`] and fails with all of them at once, each
//! naming its field by proto path.

use foundry_domain::{FieldPath, Id, path_from_str};
use tonic_types::FieldViolation;
use uuid::Uuid;

use crate::error::Error;

/// Collects field violations while a request is parsed.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` when nothing was recorded, else `INVALID_ARGUMENT` with them all.
    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(self.0))
        }
    }

    /// Ends a parse: `INVALID_ARGUMENT` with every violation recorded, else
    /// the value `build` assembles from the parsed fields (each an `Option`
    /// that is `Some` exactly when its parser recorded nothing, so `?` in
    /// `build` cannot fail). A parser that returned `None` without a
    /// violation is a bug, reported as `INTERNAL`, never a half-parsed value.
    pub fn finish_with<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, Error> {
        self.finish()?;
        build().ok_or_else(|| {
            Error::internal(anyhow::anyhow!(
                "a field parser returned nothing without recording a violation"
            ))
        })
    }

    /// A required UUID.
    pub fn id(&mut self, field: &str, value: &str) -> Option<Uuid> {
        if value.is_empty() {
            self.add(field, "is required");
            return None;
        }
        self.parse_id(field, value)
    }

    /// The one id a request names (Get, Delete, custom methods): a
    /// field-level `INVALID_ARGUMENT` when missing or malformed.
    pub fn require_id(field: &str, value: &str) -> Result<Uuid, Error> {
        let mut v = Violations::new();
        let id = v.id(field, value);
        v.finish()?;
        id.ok_or_else(|| Error::invalid_field(field, "is required"))
    }

    /// The one id of kind `K` a request names (Get, Delete, custom
    /// methods): a field-level `INVALID_ARGUMENT` when missing or malformed.
    pub fn require_id_of<K>(field: &str, value: &str) -> Result<Id<K>, Error> {
        Self::require_id(field, value).map(Id::from_uuid)
    }

    /// An optional time: `Some(None)` when unset, `None` (and a violation)
    /// when out of range.
    pub fn opt_time(
        &mut self,
        field: &str,
        value: Option<&prost_types::Timestamp>,
    ) -> Option<Option<chrono::DateTime<chrono::Utc>>> {
        match value {
            None => Some(None),
            Some(t) => match crate::convert::from_timestamp(t) {
                Some(d) => Some(Some(d)),
                None => {
                    self.add(field, "must be a valid time");
                    None
                }
            },
        }
    }

    /// A required id of a resource of kind `K`.
    pub fn id_of<K>(&mut self, field: &str, value: &str) -> Option<Id<K>> {
        self.id(field, value).map(Id::from_uuid)
    }

    /// An optional id of kind `K`: `Some(None)` when empty, `None` (and a
    /// violation) when malformed.
    pub fn maybe_id<K>(&mut self, field: &str, value: &str) -> Option<Option<Id<K>>> {
        if value.is_empty() {
            Some(None)
        } else {
            self.parse_id(field, value).map(|u| Some(Id::from_uuid(u)))
        }
    }

    /// An optional request id (AIP-155): `Some(None)` when empty.
    pub fn maybe_request_id(&mut self, value: &str) -> Option<Option<Uuid>> {
        if value.is_empty() {
            Some(None)
        } else {
            self.parse_id("request_id", value).map(Some)
        }
    }

    /// An optional UUID: empty means `None`.
    pub fn opt_id(&mut self, field: &str, value: &str) -> Option<Uuid> {
        if value.is_empty() {
            None
        } else {
            self.parse_id(field, value)
        }
    }

    fn parse_id(&mut self, field: &str, value: &str) -> Option<Uuid> {
        // Only the canonical hyphenated form: ids are compared as strings by
        // gateways and clients, so one id must have one spelling.
        match Uuid::try_parse(value) {
            Ok(id) if value.len() == 36 => Some(id),
            _ => {
                self.add(field, "must be a UUID (8-4-4-4-12 hex digits)");
                None
            }
        }
    }

    /// A required string of `min..=max` characters, trimmed of surrounding
    /// white space, without control characters.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> Option<String> {
        let trimmed = value.trim();
        let len = trimmed.chars().count();
        if len == 0 && min > 0 {
            self.add(field, "is required");
            None
        } else if len < min {
            self.add(field, format!("must be at least {min} characters"));
            None
        } else if len > max {
            self.add(field, format!("must be at most {max} characters"));
            None
        } else if trimmed.chars().any(char::is_control) {
            self.add(field, "must not contain control characters");
            None
        } else {
            Some(trimmed.to_owned())
        }
    }

    /// A slug: 3..=63 characters of `a-z`, `0-9` and `-`, starting with a
    /// letter, not ending with a dash.
    pub fn slug(&mut self, field: &str, value: &str) -> Option<String> {
        let ok = (3..=63).contains(&value.len())
            && value.starts_with(|c: char| c.is_ascii_lowercase())
            && !value.ends_with('-')
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if value.is_empty() {
            self.add(field, "is required");
            None
        } else if !ok {
            self.add(
                field,
                "must be 3-63 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'",
            );
            None
        } else {
            Some(value.to_owned())
        }
    }

    /// An email address (shape only; normalized to lowercase).
    pub fn email(&mut self, field: &str, value: &str) -> Option<String> {
        let v = value.trim().to_lowercase();
        let shape_ok = v.len() <= 254
            && v.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
            })
            && !v.chars().any(|c| c.is_whitespace() || c.is_control());
        if v.is_empty() {
            self.add(field, "is required");
            None
        } else if !shape_ok {
            self.add(field, "must be an email address");
            None
        } else {
            Some(v)
        }
    }

    /// An optional `https://` URL of at most `max` bytes.
    pub fn opt_https_url(&mut self, field: &str, value: &str, max: usize) -> Option<String> {
        if value.is_empty() {
            return Some(String::new());
        }
        if value.len() > max {
            self.add(field, format!("must be at most {max} characters"));
            None
        } else if !value.starts_with("https://")
            || value.len() <= "https://".len()
            || value.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            self.add(field, "must be an https:// URL");
            None
        } else {
            Some(value.to_owned())
        }
    }

    /// A proto enum value that must be known and not `*_UNSPECIFIED`.
    pub fn enum_value<E: TryFrom<i32>>(&mut self, field: &str, value: i32) -> Option<E> {
        if value == 0 {
            self.add(field, "is required");
            return None;
        }
        match E::try_from(value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.add(field, format!("unknown value {value}"));
                None
            }
        }
    }

    /// A proto enum filter: unspecified means `None` (no filter).
    pub fn opt_enum_value<E: TryFrom<i32>>(&mut self, field: &str, value: i32) -> Option<E> {
        if value == 0 {
            None
        } else {
            self.enum_value(field, value)
        }
    }
}

/// The paths of an update mask (AIP-134) as the resource's path enum, in the
/// order given. An empty or missing mask is refused; `*` alone means every
/// updatable path. Each unknown, output-only, elsewhere-changed or repeated
/// path is a violation on `update_mask` that names it.
pub fn mask<P: FieldPath>(v: &mut Violations, mask: Option<&prost_types::FieldMask>) -> Vec<P> {
    let Some(mask) = mask.filter(|m| !m.paths.is_empty()) else {
        v.add(
            "update_mask",
            "is required (name the fields to change, or `*`)",
        );
        return Vec::new();
    };
    if mask.paths.iter().any(|p| p == "*") {
        if mask.paths.len() > 1 {
            v.add("update_mask", "`*` stands alone");
            return Vec::new();
        }
        return P::ALL.to_vec();
    }
    let mut out: Vec<P> = Vec::new();
    for path in &mask.paths {
        if let Some(p) = path_from_str::<P>(path) {
            if out.contains(&p) {
                v.add("update_mask", format!("`{path}` is named more than once"));
            } else {
                out.push(p);
            }
        } else if P::OUTPUT_ONLY.contains(&path.as_str()) {
            v.add("update_mask", format!("`{path}` is output only"));
        } else if let Some(why) = P::elsewhere(path) {
            v.add("update_mask", format!("`{path}` {why}"));
        } else {
            v.add("update_mask", format!("`{path}` is not an updatable field"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_of_a_request_is_reported_at_once() {
        let mut v = Violations::new();
        assert!(v.id("id", "nope").is_none());
        assert!(v.text("name", &"x".repeat(300), 1, 200).is_none());
        assert!(v.slug("slug", "Bad Slug").is_none());
        let err = v.finish().expect_err("three violations");
        assert_eq!(err.violations().len(), 3);
    }

    #[test]
    fn ids_must_be_canonical_uuids() {
        let mut v = Violations::new();
        assert!(v.id("id", "0190b6a0-0000-7000-8000-000000000000").is_some());
        assert!(v.id("id", "0190b6a000007000800000000000000").is_none());
        assert!(v.id("id", "0190b6a0000070008000000000000000").is_none());
        assert!(v.id("id", "").is_none());
        assert_eq!(v.0.len(), 3);
    }

    #[test]
    fn unknown_enum_values_are_rejected() {
        #[derive(Debug)]
        struct Two;
        impl TryFrom<i32> for Two {
            type Error = ();
            fn try_from(v: i32) -> Result<Self, ()> {
                if v == 2 { Ok(Two) } else { Err(()) }
            }
        }
        let mut v = Violations::new();
        assert!(v.enum_value::<Two>("role", 2).is_some());
        assert!(v.enum_value::<Two>("role", 99).is_none());
        assert!(v.enum_value::<Two>("role", 0).is_none());
        assert_eq!(v.0.len(), 2);
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Path {
        Name,
        Slug,
    }

    impl FieldPath for Path {
        const ALL: &'static [Self] = &[Path::Name, Path::Slug];
        const OUTPUT_ONLY: &'static [&'static str] = &["create_time"];
        fn name(self) -> &'static str {
            match self {
                Path::Name => "name",
                Path::Slug => "slug",
            }
        }
        fn elsewhere(path: &str) -> Option<&'static str> {
            (path == "state").then_some("changes through SetState")
        }
    }

    fn paths(list: &[&str]) -> (Vec<Path>, Vec<String>) {
        let mut v = Violations::new();
        let m = prost_types::FieldMask {
            paths: list.iter().map(|p| (*p).to_owned()).collect(),
        };
        let out = mask::<Path>(&mut v, Some(&m));
        (out, v.0.into_iter().map(|f| f.description).collect())
    }

    #[test]
    fn a_mask_names_each_refused_path() {
        assert_eq!(
            paths(&["slug", "name"]),
            (vec![Path::Slug, Path::Name], vec![])
        );
        assert_eq!(paths(&["*"]).0, vec![Path::Name, Path::Slug]);
        let (_, errors) = paths(&["name", "name", "create_time", "state", "nope"]);
        assert_eq!(
            errors,
            vec![
                "`name` is named more than once",
                "`create_time` is output only",
                "`state` changes through SetState",
                "`nope` is not an updatable field",
            ]
        );
        assert_eq!(paths(&["*", "name"]).1, vec!["`*` stands alone"]);
        let mut v = Violations::new();
        assert!(mask::<Path>(&mut v, None).is_empty());
        assert!(!v.is_empty());
    }

    #[test]
    fn finish_with_returns_the_value_or_every_violation() {
        let mut v = Violations::new();
        let a = v.text("a", "x", 1, 5);
        let b = v.text("b", "y", 1, 5);
        let built = v.finish_with(|| Some((a?, b?)));
        assert_eq!(built.ok(), Some(("x".to_owned(), "y".to_owned())));
        let mut v = Violations::new();
        let a = v.text("a", "", 1, 5);
        let err = v.finish_with(|| a).expect_err("a is required");
        assert_eq!(err.violations().len(), 1);
        // A parser bug (None without a violation) is INTERNAL, not a value.
        let err = Violations::new()
            .finish_with(|| None::<()>)
            .expect_err("no value");
        assert_eq!(err.code(), tonic::Code::Internal);
    }
}
