//! The outbox table as a sea-orm entity (crate-private: only the outbox and its relay touch it).

use sea_orm::entity::prelude::*;

/// Name of the table in every service's store.
pub(crate) const TABLE: &str = "keel_outbox";

/// `kind` of a row holding an [`crate::Event`].
pub(crate) const KIND_EVENT: &str = "event";
/// `kind` of a row holding a [`keel_clients::AuditRecord`].
pub(crate) const KIND_AUDIT: &str = "audit";

/// The `kind` a row of `kind` takes when it can never be delivered (dead-lettered): no relay claims
/// it again, so it no longer holds back the rows after it, and it stays in the table, with
/// `last_error`, for an operator.
pub(crate) fn dead_kind(kind: &str) -> String {
    format!("{kind}.dead")
}

/// One message waiting for delivery.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "keel_outbox")]
pub(crate) struct Model {
    /// UUID v7 taken at enqueue: the delivery order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    /// [`KIND_EVENT`] or [`KIND_AUDIT`].
    pub(crate) kind: String,
    /// The event's topic or the audit record's action, for operators reading the table.
    pub(crate) topic: String,
    /// The whole event or audit record as JSON.
    #[sea_orm(column_type = "Text")]
    pub(crate) payload: String,
    /// When it was enqueued.
    pub(crate) created_at: DateTimeUtc,
    /// Failed delivery attempts so far.
    pub(crate) attempts: i32,
    /// Not to be tried before this instant.
    pub(crate) next_attempt_at: DateTimeUtc,
    /// Why the last attempt failed.
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) last_error: Option<String>,
}

/// No relations: the outbox stands alone.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
