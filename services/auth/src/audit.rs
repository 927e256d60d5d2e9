//! The audit records the auth service writes (DESIGN §4), built in one place so actions, targets
//! and metadata are named the same way everywhere. Records go through the outbox, in the same
//! transaction as the change they describe; metadata never holds a password or a token.

use chrono::{DateTime, Utc};
use keel_clients::{AuditRecord, Origin};
use serde_json::{Value, json};
use uuid::Uuid;

/// Longest e-mail address kept in a failed-login record (RFC 5321 limits addresses to 254).
const MAX_EMAIL_LEN: usize = 320;

/// `auth.login.succeeded`
pub(crate) const LOGIN_SUCCEEDED: &str = "auth.login.succeeded";
/// `auth.login.failed`
pub(crate) const LOGIN_FAILED: &str = "auth.login.failed";
/// A login refused unchecked because of earlier failures (the throttle).
pub(crate) const LOGIN_THROTTLED: &str = "auth.login.throttled";
/// `auth.logout.succeeded`
pub(crate) const LOGOUT_SUCCEEDED: &str = "auth.logout.succeeded";
/// `auth.refresh.reuse_detected`
pub(crate) const REFRESH_REUSE_DETECTED: &str = "auth.refresh.reuse_detected";
/// `auth.session.revoked`
pub(crate) const SESSION_REVOKED: &str = "auth.session.revoked";

/// What happened, before the request's context is added.
pub(crate) struct Entry {
    action: &'static str,
    actor_id: Option<Uuid>,
    target: Option<(&'static str, String)>,
    metadata: Value,
}

impl Entry {
    /// A record of `action` by `actor_id`.
    pub(crate) fn new(action: &'static str, actor_id: Option<Uuid>) -> Self {
        Self {
            action,
            actor_id,
            target: None,
            metadata: json!({}),
        }
    }

    /// About a session.
    pub(crate) fn session(mut self, session_id: Uuid) -> Self {
        self.target = Some(("session", session_id.to_string()));
        self
    }

    /// About a user.
    pub(crate) fn user(mut self, user_id: Uuid) -> Self {
        self.target = Some(("user", user_id.to_string()));
        self
    }

    /// With action-specific detail (a JSON object; never secrets).
    pub(crate) fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// The complete record, with the origin of the request and its request id.
    pub(crate) fn into_record(self, origin: &Origin, now: DateTime<Utc>) -> AuditRecord {
        let (target_type, target_id) = match self.target {
            Some((kind, id)) => (Some(kind.to_owned()), Some(id)),
            None => (None, None),
        };
        AuditRecord {
            id: Uuid::now_v7(),
            action: self.action.to_owned(),
            actor_id: self.actor_id.or(origin.actor_id),
            target_type,
            target_id,
            request_id: keel_telemetry::context::current().map(|c| c.request_id().to_owned()),
            ip: origin.ip.clone(),
            user_agent: origin.user_agent.clone(),
            occurred_at: now,
            metadata: self.metadata,
            source: "auth".to_owned(),
            tenant_id: None,
        }
    }
}

/// The e-mail of a failed login as recorded: trimmed, lower-cased, bounded.
pub(crate) fn recorded_email(email: &str) -> String {
    email
        .trim()
        .chars()
        .take(MAX_EMAIL_LEN)
        .collect::<String>()
        .to_lowercase()
}
