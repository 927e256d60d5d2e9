//! The failures a call to a core service can end in.

use keel_http::{FieldError, Problem};

/// One rejected field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, e.g. `email` or `permissions[2]`.
    pub field: String,
    /// Stable machine-readable code, e.g. `invalid_email`, `too_short`, `common_password`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Why a call to a core service failed. The variants mirror gRPC status codes (and map to HTTP
/// statuses one to one), so the same error travels from a service's domain through the wire to the
/// REST edge without losing its meaning.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceError {
    /// The request was well-formed but its values were rejected (422 / INVALID_ARGUMENT).
    #[error("invalid request: {message}")]
    InvalidArgument {
        /// Summary.
        message: String,
        /// The rejected fields.
        violations: Vec<FieldViolation>,
    },
    /// The thing does not exist (404 / NOT_FOUND).
    #[error("not found: {0}")]
    NotFound(String),
    /// It already exists, e.g. an e-mail taken (409 / ALREADY_EXISTS).
    #[error("conflict: {0}")]
    AlreadyExists(String),
    /// The state does not allow it, e.g. deleting a system role (409 / FAILED_PRECONDITION).
    #[error("precondition failed: {0}")]
    FailedPrecondition(String),
    /// Credentials or token missing or wrong (401 / UNAUTHENTICATED).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Authenticated but not allowed (403 / PERMISSION_DENIED).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Too many requests (429 / RESOURCE_EXHAUSTED), with the seconds to wait when known.
    #[error("rate limited: {message}")]
    RateLimited {
        /// Summary.
        message: String,
        /// Seconds until a retry may succeed.
        retry_after_secs: Option<u64>,
    },
    /// The service (or one it depends on) is down, unreachable or its circuit is open
    /// (503 / UNAVAILABLE). The text says which and why.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed before an answer (504 / DEADLINE_EXCEEDED).
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// A bug or an unexpected failure (500 / INTERNAL); details are logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// A validation failure of one field.
    pub fn invalid_field(field: &str, code: &str, message: &str) -> Self {
        Self::InvalidArgument {
            message: message.to_owned(),
            violations: vec![FieldViolation {
                field: field.to_owned(),
                code: code.to_owned(),
                message: message.to_owned(),
            }],
        }
    }
}

impl From<ServiceError> for Problem {
    fn from(error: ServiceError) -> Self {
        // No wildcard arm: a new variant must choose its status here.
        match error {
            ServiceError::InvalidArgument { message, violations } => {
                let errors = violations
                    .into_iter()
                    .map(|v| FieldError::new(v.field, v.code, v.message))
                    .collect();
                let problem = Problem::validation(errors);
                if message.is_empty() {
                    problem
                } else {
                    problem.with_detail(message)
                }
            }
            ServiceError::NotFound(detail) => Problem::not_found(detail),
            ServiceError::AlreadyExists(detail) | ServiceError::FailedPrecondition(detail) => {
                Problem::conflict(detail)
            }
            ServiceError::Unauthenticated(detail) => Problem::unauthenticated(detail),
            ServiceError::PermissionDenied(detail) => Problem::forbidden(detail),
            ServiceError::RateLimited {
                message,
                retry_after_secs,
            } => {
                let problem = Problem::new(
                    http::StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too many requests",
                )
                .with_detail(message);
                match retry_after_secs {
                    Some(seconds) => problem.with_retry_after(seconds),
                    None => problem,
                }
            }
            ServiceError::Unavailable(detail) => Problem::unavailable(detail),
            ServiceError::DeadlineExceeded(detail) => Problem::new(
                http::StatusCode::GATEWAY_TIMEOUT,
                "deadline-exceeded",
                "Upstream deadline exceeded",
            )
            .with_detail(detail),
            ServiceError::Internal(_) => Problem::internal(),
        }
    }
}
