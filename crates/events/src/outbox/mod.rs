//! The transactional outbox: events and audit records written in the caller's transaction, so
//! they exist exactly when the change they describe was committed.

pub(crate) mod entity;
mod migration;

use chrono::Utc;
use keel_clients::AuditRecord;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait as _};
use uuid::Uuid;

use crate::event::validate_topic;
use crate::{Event, EventError};

pub use migration::OutboxMigration;

/// Writes events and audit records into the service's `keel_outbox` table, for
/// [`crate::OutboxRelay`] to deliver after commit.
///
/// Pass the transaction that makes the change: if it rolls back, the row goes with it and nothing
/// is delivered; if it commits, the row is delivered at least once. Call the relay's
/// [`crate::RelayWaker::wake`] after committing for immediate delivery.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outbox;

impl Outbox {
    /// Queues `event` for publication on the service's event bus.
    pub async fn enqueue_event<C: ConnectionTrait>(conn: &C, event: &Event) -> Result<(), EventError> {
        validate_topic(&event.topic)?;
        let payload = serde_json::to_string(event).map_err(EventError::Payload)?;
        insert(conn, entity::KIND_EVENT, &event.topic, payload).await
    }

    /// Queues `record` for the audit service. Its `action` follows the topic rule
    /// (`<service>.<resource>.<verb>`, lowercase); its `id` is the audit service's idempotency
    /// key, so a redelivery is not a duplicate.
    ///
    /// Free-text fields that come from clients (user agent, ids) are cut to the audit service's
    /// limits and oversized metadata is replaced by a marker, here, before the record is queued:
    /// a record the audit service would reject could never be delivered and would hold back every
    /// later record of the store (delivery keeps order).
    ///
    /// Marks the current request (if any) as audited, so the middleware that audits authenticated
    /// mutations no handler audited (`keel_service::audit_unaudited_mutations`) does not record it
    /// a second time.
    pub async fn enqueue_audit<C: ConnectionTrait>(conn: &C, record: &AuditRecord) -> Result<(), EventError> {
        validate_topic(&record.action)?;
        let record = within_audit_limits(record);
        let payload = serde_json::to_string(&record).map_err(EventError::Payload)?;
        insert(conn, entity::KIND_AUDIT, &record.action, payload).await?;
        if let Some(request) = keel_telemetry::context::current() {
            request.mark_audited();
        }
        Ok(())
    }
}

/// The audit service's limits on a record's free-text fields (bytes) and metadata.
mod limits {
    pub(super) const TARGET_TYPE: usize = 64;
    pub(super) const TARGET_ID: usize = 256;
    pub(super) const REQUEST_ID: usize = 128;
    pub(super) const IP: usize = 64;
    pub(super) const USER_AGENT: usize = 1024;
    pub(super) const TENANT_ID: usize = 128;
    pub(super) const METADATA: usize = 64 * 1024;
}

fn within_audit_limits(record: &AuditRecord) -> AuditRecord {
    let mut record = record.clone();
    for (field, limit) in [
        (&mut record.target_type, limits::TARGET_TYPE),
        (&mut record.target_id, limits::TARGET_ID),
        (&mut record.request_id, limits::REQUEST_ID),
        (&mut record.ip, limits::IP),
        (&mut record.user_agent, limits::USER_AGENT),
        (&mut record.tenant_id, limits::TENANT_ID),
    ] {
        if let Some(text) = field.as_mut() {
            truncate_at_char(text, limit);
        }
    }
    let metadata_bytes = record.metadata.to_string().len();
    if !record.metadata.is_object() || metadata_bytes > limits::METADATA {
        record.metadata = serde_json::json!({ "metadata_dropped": true, "bytes": metadata_bytes });
    }
    record
}

/// Cuts `text` to at most `limit` bytes without splitting a character.
fn truncate_at_char(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

async fn insert<C: ConnectionTrait>(
    conn: &C,
    kind: &str,
    topic: &str,
    payload: String,
) -> Result<(), EventError> {
    let now = Utc::now();
    let row = entity::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(kind.to_owned()),
        topic: Set(topic.to_owned()),
        payload: Set(payload),
        created_at: Set(now),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
    };
    entity::Entity::insert(row).exec_without_returning(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_supplied_text_is_cut_to_the_audit_limits_and_huge_metadata_replaced() {
        let record = AuditRecord {
            id: Uuid::now_v7(),
            action: "auth.login.failed".into(),
            actor_id: None,
            target_type: Some("user".into()),
            target_id: None,
            request_id: Some("r".repeat(500)),
            ip: None,
            user_agent: Some("é".repeat(2000)),
            occurred_at: Utc::now(),
            metadata: serde_json::json!({ "blob": "x".repeat(70_000) }),
            source: "auth".into(),
            tenant_id: None,
        };
        let bounded = within_audit_limits(&record);
        assert_eq!(
            bounded.request_id.as_deref().map(str::len),
            Some(limits::REQUEST_ID)
        );
        let agent = bounded.user_agent.expect("kept");
        assert!(agent.len() <= limits::USER_AGENT && agent.chars().all(|c| c == 'é'));
        assert_eq!(bounded.metadata["metadata_dropped"], true);
        assert_eq!(bounded.target_type.as_deref(), Some("user"));
    }
}
