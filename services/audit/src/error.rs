//! The audit service's error type, and its one mapping to the shared [`ServiceError`].
//!
//! Why this module exists: store, validation and start-up failures are told apart here, and turned
//! into what a caller sees exactly once: [`ServiceError`] (from which keel-clients derives both the
//! REST problem+json and the gRPC status). Driver messages may hold SQL; they are logged here with
//! the failure and never put in what a client receives.

use keel_clients::{FieldViolation, ServiceError};
use sea_orm::DbErr;

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The `audit` configuration section is missing or invalid.
    #[error("audit configuration: {0}")]
    Config(#[from] keel_config::ConfigError),
    /// A value of the `audit` configuration section is out of range.
    #[error("invalid audit configuration: {0}")]
    Settings(String),
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] keel_db::DbError),
    /// The request was rejected; each violation names its field.
    #[error("invalid audit request ({} field(s) rejected)", .0.len())]
    Invalid(Vec<FieldViolation>),
    /// The database could not be reached (no connection in time, connection refused or lost).
    #[error("audit store unavailable: {0}")]
    Unavailable(String),
    /// Appends kept colliding with concurrent appenders and gave up.
    #[error("audit append still conflicting after {0} attempts")]
    Contention(u32),
    /// Any other database failure: a bug or an unexpected state of the store.
    #[error("audit store failure: {0}")]
    Store(String),
}

impl AuditError {
    /// A rejection of one field.
    pub(crate) fn invalid(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![violation(field, code, message)])
    }
}

/// One rejected field.
pub(crate) fn violation(field: impl Into<String>, code: &str, message: impl Into<String>) -> FieldViolation {
    FieldViolation {
        field: field.into(),
        code: code.to_owned(),
        message: message.into(),
    }
}

impl From<DbErr> for AuditError {
    fn from(error: DbErr) -> Self {
        match error {
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable(error.to_string()),
            other => Self::Store(other.to_string()),
        }
    }
}

impl From<AuditError> for ServiceError {
    fn from(error: AuditError) -> Self {
        // No wildcard arm: a new variant must choose what the caller sees.
        match error {
            AuditError::Invalid(violations) => ServiceError::InvalidArgument {
                message: "the audit request was rejected".to_owned(),
                violations,
            },
            AuditError::Unavailable(reason) => {
                tracing::warn!(%reason, "audit store unavailable");
                ServiceError::Unavailable("audit: the audit store is unavailable".to_owned())
            }
            AuditError::Contention(attempts) => {
                tracing::warn!(attempts, "audit append gave up after repeated conflicts");
                ServiceError::Unavailable("audit: the log is busy, retry".to_owned())
            }
            error @ (AuditError::Config(_)
            | AuditError::Settings(_)
            | AuditError::Database(_)
            | AuditError::Store(_)) => {
                tracing::error!(%error, "audit operation failed");
                ServiceError::Internal("audit: internal error".to_owned())
            }
        }
    }
}
