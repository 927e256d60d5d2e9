//! The event envelope every bus carries, and the rule topics follow.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::EventError;

/// Longest topic accepted, in bytes.
const MAX_TOPIC_LEN: usize = 200;

/// Something that happened in a service, told to whoever subscribed to its topic.
///
/// The envelope is the same on every bus (in-process, NATS, Kafka); `payload` is the
/// topic-specific part, documented beside the constants of [`crate::topics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUID v7): consumers de-duplicate on it, since delivery is at least once.
    pub id: Uuid,
    /// What happened, e.g. `platform.user.created`.
    pub topic: String,
    /// The service or module that produced it, e.g. `identity`.
    pub source: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The request that caused it, when there was one.
    pub request_id: Option<String>,
    /// Topic-specific data (a JSON object).
    pub payload: serde_json::Value,
}

impl Event {
    /// A new event on `topic` from `source`, now, with a fresh id and the current request's id
    /// (from [`keel_telemetry::context::current`]). Fails when the topic is malformed (see
    /// [`crate::topics`]) or the payload cannot be serialized to JSON.
    pub fn new(topic: &str, source: &str, payload: impl Serialize) -> Result<Event, EventError> {
        validate_topic(topic)?;
        let payload = serde_json::to_value(payload).map_err(EventError::Payload)?;
        Ok(Event {
            id: Uuid::now_v7(),
            topic: topic.to_owned(),
            source: source.to_owned(),
            occurred_at: Utc::now(),
            request_id: keel_telemetry::context::current().map(|c| c.request_id().to_owned()),
            payload,
        })
    }
}

/// Checks a topic: dot-separated, non-empty segments of lowercase ASCII letters, digits, `_`
/// and `-`, at most 200 bytes.
pub(crate) fn validate_topic(topic: &str) -> Result<(), EventError> {
    let invalid = |reason| EventError::InvalidTopic {
        topic: topic.to_owned(),
        reason,
    };
    if topic.is_empty() {
        return Err(invalid("it is empty"));
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Err(invalid("it is longer than 200 bytes"));
    }
    if topic.split('.').any(str::is_empty) {
        return Err(invalid("it has an empty segment"));
    }
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-');
    if !topic.bytes().all(allowed) {
        return Err(invalid(
            "only lowercase letters, digits, `_`, `-` and `.` are allowed",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_topics_are_accepted() {
        for topic in ["platform.user.created", "blog.post.created", "a", "x-y.z_1"] {
            assert!(validate_topic(topic).is_ok(), "{topic}");
        }
    }

    #[test]
    fn malformed_topics_are_rejected() {
        for topic in [
            "",
            "a..b",
            ".a",
            "a.",
            "Platform.user",
            "a.*",
            "a b",
            &"a".repeat(201),
        ] {
            assert!(
                matches!(validate_topic(topic), Err(EventError::InvalidTopic { .. })),
                "{topic}"
            );
        }
    }

    #[tokio::test]
    async fn a_new_event_carries_the_current_request_id() -> Result<(), EventError> {
        let outside = Event::new("platform.user.created", "identity", serde_json::json!({}))?;
        assert_eq!(outside.request_id, None);
        let context = keel_telemetry::context::RequestContext::new("req-7");
        let inside = keel_telemetry::context::scope(context, async {
            Event::new(
                "platform.user.created",
                "identity",
                serde_json::json!({"user_id": "u"}),
            )
        })
        .await?;
        assert_eq!(inside.request_id.as_deref(), Some("req-7"));
        assert_eq!(inside.payload, serde_json::json!({"user_id": "u"}));
        assert_eq!(inside.id.get_version_num(), 7);
        Ok(())
    }
}
