//! The event bus port: what publishers and subscribers see, whatever carries the events.

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc};

use crate::event::validate_topic;
use crate::{Event, EventError};

/// Publishes events and hands out subscriptions by topic pattern.
///
/// Implementations: [`crate::InProcessBus`] (one process); brokers (NATS, Kafka) plug in behind the
/// same trait. Services do not publish directly after a database change: they write the event
/// through [`crate::Outbox`] in their transaction and let [`crate::OutboxRelay`] publish it.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Hands `event` to the bus. Does not wait for subscribers to process it.
    async fn publish(&self, event: &Event) -> Result<(), EventError>;
    /// Receives, from now on, the events whose topic matches `pattern`: an exact topic
    /// (`platform.user.created`) or a prefix ending in `.*` (`platform.role.*` matches
    /// `platform.role.assigned` and any deeper topic under `platform.role.`).
    async fn subscribe(&self, pattern: &str) -> Result<Subscription, EventError>;
}

/// A stream of the events matching one pattern. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// A receiver of [`crate::InProcessBus`]'s broadcast channel, filtered here.
    Broadcast {
        receiver: broadcast::Receiver<Event>,
        pattern: Pattern,
    },
    /// Events already filtered by another bus implementation.
    Channel(mpsc::Receiver<Event>),
}

impl Subscription {
    /// A subscription fed by `receiver`, for [`EventBus`] implementations outside this crate
    /// (broker adapters): they send the matching events into the channel's sender and close it
    /// when the subscription ends.
    pub fn from_channel(receiver: mpsc::Receiver<Event>) -> Self {
        Self {
            source: Source::Channel(receiver),
        }
    }

    pub(crate) fn broadcast(receiver: broadcast::Receiver<Event>, pattern: Pattern) -> Self {
        Self {
            source: Source::Broadcast { receiver, pattern },
        }
    }

    /// The next matching event; `None` once the bus is gone.
    ///
    /// A subscriber that falls too far behind loses the oldest events it had not read yet (the
    /// bus never waits for it): this logs a warning and counts them in `keel_events_lagged_total`,
    /// then goes on with the oldest event still held.
    pub async fn next(&mut self) -> Option<Event> {
        match &mut self.source {
            Source::Channel(receiver) => receiver.recv().await,
            Source::Broadcast { receiver, pattern } => loop {
                match receiver.recv().await {
                    Ok(event) if pattern.matches(&event.topic) => return Some(event),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            pattern = pattern.as_str(),
                            missed,
                            "event subscriber fell behind; the oldest events were dropped"
                        );
                        metrics::counter!("keel_events_lagged_total", "pattern" => pattern.as_str().to_owned())
                            .increment(missed);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
        }
    }
}

/// A parsed subscription pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// The pattern as given, e.g. `platform.role.*`.
    text: String,
    /// Whether it ends in `.*` (matches every topic below it) rather than naming one topic.
    prefix: bool,
}

impl Pattern {
    /// Parses `a.b.c` (exact) or `a.b.*` (prefix).
    pub(crate) fn parse(pattern: &str) -> Result<Self, EventError> {
        let invalid = |reason| EventError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        let (body, prefix) = match pattern.strip_suffix(".*") {
            Some(body) => (body, true),
            None => (pattern, false),
        };
        if body.contains('*') {
            return Err(invalid("`*` may only stand as the last segment, after a `.`"));
        }
        validate_topic(body).map_err(|_| invalid("the part before `.*` must be a well-formed topic"))?;
        Ok(Self {
            text: pattern.to_owned(),
            prefix,
        })
    }

    /// Whether `topic` matches.
    pub(crate) fn matches(&self, topic: &str) -> bool {
        if self.prefix {
            // `a.b.*` → every topic longer than `a.b.` that starts with it.
            let stem = &self.text[..self.text.len() - 1];
            topic.len() > stem.len() && topic.starts_with(stem)
        } else {
            topic == self.text
        }
    }

    fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, topic: &str) -> bool {
        Pattern::parse(pattern).map(|p| p.matches(topic)).unwrap_or(false)
    }

    #[test]
    fn an_exact_pattern_matches_only_its_topic() {
        assert!(matches("platform.user.created", "platform.user.created"));
        assert!(!matches("platform.user.created", "platform.user.created.v2"));
        assert!(!matches("platform.user.created", "platform.user.updated"));
    }

    #[test]
    fn a_prefix_pattern_matches_every_topic_below_it() {
        assert!(matches("platform.role.*", "platform.role.assigned"));
        assert!(matches("platform.role.*", "platform.role.x.y"));
        assert!(!matches("platform.role.*", "platform.role"));
        assert!(!matches("platform.role.*", "platform.roles.assigned"));
        assert!(!matches("platform.role.*", "platform.user.created"));
    }

    #[test]
    fn malformed_patterns_are_rejected() {
        for pattern in ["", "*", ".*", "a.*.b", "a*", "a.b*", "A.b", "a..*"] {
            assert!(
                matches!(Pattern::parse(pattern), Err(EventError::InvalidPattern { .. })),
                "{pattern}"
            );
        }
    }
}
