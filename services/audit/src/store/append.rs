//! Appending a batch to the chain: one transaction, serialised with every other appender.
//!
//! Each append reads the head of the chain (last sequence and hash), numbers and hashes the new
//! records after it and inserts them, all in one transaction that holds the log's append lock:
//! `pg_advisory_xact_lock` on PostgreSQL (keyed by the schema, released at commit or rollback),
//! the write lock of a `BEGIN IMMEDIATE` transaction on SQLite. Two appenders therefore never
//! chain onto the same head. Should one still collide (a store shared with a process that does not
//! take the lock), the primary key on `sequence` and the unique `id` reject the second insert, the
//! whole transaction rolls back and the append is retried from a fresh head, so the chain never
//! forks or gaps.
//!
//! Idempotency: records whose id is already stored, and repeats of an id inside the batch, are
//! skipped (acknowledged, not chained again); the count returned is of new records only.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait as _, ConnectionTrait as _, DbBackend, DbErr, EntityTrait as _, IntoActiveModel as _,
    QueryFilter as _, QueryOrder as _, QuerySelect as _, SqlErr, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait as _,
};
use uuid::Uuid;

use super::AuditStore;
use crate::chain::{self, GENESIS_HASH, to_stored_precision};
use crate::entity::{self, Column, Entity};
use crate::record::Prepared;
use crate::{AuditError, metrics};

/// Attempts before an append that keeps colliding gives up (only without the lock can it collide).
const MAX_ATTEMPTS: u32 = 5;
/// Rows per INSERT statement (16 columns each, well inside both backends' parameter limits).
const INSERT_CHUNK: usize = 250;
/// The append lock: advisory lock class "keel" (0x6b65656c), object = hash of the schema, so
/// audit stores in different schemas of one database do not wait for each other.
const POSTGRES_APPEND_LOCK: &str = "SELECT pg_advisory_xact_lock(1801807212, hashtext(current_schema()))";

impl AuditStore {
    /// Appends `batch` (validated) and returns how many records were new.
    pub(crate) async fn append(&self, batch: Vec<Prepared>) -> Result<u32, AuditError> {
        let received = batch.len();
        let batch = first_of_each_id(batch);
        let mut attempt = 0;
        let stored = loop {
            attempt += 1;
            if batch.is_empty() {
                break 0;
            }
            match self.try_append(&batch).await {
                Ok(stored) => break stored,
                Err(error) if is_collision(&error) && attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, %error, "audit append collided with another appender; retrying");
                }
                Err(error) if is_collision(&error) => return Err(AuditError::Contention(attempt)),
                Err(error) => return Err(error.into()),
            }
        };
        metrics::batch_appended(received, stored);
        u32::try_from(stored).map_err(|_| AuditError::Store(format!("{stored} records in one batch")))
    }

    async fn try_append(&self, batch: &[Prepared]) -> Result<usize, DbErr> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        let txn = self.connection().begin_with_options(options).await?;
        if self.backend() == DbBackend::Postgres {
            txn.execute_raw(Statement::from_string(DbBackend::Postgres, POSTGRES_APPEND_LOCK))
                .await?;
        }
        let ids: Vec<Uuid> = batch.iter().map(|record| record.id).collect();
        let existing: HashSet<Uuid> = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Id.is_in(ids))
            .into_tuple::<Uuid>()
            .all(&txn)
            .await?
            .into_iter()
            .collect();
        let head: Option<(i64, String)> = Entity::find()
            .select_only()
            .column(Column::Sequence)
            .column(Column::Hash)
            .order_by_desc(Column::Sequence)
            .into_tuple()
            .one(&txn)
            .await?;
        let (mut sequence, mut previous) = head.unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));
        let recorded_at = to_stored_precision(Utc::now());
        let mut rows = Vec::with_capacity(batch.len());
        for record in batch.iter().filter(|record| !existing.contains(&record.id)) {
            sequence += 1;
            let row = chained(record, sequence, previous, recorded_at);
            previous = row.hash.clone();
            rows.push(row.into_active_model());
        }
        let stored = rows.len();
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(INSERT_CHUNK));
            Entity::insert_many(rows).exec_without_returning(&txn).await?;
            rows = rest;
        }
        txn.commit().await?;
        Ok(stored)
    }
}

/// The stored row of `record` at `sequence`, hashed onto `previous_hash`.
fn chained(
    record: &Prepared,
    sequence: i64,
    previous_hash: String,
    recorded_at: DateTime<Utc>,
) -> entity::Model {
    let mut row = entity::Model {
        sequence,
        id: record.id,
        action: record.action.clone(),
        actor_id: record.actor_id,
        target_type: record.target_type.clone(),
        target_id: record.target_id.clone(),
        request_id: record.request_id.clone(),
        ip: record.ip.clone(),
        user_agent: record.user_agent.clone(),
        occurred_at: record.occurred_at,
        metadata: record.metadata.clone(),
        source: record.source.clone(),
        tenant_id: record.tenant_id.clone(),
        recorded_at,
        previous_hash,
        hash: String::new(),
    };
    row.hash = chain::hash(&row.previous_hash, &row);
    row
}

/// The batch without repeats of an id (the first occurrence wins).
fn first_of_each_id(batch: Vec<Prepared>) -> Vec<Prepared> {
    let mut seen = HashSet::with_capacity(batch.len());
    batch
        .into_iter()
        .filter(|record| seen.insert(record.id))
        .collect()
}

/// A unique violation (on `sequence` or `id`): another appender got there first.
fn is_collision(error: &DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}
