//! Flows driven by a one-time token: e-mail verification and password reset.

use std::sync::Arc;

use keel_clients::Origin;
use keel_events::topics;
use sea_orm::TransactionTrait as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use tracing::Instrument as _;

use super::{Identity, actions, actor_or_self, expiry};
use crate::IdentityError;
use crate::domain::{Email, Password};
use crate::notifier::reset_message;
use crate::store::{self, token};
use crate::tokens::{self, TokenKind};

impl Identity {
    /// Consumes a verification token and marks the address verified. Unknown, used and expired
    /// tokens are one error (`InvalidToken`).
    pub(crate) async fn verify_email(
        &self,
        token: &SecretString,
        origin: &Origin,
    ) -> Result<(), IdentityError> {
        let found = self.usable_token(TokenKind::Verify, token).await?;
        let now = self.now();
        let txn = self.db.begin().await?;
        if !store::consume_token(&txn, found.id, now).await? {
            return Err(IdentityError::InvalidToken);
        }
        store::mark_verified(&txn, found.user_id, now).await?;
        let account = store::find_user(&txn, found.user_id)
            .await?
            .ok_or(IdentityError::InvalidToken)?;
        let record = self.audit(
            actions::EMAIL_VERIFIED,
            actor_or_self(origin, account.id),
            account.id,
            origin,
            json!({ "email": account.email }),
        );
        self.enqueue(
            &txn,
            &record,
            topics::USER_UPDATED,
            account.id,
            Some(&account.email),
        )
        .await?;
        txn.commit().await?;
        self.waker.wake();
        Ok(())
    }

    /// Answers the same, after the same work (one lookup), whether or not the account exists:
    /// the token row and the e-mail are made after the answer, on the service's task tracker.
    /// Only a malformed address is refused (which says nothing about any account).
    pub(crate) async fn request_password_reset(
        self: &Arc<Self>,
        email: &str,
        origin: &Origin,
    ) -> Result<(), IdentityError> {
        let email = Email::parse(email).map_err(|p| IdentityError::field("email", p))?;
        self.limit_reset_requests(&email).await?;
        let account = store::find_user_by_email(&self.db, email.as_str()).await?;
        let token = tokens::generate();
        let this = Arc::clone(self);
        let origin = origin.clone();
        let work = async move {
            match account {
                Some(account) => this.issue_reset(account.id, email, token, &origin).await,
                None => tracing::debug!("password reset asked for an address without an account"),
            }
        };
        self.tasks.spawn(work.instrument(tracing::Span::current()));
        Ok(())
    }

    /// Counts a reset request for `email` (whether or not it has an account, so the answer tells
    /// nothing about that); refuses it past `identity.reset_requests_per_address`. A counter
    /// store that cannot be reached lets the request through, logged and counted.
    async fn limit_reset_requests(&self, email: &Email) -> Result<(), IdentityError> {
        let key = reset_limit_key(email);
        match self
            .reset_limiter
            .check(&key, self.settings.reset_requests_per_address)
            .await
        {
            Ok(decision) if decision.allowed => Ok(()),
            Ok(decision) => Err(IdentityError::TooManyResetRequests {
                retry_after_secs: decision.retry_after_secs().unwrap_or(1),
            }),
            Err(error) => {
                metrics::counter!("keel_identity_reset_limit_unavailable_total").increment(1);
                tracing::warn!(%error, "reset-request limit unavailable; the request goes ahead");
                Ok(())
            }
        }
    }

    /// Stores the reset token and sends its link; failures are logged (the caller has had its
    /// answer already).
    async fn issue_reset(&self, user_id: uuid::Uuid, email: Email, token: tokens::NewToken, origin: &Origin) {
        let now = self.now();
        let ttl = self.settings.reset_ttl();
        let stored = store::insert_token(
            &self.db,
            user_id,
            TokenKind::Reset,
            &token.hash,
            expiry(now, ttl),
            now,
        )
        .await;
        if let Err(error) = stored {
            tracing::error!(%user_id, %error, "storing a password reset token failed; no e-mail sent");
            return;
        }
        tracing::debug!(%user_id, ip = ?origin.ip, "password reset token issued");
        let link = self.link("reset-password", token.text.expose_secret());
        self.send(&reset_message(&email, &link, ttl)).await;
    }

    /// Consumes a reset token and sets a new password. Checks the token and the new password,
    /// ends the user's sessions (nothing changes if that fails), then commits the new hash, the
    /// consumed token (and any other open reset token of the user), the audit record and
    /// `platform.user.password_changed` together, and ends the sessions again (a login that checked
    /// the old password meanwhile keeps none).
    pub(crate) async fn reset_password(
        &self,
        token: &SecretString,
        new_password: &SecretString,
        origin: &Origin,
    ) -> Result<(), IdentityError> {
        let found = self.usable_token(TokenKind::Reset, token).await?;
        let account = store::find_user(&self.db, found.user_id)
            .await?
            .ok_or(IdentityError::InvalidToken)?;
        let email = Email::parse(&account.email).ok();
        let new = Password::parse(new_password, email.as_ref())
            .map_err(|p| IdentityError::field("new_password", p))?;
        let new_hash = self.hasher.hash(new.secret()).await?;
        self.revoke_sessions(account.id, origin).await?;
        let now = self.now();
        let txn = self.db.begin().await?;
        if !store::consume_token(&txn, found.id, now).await? {
            return Err(IdentityError::InvalidToken);
        }
        store::set_password_hash(&txn, account.id, &new_hash, now).await?;
        store::retire_tokens(&txn, account.id, TokenKind::Reset, now).await?;
        let record = self.audit(
            actions::PASSWORD_RESET,
            actor_or_self(origin, account.id),
            account.id,
            origin,
            json!({}),
        );
        self.enqueue(&txn, &record, topics::USER_PASSWORD_CHANGED, account.id, None)
            .await?;
        txn.commit().await?;
        self.waker.wake();
        self.revoke_sessions_after_commit(account.id, origin).await;
        Ok(())
    }

    /// The stored token of `kind` matching `presented`, if it is unused and unexpired now. (The
    /// consuming UPDATE checks both again, atomically; this early check only spares the work
    /// before it.)
    async fn usable_token(
        &self,
        kind: TokenKind,
        presented: &SecretString,
    ) -> Result<token::Model, IdentityError> {
        if presented.expose_secret().trim().is_empty() {
            return Err(IdentityError::InvalidToken);
        }
        let hash = tokens::hash_presented(presented);
        let now = self.now();
        store::find_token(&self.db, kind, &hash)
            .await?
            .filter(|t| t.used_at.is_none() && t.expires_at > now)
            .ok_or(IdentityError::InvalidToken)
    }
}

/// The rate-limit key of an address: hex SHA-256 of it (no addresses in a shared Redis).
fn reset_limit_key(email: &Email) -> String {
    keel_ratelimit::opaque_key(email.as_str())
}
