//! What the bus and the relay count, as `/metrics` would show it.

use std::sync::Arc;

use anyhow::Context as _;
use keel_events::{EventBus as _, InProcessBus, Outbox};
use metrics_exporter_prometheus::PrometheusBuilder;
use sea_orm::TransactionTrait as _;

use crate::support::{
    AuditDouble, Backend, Running, Store, audit_record, event, eventually, next_event, relay,
};

#[tokio::test]
async fn deliveries_failures_backlog_publishes_and_lag_are_counted() -> anyhow::Result<()> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // Thread-local, and `#[tokio::test]` runs the test and the relay task on this thread.
    let _guard = metrics::set_default_local_recorder(&recorder);

    let store = Store::open(Backend::Sqlite)
        .await?
        .context("SQLite needs no server")?;
    let bus = Arc::new(InProcessBus::new(2));
    let mut slow = bus.subscribe("orders.*").await?;
    let txn = store.conn().begin().await?;
    for n in 0..3 {
        Outbox::enqueue_event(&txn, &event("orders.note.created", n)?).await?;
    }
    for n in 0..2 {
        Outbox::enqueue_audit(&txn, &audit_record("orders.note.created", &n.to_string())).await?;
    }
    txn.commit().await?;

    let audit = AuditDouble::failing(1);
    let running = Running::start(relay(&store.db, bus.clone(), audit.clone()));
    eventually("the records are stored", || audit.stored_ids().len() == 2).await?;
    running.stop().await?; // the relay counts the outbox once more on its way out
    // Three events into a ring of two with nobody reading: the oldest is lost on the next read.
    assert_eq!(next_event(&mut slow).await?.payload["n"], 1);

    let rendered = handle.render();
    let value = |series: &str| {
        rendered
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
    };
    let expected = [
        (
            r#"keel_outbox_delivered_total{service="orders",kind="event"}"#,
            "3",
        ),
        (
            r#"keel_outbox_delivered_total{service="orders",kind="audit"}"#,
            "2",
        ),
        (
            r#"keel_outbox_delivery_failures_total{service="orders",kind="audit"}"#,
            "2",
        ),
        (r#"keel_outbox_pending{service="orders"}"#, "0"),
        (r#"keel_events_published_total{topic="orders.note.created"}"#, "3"),
        (r#"keel_events_lagged_total{pattern="orders.*"}"#, "1"),
    ];
    for (series, count) in expected {
        assert_eq!(value(series).as_deref(), Some(count), "{series} in\n{rendered}");
    }
    store.finish().await
}
