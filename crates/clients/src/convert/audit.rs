//! Audit messages ↔ domain types.

use keel_proto::audit::v1 as pb;

use super::{malformed, non_empty, non_zero, optional, optional_uuid, required, time, uuid};
use crate::wire::timestamp;
use crate::{AuditQuery, AuditRecord, ChainReport, ServiceError, StoredAuditRecord};

impl From<AuditRecord> for pb::AuditRecord {
    fn from(record: AuditRecord) -> Self {
        Self {
            id: record.id.to_string(),
            action: record.action,
            actor_id: record.actor_id.map(|id| id.to_string()).unwrap_or_default(),
            target_type: record.target_type.unwrap_or_default(),
            target_id: record.target_id.unwrap_or_default(),
            request_id: record.request_id.unwrap_or_default(),
            ip: record.ip.unwrap_or_default(),
            user_agent: record.user_agent.unwrap_or_default(),
            occurred_at: Some(timestamp(record.occurred_at)),
            metadata_json: record.metadata.to_string(),
            source: record.source,
            tenant_id: record.tenant_id.unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::AuditRecord> for AuditRecord {
    type Error = ServiceError;
    fn try_from(record: pb::AuditRecord) -> Result<Self, Self::Error> {
        let metadata = match record.metadata_json.as_str() {
            "" => serde_json::Value::Object(serde_json::Map::new()),
            json => {
                serde_json::from_str(json).map_err(|_| malformed("record.metadata_json", "is not JSON"))?
            }
        };
        Ok(Self {
            id: uuid("record.id", &record.id)?,
            action: non_empty("record.action", record.action)?,
            actor_id: optional_uuid("record.actor_id", &record.actor_id)?,
            target_type: optional(record.target_type),
            target_id: optional(record.target_id),
            request_id: optional(record.request_id),
            ip: optional(record.ip),
            user_agent: optional(record.user_agent),
            occurred_at: time("record.occurred_at", record.occurred_at.as_ref())?,
            metadata,
            source: record.source,
            tenant_id: optional(record.tenant_id),
        })
    }
}

impl From<StoredAuditRecord> for pb::StoredRecord {
    fn from(stored: StoredAuditRecord) -> Self {
        Self {
            record: Some(stored.record.into()),
            sequence: stored.sequence,
            recorded_at: Some(timestamp(stored.recorded_at)),
            hash: stored.hash,
            previous_hash: stored.previous_hash,
        }
    }
}

impl TryFrom<pb::StoredRecord> for StoredAuditRecord {
    type Error = ServiceError;
    fn try_from(stored: pb::StoredRecord) -> Result<Self, Self::Error> {
        Ok(Self {
            record: required("record", stored.record)?.try_into()?,
            sequence: stored.sequence,
            recorded_at: time("recorded_at", stored.recorded_at.as_ref())?,
            hash: stored.hash,
            previous_hash: stored.previous_hash,
        })
    }
}

impl From<ChainReport> for pb::VerifyChainResponse {
    fn from(report: ChainReport) -> Self {
        Self {
            intact: report.intact,
            records_checked: report.records_checked,
            first_broken_sequence: report.first_broken_sequence.unwrap_or_default(),
            detail: report.detail,
        }
    }
}

impl TryFrom<pb::VerifyChainResponse> for ChainReport {
    type Error = ServiceError;
    fn try_from(report: pb::VerifyChainResponse) -> Result<Self, Self::Error> {
        Ok(Self {
            intact: report.intact,
            records_checked: report.records_checked,
            first_broken_sequence: non_zero(report.first_broken_sequence),
            detail: report.detail,
        })
    }
}

impl From<AuditQuery> for pb::QueryRequest {
    fn from(query: AuditQuery) -> Self {
        Self {
            actor_id: query.actor_id.map(|id| id.to_string()).unwrap_or_default(),
            action: query.action.unwrap_or_default(),
            target_id: query.target_id.unwrap_or_default(),
            request_id: query.request_id.unwrap_or_default(),
            from: query.from.map(timestamp),
            to: query.to.map(timestamp),
            limit: query.page.limit.unwrap_or_default(),
            cursor: query.page.cursor.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;
    use crate::convert::error_text;

    fn record() -> AuditRecord {
        AuditRecord {
            id: Uuid::now_v7(),
            action: "auth.login.succeeded".into(),
            actor_id: Some(Uuid::now_v7()),
            target_type: Some("user".into()),
            target_id: Some("42".into()),
            request_id: Some("req-1".into()),
            ip: Some("192.0.2.1".into()),
            user_agent: None,
            occurred_at: Utc::now(),
            metadata: serde_json::json!({"method": "password"}),
            source: "auth".into(),
            tenant_id: None,
        }
    }

    #[test]
    fn records_round_trip_with_their_metadata() -> Result<(), ServiceError> {
        let record = record();
        assert_eq!(
            AuditRecord::try_from(pb::AuditRecord::from(record.clone()))?,
            record
        );
        let stored = StoredAuditRecord {
            record,
            sequence: 7,
            recorded_at: Utc::now(),
            hash: "ab".repeat(32),
            previous_hash: "cd".repeat(32),
        };
        assert_eq!(
            StoredAuditRecord::try_from(pb::StoredRecord::from(stored.clone()))?,
            stored
        );
        Ok(())
    }

    #[test]
    fn a_record_with_metadata_that_is_not_json_is_rejected() {
        let mut message = pb::AuditRecord::from(record());
        message.metadata_json = "{oops".into();
        assert_eq!(
            error_text(AuditRecord::try_from(message)),
            "malformed message: `record.metadata_json` is not JSON"
        );
    }

    #[test]
    fn chain_reports_round_trip() -> Result<(), ServiceError> {
        let broken = ChainReport {
            intact: false,
            records_checked: 10,
            first_broken_sequence: Some(4),
            detail: "hash mismatch at 4".into(),
        };
        let intact = ChainReport {
            intact: true,
            records_checked: 10,
            first_broken_sequence: None,
            detail: String::new(),
        };
        for report in [broken, intact] {
            assert_eq!(
                ChainReport::try_from(pb::VerifyChainResponse::from(report.clone()))?,
                report
            );
        }
        Ok(())
    }
}
