//! One batch of one kind: claim the oldest due rows, deliver them in order, then delete the
//! delivered ones and reschedule a failed one (or a failed audit batch) with backoff.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use keel_clients::{AuditRecord, ServiceError};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{ColumnTrait as _, ConnectionTrait, DbBackend, EntityTrait as _, QueryFilter as _};
use sea_orm::{QueryOrder as _, QuerySelect as _};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::OutboxRelay;
use crate::outbox::entity::{self, Column, Entity, Model};
use crate::{Event, EventError};

/// Longest `last_error` kept in a row, in bytes.
const MAX_ERROR_LEN: usize = 1_000;

pub(super) struct Batch<'a> {
    relay: &'a OutboxRelay,
    kind: &'static str,
}

impl<'a> Batch<'a> {
    pub(super) fn new(relay: &'a OutboxRelay, kind: &'static str) -> Self {
        Self { relay, kind }
    }

    /// Claims, delivers and settles one batch; returns how many rows were delivered.
    pub(super) async fn run<C: ConnectionTrait>(&self, conn: &C) -> Result<u64, EventError> {
        let rows = self.claim(conn).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        if self.kind == entity::KIND_AUDIT {
            self.deliver_audit(conn, rows).await
        } else {
            self.deliver_events(conn, rows).await
        }
    }

    /// The oldest rows of this kind that may be delivered now, in order: the longest run, from the
    /// oldest row of the kind, of rows that are due and not held by another relay. A row not yet
    /// due (backing off) or held elsewhere stops the run, so nothing overtakes it.
    ///
    /// On PostgreSQL the rows are locked `FOR UPDATE SKIP LOCKED` by the caller's transaction; the
    /// second, unlocked read shows which rows exist whoever holds them, so a relay whose locked
    /// rows do not start at the oldest row (another relay holds it) delivers nothing.
    async fn claim<C: ConnectionTrait>(&self, conn: &C) -> Result<Vec<Model>, EventError> {
        let limit = self.relay.settings.batch_size;
        let oldest_first = || {
            Entity::find()
                .filter(Column::Kind.eq(self.kind))
                .order_by_asc(Column::Id)
                .limit(limit)
        };
        let locked = oldest_first()
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(conn)
            .await?;
        if locked.is_empty() {
            return Ok(locked);
        }
        let existing: Vec<Uuid> = if conn.get_database_backend() == DbBackend::Postgres {
            oldest_first()
                .select_only()
                .column(Column::Id)
                .into_tuple()
                .all(conn)
                .await?
        } else {
            // One relay per SQLite store: every row it reads is its own.
            locked.iter().map(|row| row.id).collect()
        };
        let now = Utc::now();
        Ok(locked
            .into_iter()
            .zip(existing)
            .take_while(|(row, id)| row.id == *id && row.next_attempt_at <= now)
            .map(|(row, _)| row)
            .collect())
    }

    /// Publishes the events one by one, stopping at the first failure.
    async fn deliver_events<C: ConnectionTrait>(
        &self,
        conn: &C,
        rows: Vec<Model>,
    ) -> Result<u64, EventError> {
        let mut delivered = Vec::with_capacity(rows.len());
        let mut failed = None;
        for row in rows {
            let published = match decode::<Event>(&row) {
                Ok(event) => self.relay.events.publish(&event).await,
                Err(error) => Err(error),
            };
            match published {
                Ok(()) => delivered.push(row.id),
                Err(error) => {
                    failed = Some((row, error));
                    break;
                }
            }
        }
        let count = self.remove(conn, &delivered).await?;
        match failed {
            // A row that does not decode never will: it must not hold back every row after it.
            Some((row, error @ EventError::CorruptRow { .. })) => {
                self.dead_letter(conn, &[row], &error).await?;
            }
            Some((row, error)) => self.reschedule(conn, &[row], &error).await?,
            None => {}
        }
        Ok(count)
    }

    /// Sends the records as one `record` call. A row that cannot be decoded ends the batch before
    /// it, and is dead-lettered on its own when it comes first. A batch the audit service refuses
    /// as invalid is sent again record by record (see [`Batch::isolate_refused`]).
    async fn deliver_audit<C: ConnectionTrait>(&self, conn: &C, rows: Vec<Model>) -> Result<u64, EventError> {
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            match decode::<AuditRecord>(row) {
                Ok(record) => records.push(record),
                Err(error) if records.is_empty() => {
                    self.dead_letter(conn, std::slice::from_ref(row), &error).await?;
                    return Ok(0);
                }
                Err(_) => break,
            }
        }
        let taken = &rows[..records.len()];
        match self.relay.audit.record(&records).await {
            Ok(_) => {
                self.remove(conn, &taken.iter().map(|row| row.id).collect::<Vec<_>>())
                    .await
            }
            Err(error) if is_refusal(&error) && taken.len() == 1 => {
                self.dead_letter(conn, taken, &EventError::Audit(error)).await?;
                Ok(0)
            }
            Err(error) if is_refusal(&error) => self.isolate_refused(conn, taken, &records).await,
            Err(error) => {
                self.reschedule(conn, taken, &EventError::Audit(error)).await?;
                Ok(0)
            }
        }
    }

    /// After the audit service refused a whole batch as invalid: sends each record alone, in
    /// order, so the valid ones are delivered and only a record refused on its own is
    /// dead-lettered. A failure that is not a refusal (the service went away) stops there and
    /// reschedules that record and the ones after it, as any failed delivery.
    async fn isolate_refused<C: ConnectionTrait>(
        &self,
        conn: &C,
        rows: &[Model],
        records: &[AuditRecord],
    ) -> Result<u64, EventError> {
        let mut delivered = 0;
        for (index, (row, record)) in rows.iter().zip(records).enumerate() {
            match self.relay.audit.record(std::slice::from_ref(record)).await {
                Ok(_) => delivered += self.remove(conn, &[row.id]).await?,
                Err(error) if is_refusal(&error) => {
                    self.dead_letter(conn, std::slice::from_ref(row), &EventError::Audit(error))
                        .await?;
                }
                Err(error) => {
                    let rest = rows.get(index..).unwrap_or_default();
                    self.reschedule(conn, rest, &EventError::Audit(error)).await?;
                    break;
                }
            }
        }
        Ok(delivered)
    }

    /// Sets aside rows that can never be delivered (a payload that does not decode, a record the
    /// audit service refuses as invalid): their kind becomes `<kind>.dead`, which no relay claims,
    /// so they stop holding back the rows after them, and they stay in the table with the error
    /// for an operator. Logged at error level and counted in
    /// `keel_outbox_dead_lettered_total{service,kind}`.
    async fn dead_letter<C: ConnectionTrait>(
        &self,
        conn: &C,
        rows: &[Model],
        error: &EventError,
    ) -> Result<(), EventError> {
        use sea_orm::ExprTrait as _;
        tracing::error!(
            service = %self.relay.service,
            kind = self.kind,
            rows = rows.len(),
            ids = ?rows.iter().map(|row| row.id).collect::<Vec<_>>(),
            %error,
            "outbox rows can never be delivered; set aside as dead letters"
        );
        Entity::update_many()
            .col_expr(Column::Kind, Expr::value(entity::dead_kind(self.kind)))
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .col_expr(Column::LastError, Expr::value(truncate(&error.to_string())))
            .filter(Column::Id.is_in(rows.iter().map(|row| row.id)))
            .exec(conn)
            .await?;
        metrics::counter!("keel_outbox_dead_lettered_total", "service" => self.relay.service.to_string(), "kind" => self.kind)
            .increment(rows.len() as u64);
        Ok(())
    }

    /// Deletes delivered rows.
    async fn remove<C: ConnectionTrait>(&self, conn: &C, ids: &[Uuid]) -> Result<u64, EventError> {
        if ids.is_empty() {
            return Ok(0);
        }
        Entity::delete_many()
            .filter(Column::Id.is_in(ids.iter().copied()))
            .exec(conn)
            .await?;
        let count = ids.len() as u64;
        metrics::counter!("keel_outbox_delivered_total", "service" => self.relay.service.to_string(), "kind" => self.kind)
            .increment(count);
        Ok(count)
    }

    /// Keeps failed rows with one more attempt, the next attempt after the backoff, and the error.
    async fn reschedule<C: ConnectionTrait>(
        &self,
        conn: &C,
        rows: &[Model],
        error: &EventError,
    ) -> Result<(), EventError> {
        // Scoped here: its blanket `min`/`max` would shadow `Ord`'s elsewhere in this file.
        use sea_orm::ExprTrait as _;
        let attempts = rows
            .iter()
            .map(|row| row.attempts)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let delay = backoff(&self.relay.settings, attempts);
        let next = Utc::now() + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
        tracing::warn!(
            service = %self.relay.service,
            kind = self.kind,
            rows = rows.len(),
            attempts,
            retry_in_ms = delay.as_millis(),
            %error,
            "outbox delivery failed; will retry"
        );
        Entity::update_many()
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .col_expr(Column::NextAttemptAt, Expr::value(next))
            .col_expr(Column::LastError, Expr::value(truncate(&error.to_string())))
            .filter(Column::Id.is_in(rows.iter().map(|row| row.id)))
            .exec(conn)
            .await?;
        metrics::counter!("keel_outbox_delivery_failures_total", "service" => self.relay.service.to_string(), "kind" => self.kind)
            .increment(rows.len() as u64);
        Ok(())
    }
}

/// Whether the audit service refused the records themselves (they would be refused again, however
/// often they were sent), as opposed to failing to take them.
fn is_refusal(error: &ServiceError) -> bool {
    matches!(error, ServiceError::InvalidArgument { .. })
}

/// `base · 2^(attempts − 1)`, at most `max`.
fn backoff(settings: &super::Settings, attempts: i32) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(20);
    settings
        .backoff_base
        .saturating_mul(1_u32 << exponent)
        .min(settings.backoff_max)
}

fn decode<T: DeserializeOwned>(row: &Model) -> Result<T, EventError> {
    serde_json::from_str(&row.payload).map_err(|error| EventError::CorruptRow {
        id: row.id,
        reason: error.to_string(),
    })
}

/// The first [`MAX_ERROR_LEN`] bytes of `text`, cut on a character boundary.
fn truncate(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR_LEN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::Settings;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let settings = Settings {
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            ..Settings::default()
        };
        let delays: Vec<_> = (1..=9).map(|n| backoff(&settings, n).as_millis()).collect();
        assert_eq!(
            delays,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(backoff(&settings, i32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let text = "é".repeat(MAX_ERROR_LEN);
        let cut = truncate(&text);
        assert!(cut.len() <= MAX_ERROR_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate("short"), "short");
    }
}
