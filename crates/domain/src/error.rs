//! The domain's error: what a rule refuses, with a stable reason, and
//! nothing of the transport. `foundry_platform::Error` converts it (and so
//! gives it its gRPC code) in one `From`.

use std::fmt;

/// What kind of refusal: each maps to one gRPC code at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A value is not acceptable (`INVALID_ARGUMENT`, with the field).
    Invalid,
    /// The thing is not there (`NOT_FOUND`).
    NotFound,
    /// A unique value is taken (`ALREADY_EXISTS`).
    AlreadyExists,
    /// A rule or state machine refuses the change (`FAILED_PRECONDITION`).
    FailedPrecondition,
    /// A race was lost or a version is stale; retry (`ABORTED`).
    Aborted,
    /// The caller may not (`PERMISSION_DENIED`).
    PermissionDenied,
    /// A limit was reached (`RESOURCE_EXHAUSTED`).
    ResourceExhausted,
}

/// A refusal by a domain rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainError {
    /// Its kind.
    pub kind: ErrorKind,
    /// Stable UPPER_SNAKE reason (sent as `ErrorInfo.reason`).
    pub reason: &'static str,
    /// What the caller reads.
    pub message: String,
    /// `ErrorInfo` metadata, in order.
    pub metadata: Vec<(String, String)>,
    /// For [`ErrorKind::Invalid`]: the field (proto path) at fault.
    pub field: Option<String>,
}

impl DomainError {
    fn new(kind: ErrorKind, reason: &'static str, message: impl Into<String>) -> Self {
        DomainError {
            kind,
            reason,
            message: message.into(),
            metadata: Vec::new(),
            field: None,
        }
    }

    /// A rule or state machine refuses the change.
    pub fn failed_precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::FailedPrecondition, reason, message)
    }

    /// `field` (proto path) holds a value the rule does not accept.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Invalid, "INVALID_ARGUMENT", message);
        e.field = Some(field.into());
        e
    }

    /// Not there (or not the caller's: never say which).
    pub fn not_found(reason: &'static str, what: &str) -> Self {
        Self::new(ErrorKind::NotFound, reason, format!("{what} not found"))
    }

    /// A unique value is taken.
    pub fn already_exists(reason: &'static str, field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, reason, message).with_metadata("field", field)
    }

    /// A lost race or a stale version.
    pub fn aborted(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Aborted, reason, message)
    }

    /// The caller may not.
    pub fn permission_denied(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, reason, message)
    }

    /// A limit was reached.
    pub fn resource_exhausted(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceExhausted, reason, message)
    }

    /// The stable reason.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// What the caller reads.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The metadata value under `key`, if any.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Adds an `ErrorInfo` metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.metadata.push((key.into(), value.to_string()));
        self
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}: {}", self.kind, self.reason, self.message)
    }
}

impl std::error::Error for DomainError {}
