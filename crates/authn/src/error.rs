//! Why a request was not let through, and what the client is told.
//!
//! Every failure of this crate is an [`AuthnError`]; it is mapped exactly once, to a
//! [`ServiceError`] (no wildcard arm, so a new variant must choose its class), and from there to
//! problem+json or a gRPC status by the shared mappings of `keel-clients`. The client learns only the class of failure: a missing token, an invalid token
//! (whatever check failed), a missing permission, or a dependency being down. The precise reason is
//! in the error's `Display`, which callers log at debug level.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use keel_clients::ServiceError;
use keel_http::Problem;

/// Seconds a client is asked to wait after a 503 caused by unavailable signing keys.
const KEYS_RETRY_AFTER_SECS: u64 = 1;

/// Why authentication or a permission check failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// The request carries no `Authorization` header.
    #[error("no Authorization header")]
    MissingToken,
    /// The `Authorization` header is not a single `Bearer <token>`.
    #[error("the Authorization header is not a single bearer token")]
    NotBearer,
    /// The token is not a well-formed JWT of ours (shape, base64, JSON, claim types, size).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header's `alg` is one this verifier does not accept (only EdDSA today).
    #[error("algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),
    /// The header names no key (`kid`).
    #[error("the token header has no kid")]
    MissingKeyId,
    /// No key with this `kid` is published, even after refetching the JWKS.
    #[error("no signing key with kid {0:?}")]
    UnknownKey(String),
    /// The signature does not verify with the named key.
    #[error("the signature does not verify")]
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token has the wrong issuer")]
    WrongIssuer,
    /// `aud` is not the configured audience.
    #[error("the token has the wrong audience")]
    WrongAudience,
    /// A claim has a value we cannot use (e.g. `sub` or `sid` not a UUID).
    #[error("invalid claim {claim}: {reason}")]
    InvalidClaim {
        /// The claim's name.
        claim: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No signing keys are known and fetching them failed: tokens cannot be checked (503).
    #[error("no signing keys available")]
    KeysUnavailable,
    /// A [`crate::JwksSource`] could not deliver a usable JWKS document.
    #[error("fetching the JWKS failed: {0}")]
    JwksFetch(String),
    /// The caller lacks the permission.
    #[error("missing permission {0}")]
    Forbidden(String),
    /// The authorization service could not answer a permission check.
    #[error("permission check failed: {0}")]
    Authz(ServiceError),
    /// The `jwt` configuration section is invalid.
    #[error("invalid jwt settings: {0}")]
    Settings(String),
}

/// What a caller is told about each failure: the one mapping of this crate's errors, used for
/// REST ([`Problem`], via this) and gRPC (`keel_clients::wire::to_status`) alike.
impl From<AuthnError> for ServiceError {
    fn from(error: AuthnError) -> Self {
        match error {
            AuthnError::MissingToken | AuthnError::NotBearer => {
                ServiceError::Unauthenticated("this endpoint requires a bearer access token".to_owned())
            }
            AuthnError::Malformed(_)
            | AuthnError::UnsupportedAlgorithm(_)
            | AuthnError::MissingKeyId
            | AuthnError::UnknownKey(_)
            | AuthnError::BadSignature
            | AuthnError::Expired
            | AuthnError::NotYetValid
            | AuthnError::WrongIssuer
            | AuthnError::WrongAudience
            | AuthnError::InvalidClaim { .. } => {
                ServiceError::Unauthenticated("the access token is invalid or has expired".to_owned())
            }
            AuthnError::KeysUnavailable | AuthnError::JwksFetch(_) => {
                ServiceError::Unavailable("authentication is temporarily unavailable".to_owned())
            }
            AuthnError::Forbidden(permission) => {
                ServiceError::PermissionDenied(format!("this action requires the permission {permission}"))
            }
            // The peer's text may name addresses; it is logged where the check failed, not passed on.
            AuthnError::Authz(ServiceError::Unavailable(_)) => {
                ServiceError::Unavailable("authorization is temporarily unavailable".to_owned())
            }
            AuthnError::Authz(other) => other,
            AuthnError::Settings(reason) => ServiceError::Internal(reason),
        }
    }
}

/// problem+json per [`From<AuthnError> for ServiceError`](ServiceError); a 503 for unavailable
/// signing keys also says when to retry.
impl From<AuthnError> for Problem {
    fn from(error: AuthnError) -> Self {
        let retry_after = matches!(error, AuthnError::KeysUnavailable | AuthnError::JwksFetch(_));
        let problem = Problem::from(ServiceError::from(error));
        if retry_after {
            problem.with_retry_after(KEYS_RETRY_AFTER_SECS)
        } else {
            problem
        }
    }
}

impl AuthnError {
    /// The `WWW-Authenticate` challenge (RFC 6750) a 401 for this error carries, if it is a 401.
    fn challenge(&self) -> Option<&'static str> {
        match self {
            AuthnError::MissingToken | AuthnError::NotBearer => Some("Bearer realm=\"keel\""),
            AuthnError::Malformed(_)
            | AuthnError::UnsupportedAlgorithm(_)
            | AuthnError::MissingKeyId
            | AuthnError::UnknownKey(_)
            | AuthnError::BadSignature
            | AuthnError::Expired
            | AuthnError::NotYetValid
            | AuthnError::WrongIssuer
            | AuthnError::WrongAudience
            | AuthnError::InvalidClaim { .. } => Some("Bearer realm=\"keel\", error=\"invalid_token\""),
            AuthnError::KeysUnavailable
            | AuthnError::JwksFetch(_)
            | AuthnError::Forbidden(_)
            | AuthnError::Authz(_)
            | AuthnError::Settings(_) => None,
        }
    }
}

/// A problem+json response; 401s also carry `WWW-Authenticate: Bearer …`.
impl IntoResponse for AuthnError {
    fn into_response(self) -> Response {
        let challenge = self.challenge();
        let mut response = Problem::from(self).into_response();
        if let Some(challenge) = challenge
            && response.status() == StatusCode::UNAUTHORIZED
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}
