//! The crate's one error type, and its one mapping to [`ServiceError`] (from which the REST
//! edge makes a problem+json and the gRPC edge a status).
//!
//! When to use what: the flows return [`IdentityError`]; a variant says what went wrong in the
//! domain's terms. The conversion to [`ServiceError`] below is exhaustive (no wildcard arm): a new
//! variant must choose its status there. Unexpected failures (database, hashing, outbox) are
//! logged there with their cause, once, and reach the client as a generic 500.

use keel_clients::{FieldViolation, ServiceError};

use crate::domain::FieldProblem;
use crate::hashing::HashError;

/// Why an identity operation (or building the service) failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Request values were rejected: which fields and why.
    #[error("invalid request: {}", describe(.0))]
    Invalid(Vec<FieldViolation>),
    /// The e-mail address already belongs to an account.
    #[error("an account with this e-mail address exists")]
    EmailTaken,
    /// No such user.
    #[error("no such user")]
    UserNotFound,
    /// A verification or reset token is unknown, used or expired (deliberately not told apart).
    #[error("the token is invalid, used or expired")]
    InvalidToken,
    /// The current password given to a password change is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// Self-registration is closed by configuration.
    #[error("registration is closed")]
    RegistrationClosed,
    /// The password was changed by someone else between reading and writing it.
    #[error("the password was changed concurrently")]
    ConcurrentChange,
    /// The auth service could not end the user's sessions, so nothing was changed.
    #[error("the user's sessions could not be ended: {0}")]
    SessionsNotRevoked(#[source] ServiceError),
    /// The user to delete is the last holder of the admin role (authz's reason); nothing was
    /// changed.
    #[error("the last administrator cannot be deleted: {0}")]
    LastAdministrator(String),
    /// The authz service could not take the user's roles, so the user was not deleted.
    #[error("the user's roles could not be removed: {0}")]
    RolesNotReleased(#[source] ServiceError),
    /// The store failed.
    #[error("identity store: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// Hashing or verifying a password failed.
    #[error(transparent)]
    Hashing(#[from] HashError),
    /// An event or audit record could not be written to the outbox.
    #[error("outbox: {0}")]
    Outbox(#[from] keel_events::EventError),
    /// The `identity` configuration section is missing or unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] keel_db::DbError),
    /// Too many wrong current passwords on a password change lately.
    #[error("too many wrong current passwords; retry in {retry_after_secs} s")]
    TooManyPasswordAttempts {
        /// Seconds until the next attempt is checked.
        retry_after_secs: u64,
    },
    /// Too many reset requests for this address lately.
    #[error("too many password reset requests; retry in {retry_after_secs} s")]
    TooManyResetRequests {
        /// Seconds until the next request is accepted.
        retry_after_secs: u64,
    },
}

impl IdentityError {
    /// One rejected field.
    pub(crate) fn field(field: &str, problem: FieldProblem) -> Self {
        Self::Invalid(vec![FieldViolation {
            field: field.to_owned(),
            code: problem.code.to_owned(),
            message: problem.message,
        }])
    }

    /// The rejection of a token field (`token`).
    pub(crate) fn token_field(error: Self) -> Self {
        match error {
            Self::InvalidToken => Self::field(
                "token",
                FieldProblem::new(
                    "invalid_token",
                    "the link is invalid, was already used or has expired",
                ),
            ),
            other => other,
        }
    }
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.code))
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<IdentityError> for ServiceError {
    fn from(error: IdentityError) -> Self {
        // No wildcard arm: a new variant must choose its status here.
        match error {
            IdentityError::Invalid(violations) => ServiceError::InvalidArgument {
                message: "one or more fields are invalid".to_owned(),
                violations,
            },
            IdentityError::InvalidToken => {
                ServiceError::from(IdentityError::token_field(IdentityError::InvalidToken))
            }
            IdentityError::EmailTaken => {
                ServiceError::AlreadyExists("an account with this e-mail address exists".to_owned())
            }
            IdentityError::UserNotFound => ServiceError::NotFound("no such user".to_owned()),
            IdentityError::TooManyResetRequests { retry_after_secs } => ServiceError::RateLimited {
                message: "too many password reset requests for this address; wait before asking again"
                    .to_owned(),
                retry_after_secs: Some(retry_after_secs),
            },
            IdentityError::TooManyPasswordAttempts { retry_after_secs } => ServiceError::RateLimited {
                message: "too many wrong current passwords; wait before trying again".to_owned(),
                retry_after_secs: Some(retry_after_secs),
            },
            IdentityError::WrongPassword => {
                ServiceError::PermissionDenied("the current password is wrong".to_owned())
            }
            IdentityError::RegistrationClosed => {
                ServiceError::PermissionDenied("registration is closed".to_owned())
            }
            IdentityError::ConcurrentChange => {
                ServiceError::FailedPrecondition("the password was changed meanwhile; try again".to_owned())
            }
            IdentityError::SessionsNotRevoked(cause) => {
                tracing::warn!(error = %cause, "ending the user's sessions failed; nothing was changed");
                ServiceError::Unavailable(
                    "auth: the user's sessions could not be ended, so nothing was changed; try again later"
                        .to_owned(),
                )
            }
            IdentityError::LastAdministrator(reason) => ServiceError::FailedPrecondition(reason),
            IdentityError::RolesNotReleased(cause) => {
                tracing::warn!(error = %cause, "removing the user's roles failed; the user was not deleted");
                ServiceError::Unavailable(
                    "authz: the user's roles could not be removed, so the user was not deleted; try again later"
                        .to_owned(),
                )
            }
            internal @ (IdentityError::Database(_)
            | IdentityError::Hashing(_)
            | IdentityError::Outbox(_)
            | IdentityError::Config(_)
            | IdentityError::Store(_)) => {
                tracing::error!(error = %internal, "identity operation failed");
                ServiceError::Internal("identity operation failed".to_owned())
            }
        }
    }
}

impl From<IdentityError> for keel_http::Problem {
    fn from(error: IdentityError) -> Self {
        ServiceError::from(error).into()
    }
}
