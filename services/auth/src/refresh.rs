//! Refresh-token rotation and reuse detection (RFC 9700 §4.14).
//!
//! Every exchange marks the presented token used and issues its successor, in one transaction whose
//! first statement is the conditional claim `UPDATE … SET used_at = now WHERE hash = ? AND used_at
//! IS NULL`. Two requests presenting one token therefore cannot both win: the loser finds the token
//! used. (Claiming before reading also makes SQLite take its write lock at the start of the
//! transaction, so concurrent exchanges queue instead of failing on a stale snapshot.)
//!
//! A used token presented again means it leaked (or a client misbehaves): the whole session is
//! ended and `auth.refresh.reuse_detected` audited. One exception, `auth.refresh_reuse_grace_secs`
//! (default 0, strict): within that many seconds of the rotation, the rotated token may be
//! presented again by a client whose answer was lost, and gets a fresh pair of the same session
//! as long as the successor it was rotated into has not been used itself. The successor is then
//! retired (a later use of it counts as reuse) so only the newest pair stays valid.

use chrono::{DateTime, Utc};
use keel_clients::{Origin, TokenPair};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait as _, DatabaseTransaction, EntityTrait as _, QueryFilter as _,
    TransactionTrait as _,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use crate::AuthError;
use crate::audit::{self, Entry};
use crate::engine::{Engine, RevokeReason};
use crate::login::chrono_duration;
use crate::store::{refresh_token, session};
use crate::tokens::{NewRefreshToken, lookup_hash, new_refresh_token};

/// How a presented token that was already used is treated.
enum Reuse {
    /// A retry within the grace window: rotate the unused successor instead.
    GraceRetry { successor: String },
    /// A replay: end the session.
    Replay,
}

impl Engine {
    /// Exchanges a refresh token for a new pair of the same session.
    pub(crate) async fn refresh(
        &self,
        presented: &SecretString,
        origin: &Origin,
    ) -> Result<TokenPair, AuthError> {
        let hash = lookup_hash(presented.expose_secret()).ok_or(AuthError::InvalidRefreshToken)?;
        // The key is fetched before the transaction takes its locks and a connection: fetching it
        // inside (when the cached key is due for a re-check) would query the store while the
        // transaction holds a connection of the same pool.
        let key = self.keys.signing_key().await?;
        let now = self.now();
        let next = new_refresh_token()?;
        let txn = self.db.begin().await?;
        let claimed = claim(&txn, &hash, &next.hash, now).await?;
        let token = refresh_token::Entity::find_by_id(hash.clone())
            .one(&txn)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        let family = session::Entity::find_by_id(token.family_id)
            .one(&txn)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        // An ended or expired session: refused, nothing changes (the claim above is rolled back
        // with the transaction).
        if family.revoked_at.is_some() || family.expires_at <= now {
            return Err(AuthError::InvalidRefreshToken);
        }
        if token.expires_at <= now {
            // A token that was rotated and comes back after its own lifetime, while its session
            // lives on, is still a replay (a client only ever holds its newest token); an expired
            // token never used is just refused.
            // (Within the grace window it may still be a client's retry: refused, not a replay.)
            let grace = chrono_duration(self.settings.reuse_grace());
            let retry_window = token.used_at.is_some_and(|used_at| now - used_at <= grace);
            if !claimed && token.used_at.is_some() && !retry_window {
                return self.on_replay(txn, &family, origin, now).await;
            }
            return Err(AuthError::InvalidRefreshToken);
        }
        if !claimed {
            match self.classify(&token, now) {
                Reuse::GraceRetry { successor } if retire(&txn, &successor, now).await? => {
                    // The rotated token now points at the newest successor, so a second retry
                    // within the window finds an unused successor again.
                    refresh_token::Entity::update_many()
                        .col_expr(
                            refresh_token::Column::ReplacedBy,
                            Expr::value(Some(next.hash.clone())),
                        )
                        .filter(refresh_token::Column::Hash.eq(hash))
                        .exec(&txn)
                        .await?;
                }
                Reuse::GraceRetry { .. } | Reuse::Replay => {
                    return self.on_replay(txn, &family, origin, now).await;
                }
            }
        }
        self.rotate(txn, &key, &family, next, now).await
    }

    /// Whether an already used token is a retry within the grace window or a replay.
    fn classify(&self, token: &refresh_token::Model, now: DateTime<Utc>) -> Reuse {
        let grace = chrono_duration(self.settings.reuse_grace());
        match (token.used_at, &token.replaced_by) {
            (Some(used_at), Some(successor))
                if grace > chrono::Duration::zero() && now - used_at <= grace =>
            {
                Reuse::GraceRetry {
                    successor: successor.clone(),
                }
            }
            _ => Reuse::Replay,
        }
    }

    /// Stores the successor, extends the session, signs the new access token, then commits: a
    /// signing failure rolls the rotation back, so the client's retry with the same refresh token
    /// is not mistaken for reuse.
    async fn rotate(
        &self,
        txn: DatabaseTransaction,
        key: &crate::keys::SigningKey,
        family: &session::Model,
        next: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, AuthError> {
        let expires_at = now + chrono_duration(self.settings.refresh_ttl());
        refresh_token::Entity::insert(refresh_token::ActiveModel {
            hash: Set(next.hash),
            family_id: Set(family.id),
            issued_at: Set(now),
            expires_at: Set(expires_at),
            used_at: Set(None),
            replaced_by: Set(None),
        })
        .exec(&txn)
        .await?;
        // Conditional on the session still being live: a revocation that committed after our read
        // wins, and this exchange is refused.
        let extended = session::Entity::update_many()
            .col_expr(session::Column::LastUsedAt, Expr::value(now))
            .col_expr(session::Column::ExpiresAt, Expr::value(expires_at))
            .filter(session::Column::Id.eq(family.id))
            .filter(session::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if extended.rows_affected != 1 {
            return Err(AuthError::InvalidRefreshToken);
        }
        let pair = self.token_pair_signed_by(key, family.user_id, family.id, next.token, now)?;
        txn.commit().await?;
        Ok(pair)
    }

    /// Ends the session of a replayed token, audits it, and refuses the exchange.
    async fn on_replay(
        &self,
        txn: DatabaseTransaction,
        family: &session::Model,
        origin: &Origin,
        now: DateTime<Utc>,
    ) -> Result<TokenPair, AuthError> {
        if self
            .end_session(&txn, family.id, RevokeReason::RefreshTokenReuse, now)
            .await?
        {
            tracing::warn!(session_id = %family.id, user_id = %family.user_id, "refresh token reuse detected; session ended");
            let entry = Entry::new(audit::REFRESH_REUSE_DETECTED, None)
                .session(family.id)
                .metadata(json!({"user_id": family.user_id}));
            self.audit(&txn, entry, origin, now).await?;
        }
        self.commit(txn).await?;
        Err(AuthError::RefreshTokenReused)
    }
}

/// Marks the token `hash` used, with no successor, if it is still unused; whether it was. A grace
/// retry retires the successor its first exchange issued this way: a token used but replaced by
/// nothing is never taken for a retry (`classify`), so presenting it later is a replay.
async fn retire(txn: &DatabaseTransaction, hash: &str, now: DateTime<Utc>) -> Result<bool, AuthError> {
    let result = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(Some(now)))
        .filter(refresh_token::Column::Hash.eq(hash))
        .filter(refresh_token::Column::UsedAt.is_null())
        .exec(txn)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Marks the token `hash` used and replaced by `successor` if it is still unused; whether it was.
async fn claim(
    txn: &DatabaseTransaction,
    hash: &str,
    successor: &str,
    now: DateTime<Utc>,
) -> Result<bool, AuthError> {
    let result = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(Some(now)))
        .col_expr(
            refresh_token::Column::ReplacedBy,
            Expr::value(Some(successor.to_owned())),
        )
        .filter(refresh_token::Column::Hash.eq(hash))
        .filter(refresh_token::Column::UsedAt.is_null())
        .exec(txn)
        .await?;
    Ok(result.rows_affected == 1)
}
