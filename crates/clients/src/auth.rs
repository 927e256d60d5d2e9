//! What callers may ask of the auth service.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;
use uuid::Uuid;

use crate::{Origin, ServiceError};

/// Tokens handed to a client after login or refresh.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// The signed access token (JWT).
    pub access_token: SecretString,
    /// The opaque refresh token.
    pub refresh_token: SecretString,
    /// Seconds until the access token expires.
    pub expires_in: u32,
}

/// What a valid access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The user (`sub`).
    pub user_id: Uuid,
    /// The token's id (`jti`).
    pub token_id: String,
    /// The session (refresh-token family) it was issued in.
    pub session_id: Uuid,
    /// `exp`.
    pub expires_at: DateTime<Utc>,
}

/// A live session: one login and the refresh tokens rotated from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// The family's id.
    pub id: Uuid,
    /// The login.
    pub created_at: DateTime<Utc>,
    /// The last refresh.
    pub last_used_at: DateTime<Utc>,
    /// When the newest refresh token expires.
    pub expires_at: DateTime<Utc>,
    /// Client address at login.
    pub ip: Option<String>,
    /// Client user agent at login.
    pub user_agent: Option<String>,
}

/// The auth service: login, sessions, signing keys.
#[async_trait]
pub trait AuthClient: Send + Sync {
    /// Logs in; `Unauthenticated` for an unknown e-mail or a wrong password alike.
    async fn login(
        &self,
        email: &str,
        password: &SecretString,
        origin: &Origin,
    ) -> Result<TokenPair, ServiceError>;
    /// Rotates a refresh token.
    async fn refresh(&self, refresh_token: &SecretString, origin: &Origin)
    -> Result<TokenPair, ServiceError>;
    /// Ends the session of a refresh token.
    async fn logout(&self, refresh_token: &SecretString, origin: &Origin) -> Result<(), ServiceError>;
    /// Verifies an access token remotely (local verification through `keel-authn` is preferred).
    async fn validate_token(&self, access_token: &SecretString) -> Result<TokenInfo, ServiceError>;
    /// The JWKS document (JSON) with the public signing keys.
    async fn jwks(&self) -> Result<String, ServiceError>;
    /// The user's live sessions, newest first.
    async fn list_sessions(&self, user_id: Uuid) -> Result<Vec<Session>, ServiceError>;
    /// Ends one session of the user.
    async fn revoke_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        origin: &Origin,
    ) -> Result<(), ServiceError>;
    /// Ends every session of the user; returns how many were live.
    async fn revoke_user_sessions(&self, user_id: Uuid, origin: &Origin) -> Result<u32, ServiceError>;
}
