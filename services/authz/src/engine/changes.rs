//! What every authz write leaves behind: one event and one audit record per change, enqueued in
//! the write's own transaction.
//!
//! Why this module exists: "every change is published and audited, or neither happens" holds only
//! if each write goes through the same helper on its transaction; the topics, action names and
//! payload shapes (contracts: `{role_id, role_name}`, `{user_id, role_id, role_name}`,
//! `{role_id, role_name, permissions}`) are spelled here once.

use keel_clients::{AuditRecord, Origin};
use keel_events::{Event, Outbox, topics};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AuthzError;
use crate::store::entities::role;

/// The source of authz's events and audit records.
pub(crate) const SOURCE: &str = "authz";

/// One change: its event and its audit record.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    topic: &'static str,
    action: &'static str,
    target_type: &'static str,
    target_id: String,
    payload: Value,
    metadata: Value,
}

impl Change {
    /// A role was created.
    pub(crate) fn role_created(role: &role::Model) -> Self {
        Self::about_role(topics::ROLE_CREATED, "authz.role.created", role)
    }

    /// A role was renamed or re-described; `previous_name` is its name before.
    pub(crate) fn role_updated(role: &role::Model, previous_name: &str) -> Self {
        let mut change = Self::about_role(topics::ROLE_UPDATED, "authz.role.updated", role);
        change.metadata = json!({
            "role_id": role.id,
            "role_name": role.name,
            "previous_name": previous_name,
            "description": role.description,
        });
        change
    }

    /// A role was deleted; `holders` users lost it and `permissions` were its grants.
    pub(crate) fn role_deleted(role: &role::Model, holders: usize, permissions: &[String]) -> Self {
        let mut change = Self::about_role(topics::ROLE_DELETED, "authz.role.deleted", role);
        change.metadata = json!({
            "role_id": role.id,
            "role_name": role.name,
            "holders": holders,
            "permissions": permissions,
        });
        change
    }

    /// Permissions were granted to a role.
    pub(crate) fn permissions_granted(role: &role::Model, permissions: &[String]) -> Self {
        Self::about_grants(
            topics::PERMISSION_GRANTED,
            "authz.permission.granted",
            role,
            permissions,
        )
    }

    /// Permissions were revoked from a role.
    pub(crate) fn permissions_revoked(role: &role::Model, permissions: &[String]) -> Self {
        Self::about_grants(
            topics::PERMISSION_REVOKED,
            "authz.permission.revoked",
            role,
            permissions,
        )
    }

    /// A role was assigned to a user.
    pub(crate) fn role_assigned(user_id: Uuid, role: &role::Model) -> Self {
        Self::about_user(topics::ROLE_ASSIGNED, "authz.role.assigned", user_id, role)
    }

    /// A role was taken from a user.
    pub(crate) fn role_revoked(user_id: Uuid, role: &role::Model) -> Self {
        Self::about_user(topics::ROLE_REVOKED, "authz.role.revoked", user_id, role)
    }

    fn about_role(topic: &'static str, action: &'static str, role: &role::Model) -> Self {
        let payload = json!({"role_id": role.id, "role_name": role.name});
        Self {
            topic,
            action,
            target_type: "role",
            target_id: role.id.to_string(),
            metadata: payload.clone(),
            payload,
        }
    }

    fn about_grants(
        topic: &'static str,
        action: &'static str,
        role: &role::Model,
        permissions: &[String],
    ) -> Self {
        let payload = json!({"role_id": role.id, "role_name": role.name, "permissions": permissions});
        Self {
            topic,
            action,
            target_type: "role",
            target_id: role.id.to_string(),
            metadata: payload.clone(),
            payload,
        }
    }

    fn about_user(topic: &'static str, action: &'static str, user_id: Uuid, role: &role::Model) -> Self {
        let payload = json!({"user_id": user_id, "role_id": role.id, "role_name": role.name});
        Self {
            topic,
            action,
            target_type: "user",
            target_id: user_id.to_string(),
            metadata: payload.clone(),
            payload,
        }
    }
}

/// Enqueues the event and the audit record of each change on `conn` (the write's transaction).
/// The audit record carries the event's request id and time, and `origin`'s actor and client.
pub(crate) async fn record<C: ConnectionTrait>(
    conn: &C,
    origin: &Origin,
    changes: Vec<Change>,
) -> Result<(), AuthzError> {
    for change in changes {
        let event = Event::new(change.topic, SOURCE, &change.payload)?;
        Outbox::enqueue_event(conn, &event).await?;
        let audit = AuditRecord {
            id: Uuid::now_v7(),
            action: change.action.to_owned(),
            actor_id: origin.actor_id,
            target_type: Some(change.target_type.to_owned()),
            target_id: Some(change.target_id),
            request_id: event.request_id.clone(),
            ip: origin.ip.clone(),
            user_agent: origin.user_agent.clone(),
            occurred_at: event.occurred_at,
            metadata: change.metadata,
            source: SOURCE.to_owned(),
            tenant_id: None,
        };
        Outbox::enqueue_audit(conn, &audit).await?;
    }
    Ok(())
}
