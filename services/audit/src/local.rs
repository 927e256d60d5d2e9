//! The service's core operations, and the in-process [`AuditClient`] over them.
//!
//! Why this module exists: gRPC, REST and in-process callers (the all-in-one process, tests) must
//! go through the same validation and the same store calls. [`Audit`] is that one path; the
//! gRPC server, the REST handler and [`LocalAuditClient`] are thin faces over it.

use async_trait::async_trait;
use keel_clients::{
    AuditClient, AuditQuery, AuditRecord, ChainReport, Page, ServiceError, StoredAuditRecord,
};

use crate::record::prepare_batch;
use crate::store::{AuditStore, ValidQuery};

/// Validation plus the store: what every face of the service calls.
#[derive(Debug, Clone)]
pub(crate) struct Audit {
    store: AuditStore,
}

impl Audit {
    pub(crate) fn new(store: AuditStore) -> Self {
        Self { store }
    }

    /// Validates and appends `records`; the count of new ones.
    pub(crate) async fn record(&self, records: &[AuditRecord]) -> Result<u32, ServiceError> {
        let prepared = prepare_batch(records)?;
        Ok(self.store.append(prepared).await?)
    }

    /// Validates `query` and reads one page.
    pub(crate) async fn query(&self, query: AuditQuery) -> Result<Page<StoredAuditRecord>, ServiceError> {
        let query = ValidQuery::parse(query)?;
        Ok(self.store.query(&query).await?)
    }

    /// Verifies the whole chain.
    pub(crate) async fn verify_chain(&self) -> Result<ChainReport, ServiceError> {
        Ok(self.store.verify_chain().await?)
    }
}

/// The audit service called in process, without a network hop: for the all-in-one process and
/// for tests. Behaves exactly like the gRPC client against a remote audit service.
#[derive(Debug, Clone)]
pub struct LocalAuditClient {
    audit: Audit,
}

impl LocalAuditClient {
    pub(crate) fn new(audit: Audit) -> Self {
        Self { audit }
    }
}

#[async_trait]
impl AuditClient for LocalAuditClient {
    async fn record(&self, records: &[AuditRecord]) -> Result<u32, ServiceError> {
        self.audit.record(records).await
    }

    async fn query(&self, query: AuditQuery) -> Result<Page<StoredAuditRecord>, ServiceError> {
        self.audit.query(query).await
    }

    async fn verify_chain(&self) -> Result<ChainReport, ServiceError> {
        self.audit.verify_chain().await
    }
}
