//! The one error type of keel-authz and its single mapping to the shared [`ServiceError`].
//!
//! When to use what: every engine operation fails with an [`AuthzError`]; the edges convert it
//! once, through `From<AuthzError> for ServiceError`, into problem+json (REST, via
//! `From<ServiceError> for Problem`) or a gRPC status (via `keel_clients::wire::to_status`). The
//! mapping has no wildcard arm, so a new variant must choose its status. Store and outbox failures
//! reach the client as a generic internal error; their cause is logged here with the request id.

use keel_clients::{FieldViolation, ServiceError};
use uuid::Uuid;

/// Why an authz operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    /// Request values were rejected; each violation names its field (e.g. `permissions[1]`).
    #[error("invalid request: {}", summary(.0))]
    Invalid(Vec<FieldViolation>),
    /// No role with this id or name.
    #[error("role {0} not found")]
    RoleNotFound(String),
    /// No permission of this name in the catalogue.
    #[error("permission {0} not found")]
    PermissionNotFound(String),
    /// The identity service knows no such user.
    #[error("user {0} not found")]
    UserNotFound(Uuid),
    /// Another role already has this name (names are unique regardless of case).
    #[error("a role named {0} already exists")]
    RoleNameTaken(String),
    /// The change is not allowed on a system role (deleting or renaming one, taking a permission
    /// from `admin`).
    #[error("{0}")]
    SystemRole(String),
    /// A peer service (identity) failed.
    #[error("peer service: {0}")]
    Peer(#[source] ServiceError),
    /// The store failed.
    #[error("authz store: {0}")]
    Store(#[from] sea_orm::DbErr),
    /// The outbox could not take an event or audit record, or the event bus refused a
    /// subscription.
    #[error("events: {0}")]
    Events(#[from] keel_events::EventError),
    /// The store could not be opened or migrated (at build).
    #[error("authz database: {0}")]
    Database(#[from] keel_db::DbError),
    /// The `authz` or `jwt` configuration section is missing or invalid (at build).
    #[error("authz configuration: {0}")]
    Config(String),
}

impl AuthzError {
    /// A rejection of one field.
    pub(crate) fn field(field: &str, code: &str, message: &str) -> Self {
        Self::Invalid(vec![crate::names::violation(field, code, message)])
    }
}

fn summary(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<AuthzError> for ServiceError {
    fn from(error: AuthzError) -> Self {
        match error {
            AuthzError::Invalid(violations) => ServiceError::InvalidArgument {
                message: "one or more fields are invalid".to_owned(),
                violations,
            },
            AuthzError::RoleNotFound(_) | AuthzError::PermissionNotFound(_) | AuthzError::UserNotFound(_) => {
                ServiceError::NotFound(error.to_string())
            }
            AuthzError::RoleNameTaken(_) => ServiceError::AlreadyExists(error.to_string()),
            AuthzError::SystemRole(reason) => ServiceError::FailedPrecondition(reason),
            AuthzError::Peer(inner) => inner,
            AuthzError::Store(_)
            | AuthzError::Events(_)
            | AuthzError::Database(_)
            | AuthzError::Config(_) => {
                tracing::error!(error = %error, "authz operation failed");
                ServiceError::Internal("the authz service failed; the cause is logged".to_owned())
            }
        }
    }
}

impl From<AuthzError> for keel_http::Problem {
    fn from(error: AuthzError) -> Self {
        ServiceError::from(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_maps_to_the_status_a_client_expects() {
        let problem = keel_http::Problem::from(AuthzError::field(
            "permissions[1]",
            "unknown_permission",
            "no such permission",
        ));
        assert_eq!(problem.status, 422);
        assert_eq!(problem.errors[0].field, "permissions[1]");
        assert_eq!(
            keel_http::Problem::from(AuthzError::RoleNotFound("x".into())).status,
            404
        );
        assert_eq!(
            keel_http::Problem::from(AuthzError::RoleNameTaken("x".into())).status,
            409
        );
        assert_eq!(
            keel_http::Problem::from(AuthzError::SystemRole("no".into())).status,
            409
        );
        assert_eq!(
            keel_http::Problem::from(AuthzError::Peer(ServiceError::Unavailable("identity".into()))).status,
            503
        );
    }

    #[test]
    fn store_failures_do_not_reach_the_client() {
        let error = AuthzError::Store(sea_orm::DbErr::Custom("SELECT secret FROM t".to_owned()));
        let problem = keel_http::Problem::from(error);
        assert_eq!(problem.status, 500);
        assert!(!format!("{problem:?}").contains("SELECT"));
    }
}
