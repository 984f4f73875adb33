//! Typed ids.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// The id of a resource of kind `K`: a UUID that cannot be passed where
/// another kind's id is expected. `K` is a marker (an empty enum or the
/// domain type itself); it is never stored.
pub struct Id<K: ?Sized>(Uuid, PhantomData<fn() -> K>);

impl<K: ?Sized> Id<K> {
    /// Wraps a UUID known to name a `K` (parsed at the edge, read from a
    /// row).
    pub const fn from_uuid(id: Uuid) -> Self {
        Id(id, PhantomData)
    }

    /// A new UUIDv7 id.
    pub fn new_v7() -> Self {
        Id::from_uuid(Uuid::now_v7())
    }

    /// The UUID (to bind in SQL, to compare across kinds on purpose).
    pub const fn uuid(self) -> Uuid {
        self.0
    }
}

// Hand-written rather than derived: a derive would demand `K: Clone`, … of
// the marker, which is never held.
impl<K: ?Sized> Clone for Id<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: ?Sized> Copy for Id<K> {}
impl<K: ?Sized> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<K: ?Sized> Eq for Id<K> {}
impl<K: ?Sized> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: ?Sized> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}
impl<K: ?Sized> Hash for Id<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}
impl<K: ?Sized> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}
impl<K: ?Sized> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl<K: ?Sized> From<Id<K>> for Uuid {
    fn from(id: Id<K>) -> Uuid {
        id.0
    }
}
impl<K: ?Sized> Serialize for Id<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl<'de, K: ?Sized> Deserialize<'de> for Id<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Uuid::deserialize(d).map(Id::from_uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum Task {}

    #[test]
    fn an_id_shows_and_serializes_as_its_uuid() {
        let u = Uuid::now_v7();
        let id: Id<Task> = Id::from_uuid(u);
        assert_eq!(id.to_string(), u.to_string());
        assert_eq!(serde_json::to_value(id).ok(), serde_json::to_value(u).ok());
        assert_eq!(Uuid::from(id), u);
    }
}
