//! The one error type of keel-events, and its single mapping to [`ServiceError`].

use keel_clients::ServiceError;
use uuid::Uuid;

/// Why publishing, subscribing, enqueueing or relaying failed.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// A topic is not dot-separated segments of lowercase letters, digits, `_` and `-`.
    #[error("invalid event topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The rejected topic.
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A subscription pattern is neither a topic nor a prefix ending in `.*`.
    #[error("invalid subscription pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The rejected pattern.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A payload could not be turned into JSON.
    #[error("event payload is not serializable: {0}")]
    Payload(#[source] serde_json::Error),
    /// Reading or writing the outbox table failed.
    #[error("outbox storage failed: {0}")]
    Database(#[source] sea_orm::DbErr),
    /// An outbox row could not be decoded (its payload was altered outside this crate).
    #[error("outbox row {id} is unreadable: {reason}")]
    CorruptRow {
        /// The row's id.
        id: Uuid,
        /// What could not be decoded.
        reason: String,
    },
    /// The event bus refused or could not take an event (a remote broker down, a closed bus).
    #[error("event bus unavailable: {0}")]
    BusUnavailable(String),
    /// The audit service did not accept a batch of records.
    #[error("audit delivery failed: {0}")]
    Audit(#[source] ServiceError),
}

impl From<sea_orm::DbErr> for EventError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Database(error)
    }
}

impl From<EventError> for ServiceError {
    /// Maps to the caller's vocabulary. Storage and decoding details are left out of the message
    /// (it may reach a client); callers log the [`EventError`] itself.
    fn from(error: EventError) -> Self {
        match error {
            EventError::InvalidTopic { .. } | EventError::InvalidPattern { .. } | EventError::Payload(_) => {
                Self::Internal("an event could not be built".to_owned())
            }
            EventError::Database(_) | EventError::CorruptRow { .. } => {
                Self::Internal("the event outbox could not be written".to_owned())
            }
            EventError::BusUnavailable(_) => Self::Unavailable("event bus unavailable".to_owned()),
            EventError::Audit(inner) => inner,
        }
    }
}
