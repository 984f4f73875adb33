//! The one error type of the platform and its one conversion to
//! `tonic::Status`.
//!
//! The code set is deliberately small (like Quickwit's): each variant maps to
//! one gRPC code, and every error carries a stable UPPER_SNAKE `reason`
//! (greppable, like Kanidm's codes) that goes out as `google.rpc.ErrorInfo`.
//! Validation errors carry `BadRequest` field violations. Internal causes are
//! logged with the trace id and never sent.

use std::collections::HashMap;

use foundry_domain::{DomainError, ErrorKind, UnknownValue};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The `ErrorInfo.domain` of every Foundry error.
pub const ERROR_DOMAIN: &str = "foundry.dev";

/// A failure a handler reports to its caller. Boxed, so results stay one
/// pointer wide on the success path.
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    code: Code,
    reason: &'static str,
    message: String,
    violations: Vec<FieldViolation>,
    metadata: HashMap<String, String>,
    retry_after: Option<std::time::Duration>,
    source: Option<anyhow::Error>,
}

/// Shorthand for results of this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn new(code: Code, reason: &'static str, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            code,
            reason,
            message: message.into(),
            violations: Vec::new(),
            metadata: HashMap::new(),
            retry_after: None,
            source: None,
        }))
    }

    /// `INVALID_ARGUMENT` with field violations (`field` uses the proto path,
    /// e.g. `organization.slug`).
    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        let message = violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ");
        let mut e = Self::new(Code::InvalidArgument, "INVALID_ARGUMENT", message);
        e.0.violations = violations;
        e
    }

    /// `INVALID_ARGUMENT` for one field with its own reason (a refusal the
    /// caller should tell apart from a malformed value).
    pub fn invalid_reason(
        reason: &'static str,
        field: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self::invalid_because(reason, [(field.into(), description.into())])
    }

    /// `INVALID_ARGUMENT` for well-formed values of `fields` (each `(field,
    /// description)`) refused for one `reason`, which the error and each
    /// field violation carry.
    pub fn invalid_because(
        reason: &'static str,
        fields: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let violations = fields
            .into_iter()
            .map(|(field, description)| FieldViolation {
                reason: reason.to_owned(),
                ..FieldViolation::new(field, description)
            })
            .collect();
        let mut e = Self::invalid(violations);
        e.0.reason = reason;
        e
    }

    /// `INVALID_ARGUMENT` for one field.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::invalid(vec![FieldViolation::new(field, description)])
    }

    /// `NOT_FOUND`: missing, or another tenant's (never reveal which).
    pub fn not_found(reason: &'static str, what: impl Into<String>) -> Self {
        Self::new(Code::NotFound, reason, format!("{} not found", what.into()))
    }

    /// `ALREADY_EXISTS` on a unique field.
    pub fn already_exists(reason: &'static str, field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(Code::AlreadyExists, reason, message);
        e.0.metadata.insert("field".into(), field.into());
        e
    }

    /// `FAILED_PRECONDITION`: a rule or state machine refuses the change.
    pub fn failed_precondition(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, reason, message)
    }

    /// `ABORTED`: a stale etag or a lost race; the caller may retry.
    pub fn aborted(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::Aborted, reason, message)
    }

    /// `ABORTED` for an etag that does not match the current version.
    pub fn stale_etag(what: &str) -> Self {
        Self::aborted(
            "ETAG_MISMATCH",
            format!("{what} was changed by someone else; read it again and retry"),
        )
    }

    /// `PERMISSION_DENIED`: a valid caller that may not do this.
    pub fn permission_denied(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::PermissionDenied, reason, message)
    }

    /// `UNAUTHENTICATED`: no, expired or forged credentials.
    pub fn unauthenticated(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, reason, message)
    }

    /// `RESOURCE_EXHAUSTED`: quota or rate limit.
    pub fn resource_exhausted(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::ResourceExhausted, reason, message)
    }

    /// `DEADLINE_EXCEEDED`: the call ran out of time; what it changed was
    /// rolled back.
    pub fn deadline_exceeded(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::DeadlineExceeded, reason, message)
    }

    /// The same error telling the caller when to try again
    /// (`google.rpc.RetryInfo`).
    #[must_use]
    pub fn with_retry_after(mut self, delay: std::time::Duration) -> Self {
        self.0.retry_after = Some(delay);
        self
    }

    /// When the caller may try again, if the error says.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.0.retry_after
    }

    /// `UNAVAILABLE`: a dependency is down; retry later.
    pub fn unavailable(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, reason, message)
    }

    /// `INTERNAL`: the cause is logged, the caller sees only that it failed.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(Code::Internal, "INTERNAL", "internal error");
        e.0.source = Some(cause.into());
        e
    }

    /// Adds an `ErrorInfo` metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.metadata.insert(key.into(), value.into());
        self
    }

    /// The gRPC code.
    pub fn code(&self) -> Code {
        self.0.code
    }

    /// The stable reason.
    pub fn reason(&self) -> &'static str {
        self.0.reason
    }

    /// The message the caller sees.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Field violations of an `INVALID_ARGUMENT`.
    pub fn violations(&self) -> &[FieldViolation] {
        &self.0.violations
    }

    /// The same error with its field violations named inside `field` (a
    /// message validated where it is nested in another: `start_sequence`
    /// becomes `verification.start_sequence`).
    #[must_use]
    pub fn within(self, field: &str) -> Error {
        if self.0.violations.is_empty() {
            return self;
        }
        let violations = self
            .0
            .violations
            .iter()
            .map(|v| FieldViolation::new(format!("{field}.{}", v.field), v.description.clone()))
            .collect();
        Error::invalid(violations)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}: {}", self.0.code, self.0.reason, self.0.message)?;
        if let Some(source) = &self.0.source {
            write!(f, " ({source:#})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let e = *e.0;
        if let Some(source) = &e.source {
            // The only place an internal cause is recorded: in the log, with
            // the current span (trace id), never on the wire.
            tracing::error!(reason = e.reason, error = %format!("{source:#}"), "internal error");
        }
        let mut details = ErrorDetails::new();
        details.set_error_info(e.reason, ERROR_DOMAIN, e.metadata);
        if !e.violations.is_empty() {
            details.set_bad_request(e.violations);
        }
        if let Some(delay) = e.retry_after {
            details.set_retry_info(Some(delay));
        }
        Status::with_error_details(e.code, e.message, details)
    }
}

impl From<DomainError> for Error {
    /// The one mapping of a domain refusal to the wire.
    fn from(d: DomainError) -> Self {
        let mut e = match d.kind {
            ErrorKind::Invalid => {
                let mut e = Self::invalid(vec![FieldViolation::new(
                    d.field.unwrap_or_default(),
                    d.message,
                )]);
                e.0.reason = d.reason;
                e
            }
            ErrorKind::NotFound => Self::new(Code::NotFound, d.reason, d.message),
            ErrorKind::AlreadyExists => Self::new(Code::AlreadyExists, d.reason, d.message),
            ErrorKind::FailedPrecondition => {
                Self::new(Code::FailedPrecondition, d.reason, d.message)
            }
            ErrorKind::Aborted => Self::new(Code::Aborted, d.reason, d.message),
            ErrorKind::PermissionDenied => Self::new(Code::PermissionDenied, d.reason, d.message),
            ErrorKind::ResourceExhausted => Self::new(Code::ResourceExhausted, d.reason, d.message),
        };
        e.0.metadata.extend(d.metadata);
        e
    }
}

impl From<UnknownValue> for Error {
    /// A stored value no enum variant matches: `INTERNAL`, with the table,
    /// column and value in the log (never on the wire).
    fn from(u: UnknownValue) -> Self {
        Self::internal(u)
    }
}

impl From<sqlx::Error> for Error {
    /// Database errors never reach the wire. Serialization failures and
    /// deadlocks are `ABORTED` (the caller may retry); everything else is
    /// `INTERNAL`. Stores map their own constraint names before this.
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            match db.code().as_deref() {
                Some("40001") | Some("40P01") => {
                    return Self::aborted("CONCURRENT_UPDATE", "concurrent update; retry");
                }
                _ => {}
            }
        }
        if let sqlx::Error::PoolTimedOut = e {
            return Self::unavailable("DATABASE_BUSY", "the database is busy; retry");
        }
        Self::internal(e)
    }
}

/// The name of the constraint a database error violated, with its SQLSTATE.
pub fn constraint_violation(e: &sqlx::Error) -> Option<(&str, String)> {
    match e {
        sqlx::Error::Database(db) => Some((db.constraint()?, db.code()?.into_owned())),
        _ => None,
    }
}

/// Whether the error is a unique violation of the named constraint.
pub fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    matches!(constraint_violation(e), Some((c, code)) if c == constraint && code == "23505")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_carries_error_info_and_field_violations() {
        let status: Status = Error::invalid_field("organization.slug", "must be lowercase").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let info = details.error_info().expect("error info");
        assert_eq!(info.reason, "INVALID_ARGUMENT");
        assert_eq!(info.domain, ERROR_DOMAIN);
        let bad = details.bad_request().expect("bad request");
        assert_eq!(bad.field_violations[0].field, "organization.slug");
    }

    #[test]
    fn domain_refusals_keep_their_reason_metadata_and_field() {
        let status: Status = Error::from(
            DomainError::failed_precondition("PHASE_SKIP_NOT_ALLOWED", "needs force")
                .with_metadata("from", "build"),
        )
        .into();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let details = status.get_error_details();
        let info = details.error_info().expect("error info");
        assert_eq!(info.reason, "PHASE_SKIP_NOT_ALLOWED");
        assert_eq!(info.metadata.get("from").map(String::as_str), Some("build"));
        let status: Status =
            Error::from(DomainError::invalid("task.status", "a new task is TODO")).into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status
            .get_error_details()
            .bad_request()
            .cloned()
            .expect("bad request");
        assert_eq!(bad.field_violations[0].field, "task.status");
    }

    #[test]
    fn an_unknown_stored_value_is_internal_and_hidden() {
        let status: Status = Error::from(UnknownValue {
            table: "tasks",
            column: "status",
            value: "archived".into(),
        })
        .into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("archived"));
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status: Status = Error::internal(anyhow::anyhow!("password=hunter2")).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }
}
