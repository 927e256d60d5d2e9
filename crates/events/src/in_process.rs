//! The event bus of one process: a broadcast channel, for the all-in-one deployment and tests.

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::bus::Pattern;
use crate::event::validate_topic;
use crate::{Event, EventBus, EventError, Subscription};

/// An [`EventBus`] inside one process, over a tokio broadcast channel.
///
/// `publish` never blocks and never fails for lack of subscribers (the event is then simply not
/// seen by anyone). Every subscriber has its own read position in a ring of `capacity` events
/// shared by all topics; one that falls more than `capacity` events behind loses the oldest (see
/// [`Subscription::next`]). Events live in memory only: the outbox makes sure the bus *receives*
/// every committed event, but an event a subscriber had not handled when the process stopped is
/// gone, so subscribers keep no state that must survive one (a cache, not a ledger). Clones share
/// the same bus.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    sender: broadcast::Sender<Event>,
}

impl InProcessBus {
    /// A bus that holds up to `capacity` unread events per subscriber (at least 1).
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, event: &Event) -> Result<(), EventError> {
        validate_topic(&event.topic)?;
        metrics::counter!("keel_events_published_total", "topic" => event.topic.clone()).increment(1);
        // An error only means nobody is subscribed right now: nothing to deliver to.
        let _ = self.sender.send(event.clone());
        Ok(())
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, EventError> {
        let pattern = Pattern::parse(pattern)?;
        Ok(Subscription::broadcast(self.sender.subscribe(), pattern))
    }
}
