//! The in-process bus: who receives what, and what a slow subscriber loses.

use std::time::Duration;

use keel_events::{EventBus as _, EventError, InProcessBus, Subscription, topics};

use crate::support::{event, next_event};

#[tokio::test]
async fn subscribers_receive_exactly_the_topics_their_pattern_matches() -> anyhow::Result<()> {
    let bus = InProcessBus::new(64);
    let mut exact = bus.subscribe(topics::ROLE_ASSIGNED).await?;
    let mut roles = bus.subscribe(topics::ALL_ROLE).await?;
    let mut users = bus.subscribe("platform.user.*").await?;

    for topic in [
        topics::USER_CREATED,
        topics::ROLE_ASSIGNED,
        topics::ROLE_REVOKED,
        "platform.roles.x",
    ] {
        bus.publish(&event(topic, 0)?).await?;
    }
    // A marker every subscriber matches ends each stream, so "nothing else arrived" is observable.
    bus.publish(&event(topics::ROLE_ASSIGNED, 1)?).await?;
    bus.publish(&event(topics::USER_DELETED, 1)?).await?;

    let a = topics_of(&mut exact, 2).await?;
    let b = topics_of(&mut roles, 3).await?;
    let c = topics_of(&mut users, 2).await?;
    assert_eq!(a, [topics::ROLE_ASSIGNED, topics::ROLE_ASSIGNED]);
    assert_eq!(
        b,
        [topics::ROLE_ASSIGNED, topics::ROLE_REVOKED, topics::ROLE_ASSIGNED]
    );
    assert_eq!(c, [topics::USER_CREATED, topics::USER_DELETED]);
    Ok(())
}

/// The topics of the next `n` events of `subscription`.
async fn topics_of(subscription: &mut Subscription, n: usize) -> anyhow::Result<Vec<String>> {
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        topics.push(next_event(subscription).await?.topic);
    }
    Ok(topics)
}

#[tokio::test]
async fn a_subscriber_gets_the_event_as_published() -> anyhow::Result<()> {
    let bus = InProcessBus::new(8);
    let mut subscription = bus.subscribe(topics::USER_CREATED).await?;
    let sent = event(topics::USER_CREATED, 42)?;
    bus.publish(&sent).await?;
    assert_eq!(next_event(&mut subscription).await?, sent);
    Ok(())
}

#[tokio::test]
async fn a_lagging_subscriber_loses_the_oldest_events_and_publishers_never_wait() -> anyhow::Result<()> {
    let bus = InProcessBus::new(4);
    let mut slow = bus.subscribe("test.*").await?;
    // Ten publishes into a ring of four with nobody reading: none of them may block.
    tokio::time::timeout(Duration::from_secs(1), async {
        for n in 0..10 {
            bus.publish(&event("test.tick", n)?).await?;
        }
        Ok::<_, EventError>(())
    })
    .await??;

    let mut received = Vec::new();
    for _ in 0..4 {
        received.push(next_event(&mut slow).await?.payload["n"].clone());
    }
    assert_eq!(received, [6, 7, 8, 9], "the four newest survive, oldest first");

    bus.publish(&event("test.tick", 10)?).await?;
    assert_eq!(
        next_event(&mut slow).await?.payload["n"],
        10,
        "it keeps receiving afterwards"
    );
    Ok(())
}

#[tokio::test]
async fn publishing_without_subscribers_succeeds() -> anyhow::Result<()> {
    let bus = InProcessBus::new(1);
    bus.publish(&event(topics::USER_DELETED, 0)?).await?;
    Ok(())
}

#[tokio::test]
async fn malformed_patterns_and_topics_are_refused() -> anyhow::Result<()> {
    let bus = InProcessBus::new(1);
    for pattern in [
        "platform.*.created",
        "*",
        "platform.user.",
        "Platform.user.created",
    ] {
        assert!(
            matches!(
                bus.subscribe(pattern).await,
                Err(EventError::InvalidPattern { .. })
            ),
            "{pattern}"
        );
    }
    assert!(matches!(
        event("platform..created", 0),
        Err(EventError::InvalidTopic { .. })
    ));
    let mut forged = event(topics::USER_CREATED, 0)?;
    forged.topic = "platform.user.*".to_owned();
    assert!(matches!(
        bus.publish(&forged).await,
        Err(EventError::InvalidTopic { .. })
    ));
    Ok(())
}
