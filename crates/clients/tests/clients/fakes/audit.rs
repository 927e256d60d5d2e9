//! An in-memory audit log: records stored once per id, in sequence, newest first on query.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use keel_clients::wire::{datetime, to_status};
use keel_clients::{AuditRecord, ChainReport, ServiceError, StoredAuditRecord};
use keel_proto::audit::v1 as pb;
use keel_proto::audit::v1::audit_service_server::{AuditService, AuditServiceServer};
use tonic::{Request, Response, Status};

use crate::support::{Knobs, lock};

/// The fake service.
#[derive(Clone, Default)]
pub(crate) struct FakeAudit {
    /// Call counts and failure injection.
    pub(crate) knobs: Arc<Knobs>,
    /// The log, oldest first.
    pub(crate) log: Arc<Mutex<Vec<StoredAuditRecord>>>,
}

impl FakeAudit {
    /// The tonic service to serve.
    pub(crate) fn server(&self) -> AuditServiceServer<Self> {
        AuditServiceServer::new(self.clone())
    }
}

fn matches(query: &pb::QueryRequest, stored: &StoredAuditRecord) -> Result<bool, Status> {
    let record = &stored.record;
    let actor = record.actor_id.map(|id| id.to_string()).unwrap_or_default();
    let after_from = match &query.from {
        Some(from) => record.occurred_at >= datetime(from).map_err(to_status)?,
        None => true,
    };
    Ok(after_from
        && (query.action.is_empty() || query.action == record.action)
        && (query.actor_id.is_empty() || query.actor_id == actor))
}

#[tonic::async_trait]
impl AuditService for FakeAudit {
    async fn record(
        &self,
        request: Request<pb::RecordRequest>,
    ) -> Result<Response<pb::RecordResponse>, Status> {
        self.knobs.enter("Record").await?;
        let mut log = lock(&self.log);
        let mut stored = 0;
        for record in request.into_inner().records {
            let record = AuditRecord::try_from(record).map_err(|e| {
                to_status(ServiceError::invalid_field(
                    "records",
                    "malformed",
                    &e.to_string(),
                ))
            })?;
            if log.iter().any(|s| s.record.id == record.id) {
                continue;
            }
            let previous_hash = log.last().map(|s| s.hash.clone()).unwrap_or_default();
            let sequence = log.len() as u64 + 1;
            log.push(StoredAuditRecord {
                record,
                sequence,
                recorded_at: Utc::now(),
                hash: format!("hash-{sequence}"),
                previous_hash,
            });
            stored += 1;
        }
        Ok(Response::new(pb::RecordResponse { stored }))
    }

    async fn query(&self, request: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        self.knobs.enter("Query").await?;
        let query = request.into_inner();
        let log = lock(&self.log);
        let mut found = Vec::new();
        for stored in log.iter().rev() {
            if matches(&query, stored)? {
                found.push(stored.clone());
            }
        }
        let start: usize = query.cursor.parse().unwrap_or(0);
        let limit = usize::try_from(query.limit).unwrap_or(20).clamp(1, 100);
        let records: Vec<pb::StoredRecord> = found
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .map(Into::into)
            .collect();
        let next = start + records.len();
        let next_cursor = if next < found.len() {
            next.to_string()
        } else {
            String::new()
        };
        Ok(Response::new(pb::QueryResponse { records, next_cursor }))
    }

    async fn verify_chain(
        &self,
        _request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        self.knobs.enter("VerifyChain").await?;
        let log = lock(&self.log);
        let report = ChainReport {
            intact: true,
            records_checked: log.len() as u64,
            first_broken_sequence: None,
            detail: "every record links to its predecessor".into(),
        };
        Ok(Response::new(report.into()))
    }
}
