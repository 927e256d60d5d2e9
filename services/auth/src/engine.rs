//! The auth service's behaviour, shared by its REST and gRPC faces.
//!
//! Why this module exists: login, refresh, logout and session management must behave identically
//! whichever way they are called, so both faces are thin translations over one [`Engine`]. The
//! operations themselves live beside it: [`crate::login`] (login, logout), [`crate::refresh`]
//! (rotation and reuse detection), [`crate::sessions`] (listing and ending sessions).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keel_authn::{JwtSettings, TokenVerifier};
use keel_clients::{IdentityClient, Origin, TokenInfo, TokenPair};
use keel_events::{Outbox, RelayWaker};
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use secrecy::{ExposeSecret as _, SecretString};
use uuid::Uuid;

use crate::AuthError;
use crate::audit::Entry;
use crate::clock::Clock;
use crate::keys::KeyRing;
use crate::settings::AuthSettings;
use crate::tokens::{AccessGrant, sign_access_token};

/// Why a session was ended (stored in `sessions.revoke_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevokeReason {
    /// The user logged out with the session's refresh token.
    Logout,
    /// A used refresh token of the session was presented again.
    RefreshTokenReuse,
    /// The user ended one of their sessions.
    ByUser,
    /// An administrator ended the user's sessions.
    ByAdmin,
    /// A peer service asked (identity after a password change or reset, deletion).
    ByService,
    /// The user's password changed (event).
    PasswordChanged,
    /// The user was deleted (event).
    UserDeleted,
    /// All of the user's sessions were ended while this session's login was in flight (its
    /// credentials were checked before that; see `store::session_watermark`).
    EndedDuringLogin,
}

impl RevokeReason {
    /// The stored name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::RefreshTokenReuse => "refresh_token_reuse",
            RevokeReason::ByUser => "revoked_by_user",
            RevokeReason::ByAdmin => "revoked_by_admin",
            RevokeReason::ByService => "revoked_by_service",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::UserDeleted => "user_deleted",
            RevokeReason::EndedDuringLogin => "ended_during_login",
        }
    }
}

/// Everything the operations need.
pub(crate) struct Engine {
    /// The auth store.
    pub(crate) db: DatabaseConnection,
    /// The signing keys.
    pub(crate) keys: Arc<KeyRing>,
    /// The `auth` section.
    pub(crate) settings: AuthSettings,
    /// The `jwt` section.
    pub(crate) jwt: JwtSettings,
    /// Credentials are checked by identity.
    pub(crate) identity: Arc<dyn IdentityClient>,
    /// The time.
    pub(crate) clock: Arc<dyn Clock>,
    /// Wakes the outbox relay after a commit.
    pub(crate) relay: RelayWaker,
    /// Verifies access tokens against this service's own keys.
    pub(crate) verifier: Arc<TokenVerifier>,
    /// Growing delays after failed logins.
    pub(crate) throttle: crate::throttle::LoginThrottle,
}

impl Engine {
    /// Now, as the service's clock says.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A token pair: a new access token for the session and the given refresh token.
    pub(crate) async fn token_pair(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        refresh_token: SecretString,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, AuthError> {
        let key = self.keys.signing_key().await?;
        self.token_pair_signed_by(&key, user_id, session_id, refresh_token, now)
    }

    /// [`Engine::token_pair`] with a key already at hand: no I/O, so it may run while a
    /// transaction holds a connection (a key lookup there could wait on that very connection).
    pub(crate) fn token_pair_signed_by(
        &self,
        key: &crate::keys::SigningKey,
        user_id: Uuid,
        session_id: Uuid,
        refresh_token: SecretString,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, AuthError> {
        let grant = AccessGrant {
            user_id,
            session_id,
            now,
            ttl: self.settings.access_ttl(),
        };
        Ok(TokenPair {
            access_token: sign_access_token(key, &self.jwt, &grant)?,
            refresh_token,
            expires_in: self.settings.access_ttl_secs(),
        })
    }

    /// Writes `entry` to the outbox inside `txn`.
    pub(crate) async fn audit(
        &self,
        txn: &DatabaseTransaction,
        entry: Entry,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        Outbox::enqueue_audit(txn, &entry.into_record(origin, now)).await?;
        Ok(())
    }

    /// Commits `txn` and wakes the relay so its outbox rows leave at once.
    pub(crate) async fn commit(&self, txn: DatabaseTransaction) -> Result<(), AuthError> {
        txn.commit().await?;
        self.relay.wake();
        Ok(())
    }

    /// Verifies an access token against this service's keys.
    pub(crate) async fn validate_token(&self, token: &SecretString) -> Result<TokenInfo, AuthError> {
        let principal = self
            .verifier
            .verify(token.expose_secret())
            .await
            .map_err(AuthError::AccessToken)?;
        Ok(TokenInfo {
            user_id: principal.user_id,
            token_id: principal.token_id,
            session_id: principal.session_id,
            expires_at: principal.expires_at,
        })
    }

    /// The JWKS document.
    pub(crate) async fn jwks_json(&self) -> Result<String, AuthError> {
        self.keys.jwks_json().await
    }
}
