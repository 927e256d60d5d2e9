//! The `audit_log` table as a sea-orm entity.
//!
//! Why this module exists: every read and the one write path (the appender) go through this
//! entity, so column names and types are spelled once. There is deliberately no code here or
//! anywhere in the crate that updates or deletes a row.

use sea_orm::entity::prelude::*;

/// One stored audit record: the producer's fields plus its place in the hash chain.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub(crate) struct Model {
    /// Position in the log, from 1, strictly increasing, assigned by the appender.
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) sequence: i64,
    /// The producer's idempotency key.
    #[sea_orm(unique)]
    pub(crate) id: Uuid,
    pub(crate) action: String,
    pub(crate) actor_id: Option<Uuid>,
    pub(crate) target_type: Option<String>,
    pub(crate) target_id: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) occurred_at: DateTimeUtc,
    /// The metadata object as JSON text, exactly the bytes that were hashed.
    pub(crate) metadata: String,
    pub(crate) source: String,
    pub(crate) tenant_id: Option<String>,
    pub(crate) recorded_at: DateTimeUtc,
    pub(crate) previous_hash: String,
    pub(crate) hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
