//! Several relays over one PostgreSQL store, as several replicas of a service run them.

use std::sync::Arc;

use keel_events::{EventBus as _, InProcessBus, Outbox};
use sea_orm::TransactionTrait as _;

use crate::support::{
    AuditDouble, Backend, Running, Store, audit_record, count_rows, event, next_event, relay,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_postgres_deliver_each_row_once_and_in_order() -> anyhow::Result<()> {
    let Some(store) = Store::open(Backend::Postgres).await? else {
        return Ok(());
    };
    let bus = Arc::new(InProcessBus::new(4_096));
    let audit = AuditDouble::failing(0);
    let mut subscription = bus.subscribe("orders.*").await?;
    let other_pool = store.reopen().await?;
    let relays = [
        relay(&store.db, bus.clone(), audit.clone()).with_batch_size(7),
        relay(&other_pool, bus.clone(), audit.clone()).with_batch_size(7),
    ];
    let wakers: Vec<_> = relays.iter().map(keel_events::OutboxRelay::waker).collect();
    let running: Vec<_> = relays.into_iter().map(Running::start).collect();

    // Twenty transactions of ten changes each, written while both relays are at work.
    let (mut events, mut records) = (Vec::new(), Vec::new());
    for batch in 0..20 {
        let txn = store.conn().begin().await?;
        for n in 0..10 {
            let event = event("orders.note.created", batch * 10 + n)?;
            let record = audit_record("orders.note.created", &(batch * 10 + n).to_string());
            Outbox::enqueue_event(&txn, &event).await?;
            Outbox::enqueue_audit(&txn, &record).await?;
            events.push(event.id);
            records.push(record.id);
        }
        txn.commit().await?;
        wakers.iter().for_each(keel_events::RelayWaker::wake);
    }

    let mut received = Vec::with_capacity(events.len());
    for _ in 0..events.len() {
        received.push(next_event(&mut subscription).await?.id);
    }
    crate::support::eventually("every record is stored", || {
        audit.stored_ids().len() == records.len()
    })
    .await?;
    for relay in running {
        relay.stop().await?;
    }

    assert_eq!(received, events, "each event published once, in order");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), subscription.next())
            .await
            .is_err(),
        "no event was published twice"
    );
    assert_eq!(audit.stored_ids(), records, "records stored in order");
    for id in &records {
        assert_eq!(
            audit.times_accepted(*id),
            1,
            "record {id} was delivered by both relays"
        );
    }
    assert_eq!(count_rows(store.conn(), "keel_outbox").await?, 0);
    other_pool.close().await;
    store.finish().await
}
