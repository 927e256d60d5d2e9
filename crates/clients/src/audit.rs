//! What callers may ask of the audit service.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Page, PageRequest, ServiceError};

/// One audit record as its producer writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Chosen by the producer (UUID v7); the idempotency key of delivery.
    pub id: Uuid,
    /// `<service or module>.<resource>.<past-tense verb>`, e.g. `auth.login.succeeded`.
    pub action: String,
    /// The user acting; `None` (JSON `null`) when anonymous.
    pub actor_id: Option<Uuid>,
    /// Kind of the thing acted on, e.g. `user`, `role`.
    pub target_type: Option<String>,
    /// Its id.
    pub target_id: Option<String>,
    /// The request id of the HTTP request that caused it.
    pub request_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Action-specific detail (a JSON object; never secrets).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The producing service or module.
    pub source: String,
    /// Reserved for multi-tenancy.
    pub tenant_id: Option<String>,
}

/// A stored record with its place in the hash chain.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredAuditRecord {
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// Position in the log, from 1.
    pub sequence: u64,
    /// When the audit service stored it.
    pub recorded_at: DateTime<Utc>,
    /// Hex SHA-256 chaining it to its predecessor.
    pub hash: String,
    /// The predecessor's hash.
    pub previous_hash: String,
}

/// Filters of an audit query; all optional, combined with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Records by this actor.
    pub actor_id: Option<Uuid>,
    /// Records of this action.
    pub action: Option<String>,
    /// Records about this target.
    pub target_id: Option<String>,
    /// Records of this request.
    pub request_id: Option<String>,
    /// Occurred at or after.
    pub from: Option<DateTime<Utc>>,
    /// Occurred before.
    pub to: Option<DateTime<Utc>>,
    /// Page.
    pub page: PageRequest,
}

/// Result of verifying the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// No break found.
    pub intact: bool,
    /// Records checked.
    pub records_checked: u64,
    /// First record whose hash does not match, when broken.
    pub first_broken_sequence: Option<u64>,
    /// What was found.
    pub detail: String,
}

/// The audit service.
#[async_trait]
pub trait AuditClient: Send + Sync {
    /// Appends records; idempotent by record id. Returns how many were new.
    async fn record(&self, records: &[AuditRecord]) -> Result<u32, ServiceError>;
    /// Reads records, newest first.
    async fn query(&self, query: AuditQuery) -> Result<Page<StoredAuditRecord>, ServiceError>;
    /// Recomputes the chain.
    async fn verify_chain(&self) -> Result<ChainReport, ServiceError>;
}
