//! The audit log's storage: appending to the hash chain, reading it back, verifying it.
//!
//! Why this module exists: it is the only code that touches the `audit_log` table, and it has
//! exactly three operations: append (in [`append`]), query (in [`query`]) and verify (in
//! [`verify`]). There is no update and no delete.

mod append;
mod query;
mod verify;

use keel_clients::{AuditRecord, StoredAuditRecord};
use keel_db::{DatabaseCheck, ServiceDatabase};
use sea_orm::{DatabaseConnection, DbBackend};

use crate::{AuditError, entity};

pub(crate) use query::ValidQuery;

/// Handle on one audit store. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub(crate) struct AuditStore {
    db: ServiceDatabase,
    verify_page_size: u64,
}

impl std::fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditStore")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl AuditStore {
    /// A store over the audit database (migrated, or only read from).
    pub(crate) fn new(db: ServiceDatabase, verify_page_size: u64) -> Self {
        Self { db, verify_page_size }
    }

    /// The pooled connection.
    pub(crate) fn connection(&self) -> &DatabaseConnection {
        self.db.connection()
    }

    /// PostgreSQL or SQLite.
    pub(crate) fn backend(&self) -> DbBackend {
        self.db.backend()
    }

    /// The `/ready` check of the store.
    pub(crate) fn readiness_check(&self) -> DatabaseCheck {
        self.db.readiness_check()
    }

    /// Closes the pool.
    pub(crate) async fn close(&self) {
        self.db.close().await;
    }
}

/// A stored row as the clients' domain type.
fn to_domain(row: entity::Model) -> Result<StoredAuditRecord, AuditError> {
    let metadata = serde_json::from_str(&row.metadata)
        .map_err(|e| AuditError::Store(format!("record {} holds unreadable metadata: {e}", row.sequence)))?;
    let sequence = u64::try_from(row.sequence)
        .map_err(|_| AuditError::Store(format!("record with negative sequence {}", row.sequence)))?;
    Ok(StoredAuditRecord {
        record: AuditRecord {
            id: row.id,
            action: row.action,
            actor_id: row.actor_id,
            target_type: row.target_type,
            target_id: row.target_id,
            request_id: row.request_id,
            ip: row.ip,
            user_agent: row.user_agent,
            occurred_at: row.occurred_at,
            metadata,
            source: row.source,
            tenant_id: row.tenant_id,
        },
        sequence,
        recorded_at: row.recorded_at,
        hash: row.hash,
        previous_hash: row.previous_hash,
    })
}
