//! Reading the log: filtered, newest first, in cursor pages.

use chrono::{DateTime, Utc};
use keel_clients::{AuditQuery, FieldViolation, Page, StoredAuditRecord};
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _, QueryOrder as _, QuerySelect as _};
use uuid::Uuid;

use super::{AuditStore, to_domain};
use crate::entity::{Column, Entity};
use crate::error::violation;
use crate::{AuditError, cursor};

/// Page size when the caller names none.
const DEFAULT_LIMIT: u32 = 20;
/// Largest page.
const MAX_LIMIT: u32 = 100;

/// A checked query: every filter usable as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValidQuery {
    actor_id: Option<Uuid>,
    action: Option<String>,
    target_id: Option<String>,
    request_id: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: u32,
    /// Records strictly below this sequence (from the cursor).
    before: Option<i64>,
}

impl ValidQuery {
    /// Checks `query`; violations name the fields `limit`, `cursor` and `to`.
    pub(crate) fn parse(query: AuditQuery) -> Result<Self, AuditError> {
        let mut violations: Vec<FieldViolation> = Vec::new();
        let limit = match query.page.limit {
            None => DEFAULT_LIMIT,
            Some(limit @ 1..=MAX_LIMIT) => limit,
            Some(_) => {
                violations.push(violation(
                    "limit",
                    "out_of_range",
                    format!("the limit must be between 1 and {MAX_LIMIT}"),
                ));
                DEFAULT_LIMIT
            }
        };
        let before = match query.page.cursor.as_deref() {
            None => None,
            Some(text) => match cursor::decode(text) {
                Ok(sequence) => Some(sequence),
                Err(AuditError::Invalid(found)) => {
                    violations.extend(found);
                    None
                }
                Err(other) => return Err(other),
            },
        };
        if let (Some(from), Some(to)) = (query.from, query.to)
            && from > to
        {
            violations.push(violation("to", "invalid_range", "`to` must not be before `from`"));
        }
        if !violations.is_empty() {
            return Err(AuditError::Invalid(violations));
        }
        let non_empty = |value: Option<String>| value.filter(|v| !v.is_empty());
        Ok(Self {
            actor_id: query.actor_id,
            action: non_empty(query.action),
            target_id: non_empty(query.target_id),
            request_id: non_empty(query.request_id),
            from: query.from,
            to: query.to,
            limit,
            before,
        })
    }
}

impl AuditStore {
    /// One page of records matching `query`, newest (highest sequence) first.
    pub(crate) async fn query(&self, query: &ValidQuery) -> Result<Page<StoredAuditRecord>, AuditError> {
        let mut select = Entity::find();
        if let Some(actor_id) = query.actor_id {
            select = select.filter(Column::ActorId.eq(actor_id));
        }
        if let Some(action) = &query.action {
            select = select.filter(Column::Action.eq(action.as_str()));
        }
        if let Some(target_id) = &query.target_id {
            select = select.filter(Column::TargetId.eq(target_id.as_str()));
        }
        if let Some(request_id) = &query.request_id {
            select = select.filter(Column::RequestId.eq(request_id.as_str()));
        }
        if let Some(from) = query.from {
            select = select.filter(Column::OccurredAt.gte(from));
        }
        if let Some(to) = query.to {
            select = select.filter(Column::OccurredAt.lt(to));
        }
        if let Some(before) = query.before {
            select = select.filter(Column::Sequence.lt(before));
        }
        // One more than the page, to know whether another page follows.
        let mut rows = select
            .order_by_desc(Column::Sequence)
            .limit(u64::from(query.limit) + 1)
            .all(self.connection())
            .await?;
        let more = rows.len() > query.limit as usize;
        rows.truncate(query.limit as usize);
        let next_cursor = more
            .then(|| rows.last().map(|row| cursor::encode(row.sequence)))
            .flatten();
        let items = rows.into_iter().map(to_domain).collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }
}
