//! Passwords of existing accounts: checking them (login, through auth) and changing them.

use keel_clients::{CredentialsVerdict, Origin, User};
use keel_events::topics;
use sea_orm::TransactionTrait as _;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::{Identity, actions, actor_or_self};
use crate::IdentityError;
use crate::domain::{Email, Password};
use crate::store::{self, user};
use crate::tokens::TokenKind;

impl Identity {
    /// Checks an e-mail and password. An unknown (or malformed) address is checked against a dummy
    /// hash, so it costs what a wrong password costs and answers the same `Invalid`. A match on a
    /// hash weaker than the configured parameters is re-hashed and stored.
    pub(crate) async fn verify_credentials(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<CredentialsVerdict, IdentityError> {
        let account = match Email::parse(email) {
            Ok(email) => store::find_user_by_email(&self.db, email.as_str()).await?,
            Err(_) => None,
        };
        let verified = self
            .hasher
            .verify(password, account.as_ref().map(|a| a.password_hash.as_str()))
            .await?;
        let Some(account) = account.filter(|_| verified.matches) else {
            return Ok(CredentialsVerdict::Invalid);
        };
        if verified.needs_rehash {
            self.rehash(&account, password).await;
        }
        let must_verify = self.settings.require_verified_email && !account.email_verified;
        let user = User::from(account);
        Ok(match must_verify {
            true => CredentialsVerdict::EmailNotVerified(user),
            false => CredentialsVerdict::Valid(user),
        })
    }

    /// Stores a hash of `password` with the configured parameters, unless the hash changed
    /// meanwhile. Failure only costs the upgrade, so it is logged, not returned.
    async fn rehash(&self, account: &user::Model, password: &SecretString) {
        let outcome = match self.hasher.hash(password).await {
            Ok(new) => {
                store::replace_password_hash(&self.db, account.id, &account.password_hash, &new, self.now())
                    .await
                    .map_err(IdentityError::from)
            }
            Err(error) => Err(error.into()),
        };
        match outcome {
            Ok(replaced) => {
                tracing::info!(user_id = %account.id, replaced, "password re-hashed with the configured parameters")
            }
            Err(error) => tracing::warn!(user_id = %account.id, %error, "re-hashing a password failed"),
        }
    }

    /// Changes a password given the current one: the new one must meet the policy, the current
    /// one must match (`WrongPassword` otherwise), the user's sessions are ended (nothing changes
    /// if that fails), then the new hash, the retirement of outstanding reset tokens, the audit
    /// record and `platform.user.password_changed` are committed together, and the sessions are
    /// ended again (a login that checked the old password meanwhile keeps none).
    pub(crate) async fn change_password(
        &self,
        user_id: Uuid,
        current: &SecretString,
        new: &SecretString,
        origin: &Origin,
    ) -> Result<(), IdentityError> {
        let account = store::find_user(&self.db, user_id)
            .await?
            .ok_or(IdentityError::UserNotFound)?;
        let email = Email::parse(&account.email).ok();
        let new =
            Password::parse(new, email.as_ref()).map_err(|p| IdentityError::field("new_password", p))?;
        // Growing delays after wrong current passwords, per user, checked (and once the user has
        // failed, counted) before any hash is spent: a stolen session must not become unlimited
        // guesses at the password. A throttle store that cannot answer lets the attempt through.
        let throttle_key = user_id.to_string();
        let attempt = match self.password_change_throttle.try_attempt(&throttle_key).await {
            Ok(attempt) => attempt,
            Err(error) => {
                tracing::warn!(%error, "password change throttle unavailable; the attempt is not throttled");
                keel_ratelimit::Attempt::Clear
            }
        };
        let wait = attempt.wait();
        if !wait.is_zero() {
            let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(IdentityError::TooManyPasswordAttempts { retry_after_secs });
        }
        let verified = match self.hasher.verify(current, Some(&account.password_hash)).await {
            Ok(verified) => verified,
            Err(error) => {
                // Never checked: a failure of ours must not cost the user a delay.
                if attempt == keel_ratelimit::Attempt::Counted
                    && let Err(release) = self.password_change_throttle.release_attempt(&throttle_key).await
                {
                    tracing::warn!(error = %release, "could not take back an unchecked attempt");
                }
                return Err(error.into());
            }
        };
        if !verified.matches {
            if attempt != keel_ratelimit::Attempt::Counted
                && let Err(error) = self.password_change_throttle.record_failure(&throttle_key).await
            {
                tracing::warn!(%error, "could not count a wrong current password");
            }
            return Err(IdentityError::WrongPassword);
        }
        if let Err(error) = self.password_change_throttle.record_success(&throttle_key).await {
            tracing::warn!(%error, "could not clear the password change throttle");
        }
        let new_hash = self.hasher.hash(new.secret()).await?;
        self.revoke_sessions(user_id, origin).await?;
        let now = self.now();
        let txn = self.db.begin().await?;
        if !store::replace_password_hash(&txn, user_id, &account.password_hash, &new_hash, now).await? {
            return Err(IdentityError::ConcurrentChange);
        }
        // A reset link sent before the change must not undo it.
        store::retire_tokens(&txn, user_id, TokenKind::Reset, now).await?;
        let record = self.audit(
            actions::PASSWORD_CHANGED,
            actor_or_self(origin, user_id),
            user_id,
            origin,
            json!({}),
        );
        self.enqueue(&txn, &record, topics::USER_PASSWORD_CHANGED, user_id, None)
            .await?;
        txn.commit().await?;
        self.waker.wake();
        self.revoke_sessions_after_commit(user_id, origin).await;
        Ok(())
    }
}
