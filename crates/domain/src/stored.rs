//! Enums stored as text.

use std::fmt;

/// An enum the database stores as text (CHECK-constrained in the schema).
/// Decoding an unknown value is an error that names the table, column and
/// value; it never falls back to a variant.
pub trait StoredEnum: Copy + Eq + fmt::Debug + 'static {
    /// Every variant.
    const ALL: &'static [Self];

    /// The stored spelling.
    fn as_str(self) -> &'static str;

    /// The variant stored as `s`, or an error naming where it was read.
    fn decode(table: &'static str, column: &'static str, s: &str) -> Result<Self, UnknownValue> {
        Self::parse(s).ok_or_else(|| UnknownValue {
            table,
            column,
            value: s.to_owned(),
        })
    }

    /// The variant spelled `s`, if any.
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

/// Declares an enum stored as text (CHECK-constrained in the schema): the
/// enum, its [`StoredEnum`] spelling, and inherent `ALL` and `as_str`. Its
/// proto mapping is `foundry_platform::proto_enum!`, in `api`, so the
/// domain knows no wire type.
///
/// ```
/// foundry_domain::stored_enum! {
///     /// Where a subtask stands.
///     SubtaskStatus {
///         /// Not started.
///         Todo = "todo",
///         /// Finished.
///         Done = "done",
///     }
/// }
/// assert_eq!(SubtaskStatus::Done.as_str(), "done");
/// ```
#[macro_export]
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $crate::StoredEnum for $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];

            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        // As its stored text: in audit events, in rows read and written.
        impl $crate::__serde::Serialize for $name {
            fn serialize<S: $crate::__serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        // Loudly: a text no variant matches is an error naming it.
        impl<'de> $crate::__serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as $crate::__serde::Deserialize>::deserialize(d)?;
                <$name as $crate::StoredEnum>::parse(&s).ok_or_else(|| {
                    <D::Error as $crate::__serde::de::Error>::custom(format_args!(
                        "{:?} is no {}",
                        s,
                        stringify!($name)
                    ))
                })
            }
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = <$name as $crate::StoredEnum>::ALL;

            /// Database spelling.
            pub fn as_str(self) -> &'static str {
                <$name as $crate::StoredEnum>::as_str(self)
            }
        }
    };
}

/// A stored value that no variant matches: the schema and the code
/// disagree (a migration ahead of the binary, a hand edit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownValue {
    /// The table read.
    pub table: &'static str,
    /// The column read.
    pub column: &'static str,
    /// What it held.
    pub value: String,
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{} holds {:?}, which no variant matches",
            self.table, self.column, self.value
        )
    }
}

impl std::error::Error for UnknownValue {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Status {
        Open,
        Done,
    }

    impl StoredEnum for Status {
        const ALL: &'static [Self] = &[Status::Open, Status::Done];
        fn as_str(self) -> &'static str {
            match self {
                Status::Open => "open",
                Status::Done => "done",
            }
        }
    }

    #[test]
    fn an_unknown_stored_value_is_an_error_naming_where_it_was() {
        assert_eq!(Status::decode("tasks", "status", "done"), Ok(Status::Done));
        let e = Status::decode("tasks", "status", "archived").expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "tasks.status holds \"archived\", which no variant matches"
        );
    }
}
