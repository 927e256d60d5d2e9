//! [`AuditClient`] over gRPC.

use std::sync::Arc;

use async_trait::async_trait;
use keel_config::GrpcConfig;
use keel_proto::audit::v1 as pb;
use keel_proto::audit::v1::audit_service_client::AuditServiceClient as Client;
use keel_registry::ServiceRegistry;

use super::caller::{Caller, Retry};
use super::{CallPolicy, into_page};
use crate::{AuditClient, AuditQuery, AuditRecord, ChainReport, Page, ServiceError, StoredAuditRecord};

/// The audit service over gRPC, found in the registry as `audit`.
#[derive(Debug)]
pub struct GrpcAuditClient {
    caller: Caller,
}

impl GrpcAuditClient {
    /// A client of the `audit` instances in `registry`.
    pub fn new(registry: Arc<dyn ServiceRegistry>, grpc: &GrpcConfig, policy: CallPolicy) -> Self {
        Self {
            caller: Caller::new("audit", registry, grpc, policy),
        }
    }
}

#[async_trait]
impl AuditClient for GrpcAuditClient {
    async fn record(&self, records: &[AuditRecord]) -> Result<u32, ServiceError> {
        let request = pb::RecordRequest {
            records: records.iter().cloned().map(Into::into).collect(),
        };
        // Retried: the service stores a record id once, so a repeated batch is acknowledged.
        let response = self
            .caller
            .call(
                "Record",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).record(request).await },
            )
            .await?;
        Ok(response.stored)
    }

    async fn query(&self, query: AuditQuery) -> Result<Page<StoredAuditRecord>, ServiceError> {
        let request = pb::QueryRequest::from(query);
        let response = self
            .caller
            .call(
                "Query",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).query(request).await },
            )
            .await?;
        into_page(response.records, response.next_cursor)
    }

    async fn verify_chain(&self) -> Result<ChainReport, ServiceError> {
        let request = pb::VerifyChainRequest {};
        let report = self
            .caller
            .call(
                "VerifyChain",
                Retry::Idempotent,
                request,
                |channel, request| async move { Client::new(channel).verify_chain(request).await },
            )
            .await?;
        report.try_into()
    }
}
