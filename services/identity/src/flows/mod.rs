//! The identity flows, independent of the wire: REST handlers and the gRPC server both call
//! [`Identity`], and it implements [`keel_clients::IdentityClient`] for in-process callers.
//!
//! Every change is one database transaction holding the change itself, its audit record and its
//! event (through the outbox); after commit the outbox relay is woken and e-mails are sent. On
//! SQLite each transaction starts with a write, so it takes the write lock at once and never has
//! to upgrade a read lock (which would fail under concurrency instead of waiting).

mod account;
mod client;
mod credentials;
mod tokens;

pub use client::LocalIdentityClient;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound as _, Utc};
use keel_clients::{AuditRecord, AuthClient, AuthzClient, Origin, ServiceError};
use keel_events::{Event, Outbox, RelayWaker};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::json;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::IdentityError;
use crate::clock::Clock;
use crate::config::IdentitySettings;
use crate::hashing::PasswordHasher;
use crate::notifier::{EmailMessage, Notifier};

/// The `source` of this service's events and audit records.
pub(crate) const SOURCE: &str = "identity";

/// Audit actions (DESIGN §4).
pub(crate) mod actions {
    /// A user registered (or was created internally).
    pub(crate) const REGISTERED: &str = "identity.user.registered";
    /// A user's profile changed.
    pub(crate) const UPDATED: &str = "identity.user.updated";
    /// A user was deleted.
    pub(crate) const DELETED: &str = "identity.user.deleted";
    /// A user verified their address.
    pub(crate) const EMAIL_VERIFIED: &str = "identity.email.verified";
    /// A user changed their password.
    pub(crate) const PASSWORD_CHANGED: &str = "identity.password.changed";
    /// A user reset their password through a reset link.
    pub(crate) const PASSWORD_RESET: &str = "identity.password.reset";
}

/// The identity service's behaviour over its store and ports.
pub(crate) struct Identity {
    pub(crate) db: DatabaseConnection,
    pub(crate) settings: IdentitySettings,
    pub(crate) hasher: PasswordHasher,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) auth: Arc<dyn AuthClient>,
    /// Takes a user's roles before the user is deleted (and keeps the last administrator).
    pub(crate) authz: Arc<dyn AuthzClient>,
    pub(crate) waker: RelayWaker,
    /// Counts password-reset requests per address.
    pub(crate) reset_limiter: Arc<dyn keel_ratelimit::RateLimiter>,
    /// Wrong current passwords on a password change, per user (`identity.password_change_throttle`).
    pub(crate) password_change_throttle: Arc<dyn keel_ratelimit::Throttle>,
    /// Work finished after the answer (reset e-mails); waited for on shutdown.
    pub(crate) tasks: TaskTracker,
}

impl Identity {
    /// Now, at the store's precision (microseconds).
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }

    /// An audit record of `action` on user `target`, stamped with the current request's id.
    pub(crate) fn audit(
        &self,
        action: &str,
        actor_id: Option<Uuid>,
        target: Uuid,
        origin: &Origin,
        metadata: serde_json::Value,
    ) -> AuditRecord {
        AuditRecord {
            id: Uuid::now_v7(),
            action: action.to_owned(),
            actor_id,
            target_type: Some("user".to_owned()),
            target_id: Some(target.to_string()),
            request_id: keel_telemetry::context::current().map(|c| c.request_id().to_owned()),
            ip: origin.ip.clone(),
            user_agent: origin.user_agent.clone(),
            occurred_at: self.now(),
            metadata,
            source: SOURCE.to_owned(),
            tenant_id: None,
        }
    }

    /// Writes `record` and the event `topic` about `user_id` (with `email` in the payload when
    /// given) into the outbox, on `conn` (the change's transaction).
    pub(crate) async fn enqueue<C: ConnectionTrait>(
        &self,
        conn: &C,
        record: &AuditRecord,
        topic: &str,
        user_id: Uuid,
        email: Option<&str>,
    ) -> Result<(), IdentityError> {
        let payload = match email {
            Some(email) => json!({ "user_id": user_id, "email": email }),
            None => json!({ "user_id": user_id }),
        };
        Outbox::enqueue_audit(conn, record).await?;
        Outbox::enqueue_event(conn, &Event::new(topic, SOURCE, payload)?).await?;
        Ok(())
    }

    /// Ends every session of the user before a credential change; any failure stops the change.
    pub(crate) async fn revoke_sessions(&self, user_id: Uuid, origin: &Origin) -> Result<(), IdentityError> {
        match self.auth.revoke_user_sessions(user_id, origin).await {
            Ok(ended) => {
                tracing::debug!(%user_id, ended, "ended the user's sessions");
                Ok(())
            }
            Err(error) => Err(IdentityError::SessionsNotRevoked(error)),
        }
    }

    /// Takes every role of a user about to be deleted. Authz refuses when the user is the last
    /// holder of the admin role (`LastAdministrator`, nothing changed); any other failure stops
    /// the deletion (`RolesNotReleased`).
    pub(crate) async fn release_roles(&self, user_id: Uuid, origin: &Origin) -> Result<(), IdentityError> {
        match self.authz.revoke_all_roles(user_id, origin).await {
            Ok(released) => {
                tracing::debug!(%user_id, released, "took the user's roles before deleting them");
                Ok(())
            }
            Err(ServiceError::FailedPrecondition(reason)) => Err(IdentityError::LastAdministrator(reason)),
            Err(error) => Err(IdentityError::RolesNotReleased(error)),
        }
    }

    /// Ends every session of the user again once a credential change (or the deletion) is
    /// committed. A login whose old password was checked between the first ending and the commit
    /// would otherwise keep its session; this second ending reaches it, and auth refuses a login
    /// still in flight that started before it (auth's session watermarks). The change has
    /// happened, so a failure is logged and counted, not returned; the `password_changed` or
    /// `user_deleted` event then ends the sessions where it reaches auth.
    pub(crate) async fn revoke_sessions_after_commit(&self, user_id: Uuid, origin: &Origin) {
        match self.auth.revoke_user_sessions(user_id, origin).await {
            Ok(ended) => tracing::debug!(%user_id, ended, "ended the user's sessions after the change"),
            Err(error) => {
                metrics::counter!("keel_identity_session_revocation_failures_total").increment(1);
                tracing::warn!(%user_id, %error, "ending the user's sessions after the change failed");
            }
        }
    }

    /// Sends a message after commit; a failure is logged and counted, never returned: the change
    /// it announces has happened and stays.
    pub(crate) async fn send(&self, message: &EmailMessage) {
        if let Err(error) = self.notifier.send(message).await {
            metrics::counter!("keel_identity_notification_failures_total").increment(1);
            tracing::warn!(%error, subject = %message.subject, "sending an e-mail failed");
        }
    }

    /// A link to `path` of the front end carrying `token`.
    pub(crate) fn link(&self, path: &str, token: &str) -> String {
        format!("{}/{path}?token={token}", self.settings.base_url())
    }
}

/// `now + ttl`, saturating at the end of time.
pub(crate) fn expiry(now: DateTime<Utc>, ttl: std::time::Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The actor of a self-service action: the authenticated caller if any, else the user acting on
/// their own account (registration, verification, reset are done by the account's owner).
pub(crate) fn actor_or_self(origin: &Origin, user_id: Uuid) -> Option<Uuid> {
    origin.actor_id.or(Some(user_id))
}
