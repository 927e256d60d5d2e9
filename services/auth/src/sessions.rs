//! Listing and ending sessions: the user's own (one device at a time), all of a user's (an admin,
//! identity after a password change, the user-deleted event), and removing expired ones.

use chrono::{DateTime, Utc};
use keel_clients::{Origin, Session};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _, TransactionTrait as _};
use serde_json::json;
use uuid::Uuid;

use crate::AuthError;
use crate::audit::{self, Entry};
use crate::engine::{Engine, RevokeReason};
use crate::store::{session, session_watermark};

/// How long a watermark is kept: far longer than any login takes (a login that started before
/// it ended long ago).
const WATERMARK_KEPT: chrono::Duration = chrono::Duration::hours(1);

impl Engine {
    /// The user's live sessions, newest first.
    pub(crate) async fn list_sessions(&self, user_id: Uuid) -> Result<Vec<Session>, AuthError> {
        let now = self.now();
        let rows = session::Entity::find()
            .filter(session::Column::UserId.eq(user_id))
            .filter(session::Column::RevokedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now))
            .order_by_desc(session::Column::CreatedAt)
            .order_by_desc(session::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| Session {
                id: row.id,
                created_at: row.created_at,
                last_used_at: row.last_used_at,
                expires_at: row.expires_at,
                ip: row.ip,
                user_agent: row.user_agent,
            })
            .collect())
    }

    /// Ends one live session of the user; `SessionNotFound` when there is none with that id.
    pub(crate) async fn revoke_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: RevokeReason,
        origin: &Origin,
    ) -> Result<(), AuthError> {
        let now = self.now();
        let txn = self.db.begin().await?;
        let ended = live_sessions(user_id, now)
            .filter(session::Column::Id.eq(session_id))
            .col_expr(session::Column::RevokedAt, Expr::value(Some(now)))
            .col_expr(session::Column::RevokeReason, Expr::value(Some(reason.as_str())))
            .exec(&txn)
            .await?;
        if ended.rows_affected == 0 {
            return Err(AuthError::SessionNotFound);
        }
        let entry = Entry::new(audit::SESSION_REVOKED, None)
            .session(session_id)
            .metadata(json!({"user_id": user_id, "reason": reason.as_str()}));
        self.audit(&txn, entry, origin, now).await?;
        self.commit(txn).await
    }

    /// Ends every live session of the user; returns how many there were. Idempotent: a second
    /// call ends none and writes no audit record.
    ///
    /// First, in statements of their own, the user's watermark is raised to now (never lowered),
    /// so a login in flight that started before it ends its session itself
    /// (`store::session_watermark`). The order matters on PostgreSQL: a login that commits its
    /// session and then reads the mark either sees the new mark, or read it before the mark was
    /// committed, and then its session was committed before the UPDATE below started, which ends
    /// it. That UPDATE therefore ends every live session, whatever its start: a cut-off by start
    /// time would spare a session committed between the mark's time and the UPDATE.
    pub(crate) async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        reason: RevokeReason,
        origin: &Origin,
    ) -> Result<u32, AuthError> {
        let now = self.now();
        self.raise_watermark(user_id, now).await?;
        let txn = self.db.begin().await?;
        let ended = live_sessions(user_id, now)
            .col_expr(session::Column::RevokedAt, Expr::value(Some(now)))
            .col_expr(session::Column::RevokeReason, Expr::value(Some(reason.as_str())))
            .exec(&txn)
            .await?;
        let count = u32::try_from(ended.rows_affected).unwrap_or(u32::MAX);
        if count > 0 {
            let entry = Entry::new(audit::SESSION_REVOKED, None)
                .user(user_id)
                .metadata(json!({"reason": reason.as_str(), "sessions": count}));
            self.audit(&txn, entry, origin, now).await?;
        }
        self.commit(txn).await?;
        Ok(count)
    }

    /// Sets the user's watermark to `to` unless it is already later: inserted when missing, then
    /// raised (two statements, the same on SQLite and PostgreSQL).
    async fn raise_watermark(&self, user_id: Uuid, to: DateTime<Utc>) -> Result<(), AuthError> {
        session_watermark::Entity::insert(session_watermark::ActiveModel {
            user_id: Set(user_id),
            not_before: Set(to),
        })
        .on_conflict(
            OnConflict::column(session_watermark::Column::UserId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        session_watermark::Entity::update_many()
            .col_expr(session_watermark::Column::NotBefore, Expr::value(to))
            .filter(session_watermark::Column::UserId.eq(user_id))
            .filter(session_watermark::Column::NotBefore.lt(to))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Deletes sessions (and, by cascade, their tokens) that expired, watermarks no login in
    /// flight can still be older than, and signing keys long out of the JWKS. Returns how many
    /// sessions went.
    pub(crate) async fn prune(&self) -> Result<u64, AuthError> {
        let now = self.now();
        let deleted = session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await?;
        session_watermark::Entity::delete_many()
            .filter(session_watermark::Column::NotBefore.lt(now - WATERMARK_KEPT))
            .exec(&self.db)
            .await?;
        self.keys.prune().await?;
        Ok(deleted.rows_affected)
    }
}

/// An update of the user's live sessions (not ended, not expired).
fn live_sessions(user_id: Uuid, now: DateTime<Utc>) -> sea_orm::UpdateMany<session::Entity> {
    session::Entity::update_many()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
}
