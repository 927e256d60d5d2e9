//! Login (a new session, checked by identity) and logout (the end of one).
//!
//! Every login starts its own session (refresh-token family), so ending one device's session never
//! touches another's. A wrong password and an unknown e-mail are one outcome: identity answers
//! `Invalid` for both (spending the same hashing time), and so does this service.

use chrono::{DateTime, Utc};
use keel_clients::{CredentialsVerdict, Origin, TokenPair};
use sea_orm::{ActiveValue::Set, EntityTrait as _, TransactionTrait as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use uuid::Uuid;

use crate::AuthError;
use crate::audit::{self, Entry};
use crate::engine::{Engine, RevokeReason};
use crate::store::{refresh_token, session, session_watermark};
use crate::tokens::{lookup_hash, new_refresh_token};

impl Engine {
    /// Checks the credentials with identity and starts a session.
    pub(crate) async fn login(
        &self,
        email: &str,
        password: &SecretString,
        origin: &Origin,
    ) -> Result<TokenPair, AuthError> {
        let ip = origin.ip.as_deref();
        // Before identity checks the password: a session started from credentials checked before
        // all of the user's sessions were ended must not outlive that (`end_if_overtaken`).
        let started = self.now();
        // Once the account has failed, this attempt is counted before the password is checked
        // (see `LoginThrottle::begin`): simultaneous guesses cannot all slip past the throttle.
        let attempt = self.throttle.begin(email, ip).await;
        let wait = attempt.wait();
        if !wait.is_zero() {
            let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            self.record_throttled_login(email, retry_after_secs, origin)
                .await?;
            return Err(AuthError::Throttled { retry_after_secs });
        }
        let verdict = match self.identity.verify_credentials(email, password).await {
            Ok(verdict) => verdict,
            Err(error) => {
                self.throttle.unchecked(email, attempt).await;
                return Err(AuthError::Identity(error));
            }
        };
        match verdict {
            CredentialsVerdict::Valid(user) => {
                self.throttle.succeeded(email).await;
                let (pair, session_id) = self.start_session(user.id, origin).await?;
                self.end_if_overtaken(user.id, session_id, started, origin)
                    .await?;
                Ok(pair)
            }
            CredentialsVerdict::Invalid => {
                self.throttle.failed(email, attempt, ip).await;
                self.record_failed_login(email, None, "invalid_credentials", origin)
                    .await?;
                Err(AuthError::InvalidCredentials)
            }
            CredentialsVerdict::EmailNotVerified(user) => {
                // The password was right: not a guess.
                self.throttle.succeeded(email).await;
                self.record_failed_login(email, Some(user.id), "email_not_verified", origin)
                    .await?;
                Err(AuthError::EmailNotVerified)
            }
        }
    }

    /// A new session for `user_id` with its first refresh token, audited in the same transaction;
    /// its tokens and id.
    async fn start_session(&self, user_id: Uuid, origin: &Origin) -> Result<(TokenPair, Uuid), AuthError> {
        let now = self.now();
        let session_id = Uuid::now_v7();
        let refresh = new_refresh_token()?;
        // Signed before the transaction opens, so no key work happens while it holds locks.
        let pair = self.token_pair(user_id, session_id, refresh.token, now).await?;
        let expires_at = now + chrono_duration(self.settings.refresh_ttl());
        let txn = self.db.begin().await?;
        session::Entity::insert(session::ActiveModel {
            id: Set(session_id),
            user_id: Set(user_id),
            created_at: Set(now),
            last_used_at: Set(now),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
            revoke_reason: Set(None),
            ip: Set(origin.ip.clone().map(|ip| truncate(ip, 64))),
            user_agent: Set(origin.user_agent.clone().map(|ua| truncate(ua, 512))),
        })
        .exec(&txn)
        .await?;
        refresh_token::Entity::insert(refresh_token::ActiveModel {
            hash: Set(refresh.hash),
            family_id: Set(session_id),
            issued_at: Set(now),
            expires_at: Set(expires_at),
            used_at: Set(None),
            replaced_by: Set(None),
        })
        .exec(&txn)
        .await?;
        let entry = Entry::new(audit::LOGIN_SUCCEEDED, Some(user_id)).session(session_id);
        self.audit(&txn, entry, origin, now).await?;
        self.commit(txn).await?;
        Ok((pair, session_id))
    }

    /// Ends the just committed session `session_id` and refuses the login when all of the user's
    /// sessions were ended at or after the login `started` (a password change, reset or deletion
    /// committed while identity was checking the old credentials; an administrator). Read after
    /// the session's commit: see `Engine::revoke_user_sessions` for why that order closes the race.
    /// Compared in whole microseconds, as the stores keep them; a tie refuses (the client retries).
    async fn end_if_overtaken(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        started: DateTime<Utc>,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        let Some(mark) = session_watermark::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
        else {
            return Ok(());
        };
        if mark.not_before.timestamp_micros() < started.timestamp_micros() {
            return Ok(());
        }
        let now = self.now();
        let reason = RevokeReason::EndedDuringLogin;
        let txn = self.db.begin().await?;
        if self.end_session(&txn, session_id, reason, now).await? {
            let entry = Entry::new(audit::SESSION_REVOKED, None)
                .session(session_id)
                .metadata(json!({"user_id": user_id, "reason": reason.as_str()}));
            self.audit(&txn, entry, origin, now).await?;
        }
        self.commit(txn).await?;
        tracing::info!(%user_id, %session_id, "a login overtaken by the end of the user's sessions was refused");
        Err(AuthError::InvalidCredentials)
    }

    async fn record_throttled_login(
        &self,
        email: &str,
        retry_after_secs: u64,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        let now = self.now();
        let entry = Entry::new(audit::LOGIN_THROTTLED, None).metadata(json!({
            "email": audit::recorded_email(email),
            "retry_after_secs": retry_after_secs,
        }));
        let txn = self.db.begin().await?;
        self.audit(&txn, entry, origin, now).await?;
        self.commit(txn).await
    }

    async fn record_failed_login(
        &self,
        email: &str,
        user_id: Option<Uuid>,
        reason: &str,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        let now = self.now();
        let entry = Entry::new(audit::LOGIN_FAILED, None)
            .metadata(json!({"email": audit::recorded_email(email), "reason": reason}));
        let entry = match user_id {
            Some(user_id) => entry.user(user_id),
            None => entry,
        };
        let txn = self.db.begin().await?;
        self.audit(&txn, entry, origin, now).await?;
        self.commit(txn).await
    }

    /// Ends the session of `refresh_token`. When `actor` is given (an authenticated caller), the
    /// session must be theirs. Ending an already-ended session succeeds and changes nothing.
    pub(crate) async fn logout(
        &self,
        refresh_token: &SecretString,
        actor: Option<Uuid>,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        let hash = lookup_hash(refresh_token.expose_secret()).ok_or(AuthError::InvalidRefreshToken)?;
        let now = self.now();
        let txn = self.db.begin().await?;
        let token = refresh_token::Entity::find_by_id(hash)
            .one(&txn)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        let family = session::Entity::find_by_id(token.family_id)
            .one(&txn)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        if actor.is_some_and(|actor| actor != family.user_id) {
            return Err(AuthError::InvalidRefreshToken);
        }
        if self
            .end_session(&txn, family.id, RevokeReason::Logout, now)
            .await?
        {
            let entry = Entry::new(audit::LOGOUT_SUCCEEDED, Some(family.user_id)).session(family.id);
            self.audit(&txn, entry, origin, now).await?;
        }
        self.commit(txn).await
    }

    /// Marks one session ended unless it already is; whether this call ended it.
    pub(crate) async fn end_session(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        session_id: Uuid,
        reason: RevokeReason,
        now: DateTime<Utc>,
    ) -> Result<bool, AuthError> {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait as _, QueryFilter as _};
        let result = session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(Some(now)))
            .col_expr(session::Column::RevokeReason, Expr::value(Some(reason.as_str())))
            .filter(session::Column::Id.eq(session_id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
        Ok(result.rows_affected == 1)
    }
}

/// A std duration as chrono's (saturating).
pub(crate) fn chrono_duration(duration: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}
