//! The gRPC face of the audit service (`keel.audit.v1.AuditService`).
//!
//! Why this module exists: producers in other processes append through Record and operators
//! query and verify through Query and VerifyChain. Requests are parsed here into domain types with
//! per-field violations (`records[3].id`), then take the same path as in-process calls; errors
//! leave through `keel_clients::wire::to_status`, the one mapping to status codes.

use chrono::{DateTime, Utc};
use keel_clients::{AuditQuery, AuditRecord, FieldViolation, PageRequest, ServiceError, wire};
use keel_proto::audit::v1 as pb;
use keel_proto::audit::v1::audit_service_server::AuditService as AuditRpc;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::violation;
use crate::local::Audit;
use crate::record::MAX_BATCH;

/// The tonic implementation over the service's core.
#[derive(Debug, Clone)]
pub struct GrpcAudit {
    audit: Audit,
}

impl GrpcAudit {
    pub(crate) fn new(audit: Audit) -> Self {
        Self { audit }
    }
}

#[tonic::async_trait]
impl AuditRpc for GrpcAudit {
    async fn record(
        &self,
        request: Request<pb::RecordRequest>,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        let records = parse_records(request.into_inner().records).map_err(wire::to_status)?;
        let stored = self.audit.record(&records).await.map_err(wire::to_status)?;
        Ok(Response::new(pb::RecordResponse { stored }))
    }

    async fn query(&self, request: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        let query = parse_query(request.into_inner()).map_err(wire::to_status)?;
        let page = self.audit.query(query).await.map_err(wire::to_status)?;
        Ok(Response::new(pb::QueryResponse {
            records: page.items.into_iter().map(pb::StoredRecord::from).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn verify_chain(
        &self,
        _request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        let report = self.audit.verify_chain().await.map_err(wire::to_status)?;
        Ok(Response::new(report.into()))
    }
}

/// The records of a Record request, or every field that could not be read.
fn parse_records(messages: Vec<pb::AuditRecord>) -> Result<Vec<AuditRecord>, ServiceError> {
    if messages.len() > MAX_BATCH {
        // Checked before parsing, so an oversized batch costs nothing more.
        return Err(ServiceError::invalid_field(
            "records",
            "too_many",
            &format!("a batch holds at most {MAX_BATCH} records"),
        ));
    }
    let mut violations = Vec::new();
    let mut records = Vec::with_capacity(messages.len());
    for (index, message) in messages.into_iter().enumerate() {
        let mut fields = Fields {
            prefix: format!("records[{index}]."),
            violations: &mut violations,
        };
        if let Some(record) = fields.record(message) {
            records.push(record);
        }
    }
    if violations.is_empty() {
        Ok(records)
    } else {
        Err(ServiceError::InvalidArgument {
            message: "the audit request was rejected".to_owned(),
            violations,
        })
    }
}

/// A Query request as the domain query (its values are checked further by the store).
fn parse_query(message: pb::QueryRequest) -> Result<AuditQuery, ServiceError> {
    let mut violations = Vec::new();
    let mut fields = Fields {
        prefix: String::new(),
        violations: &mut violations,
    };
    let actor_id = fields.optional_uuid("actor_id", &message.actor_id);
    let from = message.from.as_ref().and_then(|ts| fields.time("from", ts));
    let to = message.to.as_ref().and_then(|ts| fields.time("to", ts));
    if !violations.is_empty() {
        return Err(ServiceError::InvalidArgument {
            message: "the audit query was rejected".to_owned(),
            violations,
        });
    }
    let text = |value: String| (!value.is_empty()).then_some(value);
    Ok(AuditQuery {
        actor_id,
        action: text(message.action),
        target_id: text(message.target_id),
        request_id: text(message.request_id),
        from,
        to,
        page: PageRequest {
            // proto3 cannot tell 0 from unset: 0 asks for the default page size.
            limit: (message.limit != 0).then_some(message.limit),
            cursor: text(message.cursor),
        },
    })
}

/// Reads message fields, collecting a violation for each unreadable one.
struct Fields<'a> {
    prefix: String,
    violations: &'a mut Vec<FieldViolation>,
}

impl Fields<'_> {
    fn reject(&mut self, field: &str, code: &str, message: &str) {
        self.violations
            .push(violation(format!("{}{field}", self.prefix), code, message));
    }

    fn record(&mut self, message: pb::AuditRecord) -> Option<AuditRecord> {
        let before = self.violations.len();
        let id = self.uuid("id", &message.id);
        let actor_id = self.optional_uuid("actor_id", &message.actor_id);
        let occurred_at = match &message.occurred_at {
            Some(ts) => self.time("occurred_at", ts),
            None => {
                self.reject("occurred_at", "required", "the time of the action is required");
                None
            }
        };
        let metadata = match message.metadata_json.as_str() {
            "" => Some(serde_json::Value::Object(serde_json::Map::new())),
            json => serde_json::from_str(json)
                .map_err(|_| self.reject("metadata_json", "invalid_json", "the metadata is not valid JSON"))
                .ok(),
        };
        let text = |value: String| (!value.is_empty()).then_some(value);
        let record = AuditRecord {
            id: id?,
            action: message.action,
            actor_id,
            target_type: text(message.target_type),
            target_id: text(message.target_id),
            request_id: text(message.request_id),
            ip: text(message.ip),
            user_agent: text(message.user_agent),
            occurred_at: occurred_at?,
            metadata: metadata?,
            source: message.source,
            tenant_id: text(message.tenant_id),
        };
        (self.violations.len() == before).then_some(record)
    }

    fn uuid(&mut self, field: &str, text: &str) -> Option<Uuid> {
        if text.is_empty() {
            self.reject(field, "required", "a UUID is required");
            return None;
        }
        Uuid::parse_str(text)
            .map_err(|_| self.reject(field, "invalid_uuid", "not a UUID"))
            .ok()
    }

    fn optional_uuid(&mut self, field: &str, text: &str) -> Option<Uuid> {
        if text.is_empty() {
            return None;
        }
        self.uuid(field, text)
    }

    fn time(&mut self, field: &str, ts: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
        wire::datetime(ts)
            .map_err(|_| self.reject(field, "out_of_range", "the timestamp is out of range"))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> pb::AuditRecord {
        pb::AuditRecord {
            id: Uuid::now_v7().to_string(),
            action: "auth.login.failed".to_owned(),
            occurred_at: Some(wire::timestamp(Utc::now())),
            source: "auth".to_owned(),
            ..pb::AuditRecord::default()
        }
    }

    fn fields(error: ServiceError) -> Vec<String> {
        match error {
            ServiceError::InvalidArgument { violations, .. } => {
                violations.into_iter().map(|v| v.field).collect()
            }
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn empty_strings_are_absent_and_empty_metadata_is_an_empty_object() {
        let records = parse_records(vec![message()]).unwrap();
        assert_eq!(records[0].actor_id, None);
        assert_eq!(records[0].target_id, None);
        assert_eq!(records[0].metadata, serde_json::json!({}));
    }

    #[test]
    fn unreadable_fields_are_named_with_their_record_index() {
        let mut bad = message();
        bad.id = "nope".to_owned();
        bad.actor_id = "also-nope".to_owned();
        bad.metadata_json = "{".to_owned();
        bad.occurred_at = None;
        let found = fields(parse_records(vec![message(), bad]).unwrap_err());
        assert_eq!(
            found,
            [
                "records[1].id",
                "records[1].actor_id",
                "records[1].occurred_at",
                "records[1].metadata_json"
            ]
        );
    }

    #[test]
    fn a_zero_limit_means_the_default_page() {
        let query = parse_query(pb::QueryRequest::default()).unwrap();
        assert_eq!(query.page.limit, None);
        let bad = pb::QueryRequest {
            actor_id: "x".to_owned(),
            ..pb::QueryRequest::default()
        };
        assert_eq!(fields(parse_query(bad).unwrap_err()), ["actor_id"]);
    }
}
