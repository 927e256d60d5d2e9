//! Every way the auth service can fail, and the one mapping of those failures to the wire.
//!
//! When to use what: domain code returns [`AuthError`]; it becomes a [`ServiceError`] exactly once
//! (the `From` impl below, no wildcard arm), and from there a problem+json response (REST, through
//! `keel_clients`' mapping) or a `tonic::Status` (gRPC, through `keel_clients::wire`). Internal
//! causes (SQL, key files, crypto) are logged here and never reach the client.

use axum::response::{IntoResponse, Response};
use keel_clients::ServiceError;
use keel_http::Problem;

/// Shown for a wrong e-mail and a wrong password alike.
pub(crate) const INVALID_CREDENTIALS: &str = "invalid e-mail or password";

/// Why an auth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown e-mail or wrong password (never told apart).
    #[error("{INVALID_CREDENTIALS}")]
    InvalidCredentials,
    /// The password matched but the address is unverified and configuration requires verification.
    #[error("the e-mail address is not verified")]
    EmailNotVerified,
    /// Too many failed logins for this account or from this address: wait before trying again.
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    Throttled {
        /// Seconds until the next attempt is checked.
        retry_after_secs: u64,
    },
    /// The refresh token is unknown, expired, of an ended session, or not the caller's.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// The refresh token had already been exchanged: its whole session was ended.
    #[error("refresh token reused")]
    RefreshTokenReused,
    /// The access token did not verify.
    #[error("invalid access token: {0}")]
    AccessToken(#[source] keel_authn::AuthnError),
    /// The session does not exist, is not the user's, or is no longer live.
    #[error("no such session")]
    SessionNotFound,
    /// A request field has an unusable value.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The field's path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The identity service failed (or is down).
    #[error("identity service: {0}")]
    Identity(#[source] ServiceError),
    /// Other replicas kept installing signing keys while this one tried to settle on one.
    #[error("could not settle on a signing key")]
    KeyContention,
    /// A key could not be generated, parsed or encoded.
    #[error("signing key: {0}")]
    KeyMaterial(String),
    /// `auth.signing_private_key` is not an Ed25519 PKCS#8 PEM key.
    #[error("the configured signing key (auth.signing_private_key) is unusable: {0}")]
    ConfiguredKey(String),
    /// Signing an access token failed.
    #[error("signing an access token: {0}")]
    Signing(#[from] jsonwebtoken::errors::Error),
    /// A query failed.
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] keel_db::DbError),
    /// An audit record or event could not be written to the outbox.
    #[error("outbox: {0}")]
    Outbox(#[from] keel_events::EventError),
    /// A configuration section could not be read.
    #[error(transparent)]
    Config(#[from] keel_config::ConfigError),
    /// A setting has a value out of range.
    #[error("invalid setting {key}: {message}")]
    Settings {
        /// The key, e.g. `auth.key_rotation_days`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl From<AuthError> for ServiceError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InvalidCredentials => ServiceError::Unauthenticated(INVALID_CREDENTIALS.to_owned()),
            AuthError::EmailNotVerified => ServiceError::PermissionDenied(
                "the e-mail address is not verified yet: follow the link in the verification e-mail, \
                 then log in again"
                    .to_owned(),
            ),
            AuthError::Throttled { retry_after_secs } => ServiceError::RateLimited {
                message: "too many failed logins for this account or from this address; wait before \
                          trying again"
                    .to_owned(),
                retry_after_secs: Some(retry_after_secs),
            },
            AuthError::InvalidRefreshToken => ServiceError::Unauthenticated(
                "the refresh token is invalid, expired or revoked; log in again".to_owned(),
            ),
            AuthError::RefreshTokenReused => ServiceError::Unauthenticated(
                "the refresh token was already used, so its session has been ended; log in again".to_owned(),
            ),
            AuthError::AccessToken(error) => access_token_error(error),
            AuthError::SessionNotFound => ServiceError::NotFound("no such session".to_owned()),
            AuthError::InvalidArgument { field, message } => {
                ServiceError::invalid_field(&field, "invalid_value", &message)
            }
            AuthError::Identity(
                ServiceError::Unavailable(reason) | ServiceError::DeadlineExceeded(reason),
            ) => {
                tracing::warn!(%reason, "identity service unavailable");
                ServiceError::Unavailable("the identity service is unavailable; try again shortly".to_owned())
            }
            AuthError::Identity(other) => other,
            AuthError::KeyContention => {
                tracing::warn!("could not settle on a signing key");
                ServiceError::Unavailable("signing keys are being rotated; try again shortly".to_owned())
            }
            error @ (AuthError::KeyMaterial(_)
            | AuthError::ConfiguredKey(_)
            | AuthError::Signing(_)
            | AuthError::Database(_)
            | AuthError::Store(_)
            | AuthError::Outbox(_)
            | AuthError::Config(_)
            | AuthError::Settings { .. }) => {
                tracing::error!(%error, "auth service internal error");
                ServiceError::Internal(error.to_string())
            }
        }
    }
}

/// A failed access-token check, by the class keel-authn gives it (401, 503 or 500).
fn access_token_error(error: keel_authn::AuthnError) -> ServiceError {
    tracing::debug!(reason = %error, "access token rejected");
    let problem = Problem::from(error);
    let detail = problem.detail.unwrap_or_default();
    match problem.status {
        503 => ServiceError::Unavailable(detail),
        500 => ServiceError::Internal(detail),
        _ => ServiceError::Unauthenticated(detail),
    }
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        Problem::from(ServiceError::from(error))
    }
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> Self {
        keel_clients::wire::to_status(ServiceError::from(error))
    }
}

/// A problem+json response.
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
    }
}
