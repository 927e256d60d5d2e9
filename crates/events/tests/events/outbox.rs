//! The outbox and its relay on SQLite and PostgreSQL: what a commit or a rollback delivers, and
//! how failures of the bus or the audit service are retried without loss, duplicates or reordering.

use std::sync::Arc;
use std::time::Duration;

use keel_events::{EventBus as _, EventError, InProcessBus, Outbox, OutboxRelay};
use sea_orm::{ConnectionTrait as _, TransactionTrait as _};

use crate::support::{
    AuditDouble, Backend, FlakyBus, Running, Store, add_note, audit_record, count_rows, event, eventually,
    next_event, outbox_kinds, outbox_rows, relay,
};

/// Runs each scenario as two tests, `<scenario>::on_sqlite` and `<scenario>::on_postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use crate::support::Backend;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() -> anyhow::Result<()> {
                super::$scenario(Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() -> anyhow::Result<()> {
                super::$scenario(Backend::Postgres).await
            }
        }
    )*};
}

on_both_backends!(
    a_rolled_back_transaction_delivers_nothing,
    a_committed_transaction_is_delivered_to_subscribers_and_the_audit_service,
    a_failing_audit_service_gets_every_record_exactly_once_in_order,
    a_failing_bus_delays_events_without_losing_or_reordering_them,
    a_new_relay_delivers_what_a_stopped_one_left,
    a_flush_returns_once_the_committed_events_are_published,
    a_record_the_audit_service_refuses_is_set_aside_and_holds_nothing_back,
    an_unreadable_row_is_set_aside_and_holds_nothing_back,
);

async fn a_rolled_back_transaction_delivers_nothing(backend: Backend) -> anyhow::Result<()> {
    let Some(store) = Store::open(backend).await? else {
        return Ok(());
    };
    let bus = Arc::new(InProcessBus::new(64));
    let audit = AuditDouble::failing(0);
    let mut subscription = bus.subscribe("orders.*").await?;

    let txn = store.conn().begin().await?;
    add_note(&txn, "rolled back").await?;
    Outbox::enqueue_event(&txn, &event("orders.note.created", 1)?).await?;
    Outbox::enqueue_audit(&txn, &audit_record("orders.note.created", "rolled back")).await?;
    txn.rollback().await?;

    // A committed change after it: once its messages arrive, the relay has seen the whole outbox.
    let committed_event = event("orders.note.created", 2)?;
    let committed_record = audit_record("orders.note.created", "committed");
    let txn = store.conn().begin().await?;
    add_note(&txn, "committed").await?;
    Outbox::enqueue_event(&txn, &committed_event).await?;
    Outbox::enqueue_audit(&txn, &committed_record).await?;
    txn.commit().await?;

    let running = Running::start(relay(&store.db, bus.clone(), audit.clone()));
    assert_eq!(next_event(&mut subscription).await?.id, committed_event.id);
    eventually("the audit record is stored", || !audit.stored_ids().is_empty()).await?;
    running.stop().await?;

    assert_eq!(audit.stored_ids(), [committed_record.id]);
    assert_eq!(count_rows(store.conn(), "keel_outbox").await?, 0);
    assert_eq!(count_rows(store.conn(), "notes").await?, 1);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), subscription.next())
            .await
            .is_err(),
        "no other event was published"
    );
    store.finish().await
}

async fn a_committed_transaction_is_delivered_to_subscribers_and_the_audit_service(
    backend: Backend,
) -> anyhow::Result<()> {
    let Some(store) = Store::open(backend).await? else {
        return Ok(());
    };
    let bus = Arc::new(InProcessBus::new(64));
    let audit = AuditDouble::failing(0);
    let mut subscription = bus.subscribe("orders.note.*").await?;
    // Polling once an hour: only the waker can explain a prompt delivery.
    let relay = relay(&store.db, bus.clone(), audit.clone()).with_poll_interval(Duration::from_secs(3_600));
    let waker = relay.waker();
    let running = Running::start(relay);
    tokio::time::sleep(Duration::from_millis(100)).await; // let its first pass find nothing

    let events = [
        event("orders.note.created", 1)?,
        event("orders.note.updated", 2)?,
        event("orders.note.deleted", 3)?,
    ];
    let records: Vec<_> = (1..=3)
        .map(|n| audit_record("orders.note.changed", &n.to_string()))
        .collect();
    let txn = store.conn().begin().await?;
    add_note(&txn, "one").await?;
    for (event, record) in events.iter().zip(&records) {
        Outbox::enqueue_event(&txn, event).await?;
        Outbox::enqueue_audit(&txn, record).await?;
    }
    txn.commit().await?;
    waker.wake();

    for sent in &events {
        assert_eq!(&next_event(&mut subscription).await?, sent);
    }
    eventually("the audit records are stored", || audit.stored().len() == 3).await?;
    running.stop().await?;
    assert_eq!(audit.stored(), records);
    assert_eq!(audit.calls(), 1, "the three records went in one batch");
    assert_eq!(count_rows(store.conn(), "keel_outbox").await?, 0);
    store.finish().await
}

async fn a_failing_audit_service_gets_every_record_exactly_once_in_order(
    backend: Backend,
) -> anyhow::Result<()> {
    let Some(store) = Store::open(backend).await? else {
        return Ok(());
    };
    let audit = AuditDouble::failing(3);
    let mut records = Vec::new();
    for n in 0..5 {
        let record = audit_record("orders.note.created", &n.to_string());
        let txn = store.conn().begin().await?;
        Outbox::enqueue_audit(&txn, &record).await?;
        txn.commit().await?;
        records.push(record.id);
    }

    let bus = Arc::new(InProcessBus::new(8));
    let running = Running::start(relay(&store.db, bus, audit.clone()).with_batch_size(2));
    eventually("every record is stored", || audit.stored_ids().len() == 5).await?;
    running.stop().await?;

    assert_eq!(audit.stored_ids(), records, "stored once each, in enqueue order");
    for id in &records {
        assert_eq!(
            audit.times_accepted(*id),
            1,
            "record {id} was delivered more than once"
        );
    }
    assert_eq!(
        audit.calls(),
        3 + 3,
        "three refused batches, then batches of 2, 2 and 1"
    );
    assert_eq!(count_rows(store.conn(), "keel_outbox").await?, 0);
    store.finish().await
}

async fn a_failing_bus_delays_events_without_losing_or_reordering_them(
    backend: Backend,
) -> anyhow::Result<()> {
    let Some(store) = Store::open(backend).await? else {
        return Ok(());
    };
    let bus = FlakyBus::new(2);
    let mut subscription = bus.subscribe("orders.*").await?;
    let txn = store.conn().begin().await?;
    let mut sent = Vec::new();
    for n in 0..4 {
        let event = event("orders.note.created", n)?;
        Outbox::enqueue_event(&txn, &event).await?;
        sent.push(event.id);
    }
    txn.commit().await?;

    let running = Running::start(relay(&store.db, bus.clone(), AuditDouble::failing(0)));
    let mut received = Vec::new();
    for _ in 0..4 {
        received.push(next_event(&mut subscription).await?.id);
    }
    running.stop().await?;
    assert_eq!(received, sent);
    assert_eq!(count_rows(store.conn(), "keel_outbox").await?, 0);
    store.finish().await
}

async fn a_new_relay_delivers_what_a_stopped_one_left(backend: Backend) -> anyhow::Result<()> {
    let Some(store) = Store::open(backend).await? else {
        return Ok(());
    };
    let records: Vec<_> = (0..3)
        .map(|n| audit_record("orders.note.created", &n.to_string()))
        .collect();
    let txn = store.conn().begin().await?;
    for record in &records {
        Outbox::enqueue_audit(&txn, record).await?;
    }
    txn.commit().await?;

    // The first relay meets an audit service that is down, and is stopped (a deploy, a crash).
    let down = AuditDouble::failing(usize::MAX);
    let first = Running::start(relay(&store.db, Arc::new(InProcessBus::new(8)), down.clone()));
    eventually("the first relay has tried twice", || down.calls() >= 2).await?;
    first.stop().await?;
    let kept = outbox_rows(store.conn()).await?;
    assert_eq!(kept.len(), 3, "failed rows are kept");
    for (attempts, last_error) in &kept {
        assert!(*attempts >= 2, "attempts counted: {attempts}");
        assert!(
            last_error
                .as_deref()
                .is_some_and(|e| e.contains("connection refused")),
            "reason kept: {last_error:?}"
        );
    }

    // A new relay, on a pool of its own as a restarted process would have, delivers them.
    let reopened = store.reopen().await?;
    let up = AuditDouble::failing(0);
    let second = Running::start(relay(&reopened, Arc::new(InProcessBus::new(8)), up.clone()));
    eventually("the records are stored", || up.stored().len() == 3).await?;
    second.stop().await?;
    assert_eq!(up.stored(), records);
    assert_eq!(count_rows(store.conn(), "keel_outbox").await?, 0);
    reopened.close().await;
    store.finish().await
}

#[tokio::test]
async fn a_relay_over_a_store_without_the_outbox_table_fails_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = keel_config::DatabaseConfig {
        url: keel_config::SecretString::from(format!("sqlite:{}", dir.path().display())),
        schema_prefix: "keel_".to_owned(),
        pool: keel_config::PoolConfig {
            max_connections: 1,
            min_connections: 0,
            connect_timeout_ms: 1_000,
            acquire_timeout_ms: 1_000,
            idle_timeout_secs: 60,
        },
        services: std::collections::BTreeMap::new(),
    };
    let db = keel_db::Database::connect(&config, "unmigrated").await?;
    let relay = OutboxRelay::new(
        db.connection().clone(),
        "unmigrated",
        Arc::new(InProcessBus::new(1)),
        AuditDouble::failing(0),
    );
    let outcome = tokio::time::timeout(Duration::from_secs(5), relay.run(Default::default())).await?;
    assert!(matches!(outcome, Err(EventError::Database(_))), "{outcome:?}");
    Ok(())
}

async fn a_flush_returns_once_the_committed_events_are_published(backend: Backend) -> anyhow::Result<()> {
    let Some(store) = Store::open(backend).await? else {
        return Ok(());
    };
    let bus = Arc::new(InProcessBus::new(64));
    let mut subscription = bus.subscribe("orders.note.*").await?;
    let relay =
        relay(&store.db, bus.clone(), AuditDouble::failing(0)).with_poll_interval(Duration::from_secs(3_600));
    let waker = relay.waker();
    assert!(
        !waker.flush(Duration::from_secs(1)).await,
        "no relay runs yet: flush answers at once"
    );
    let running = Running::start(relay);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let sent = event("orders.note.created", 7)?;
    let txn = store.conn().begin().await?;
    Outbox::enqueue_event(&txn, &sent).await?;
    txn.commit().await?;
    assert!(
        waker.flush(Duration::from_secs(5)).await,
        "the relay passed within the limit"
    );
    let already = tokio::time::timeout(Duration::from_millis(1), subscription.next()).await;
    assert_eq!(
        already.ok().flatten().as_ref(),
        Some(&sent),
        "published before flush returned"
    );
    running.stop().await?;
    store.finish().await
}

async fn a_record_the_audit_service_refuses_is_set_aside_and_holds_nothing_back(
    backend: Backend,
) -> anyhow::Result<()> {
    let Some(store) = Store::open(backend).await? else {
        return Ok(());
    };
    let audit = AuditDouble::refusing("orders.note.poisoned");
    let mut valid = Vec::new();
    let mut poisoned = None;
    for n in 0..5 {
        let action = if n == 1 {
            "orders.note.poisoned"
        } else {
            "orders.note.created"
        };
        let record = audit_record(action, &n.to_string());
        let txn = store.conn().begin().await?;
        Outbox::enqueue_audit(&txn, &record).await?;
        txn.commit().await?;
        match n {
            1 => poisoned = Some(record.id),
            _ => valid.push(record.id),
        }
    }

    // Batches of 3: the first holds the refused record, and is sent again record by record.
    let bus = Arc::new(InProcessBus::new(8));
    let running = Running::start(relay(&store.db, bus, audit.clone()).with_batch_size(3));
    eventually("every valid record is stored", || audit.stored_ids().len() == 4).await?;
    running.stop().await?;

    assert_eq!(
        audit.stored_ids(),
        valid,
        "the valid records, once each, in enqueue order"
    );
    assert!(poisoned.is_some_and(|id| audit.times_accepted(id) == 0));
    let rows = outbox_kinds(store.conn()).await?;
    assert_eq!(rows.len(), 1, "only the refused record stays: {rows:?}");
    let (kind, error) = &rows[0];
    assert_eq!(kind, "audit.dead", "set aside, so no relay claims it again");
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("orders.note.poisoned")),
        "the reason is kept for an operator: {error:?}"
    );
    store.finish().await
}

async fn an_unreadable_row_is_set_aside_and_holds_nothing_back(backend: Backend) -> anyhow::Result<()> {
    let Some(store) = Store::open(backend).await? else {
        return Ok(());
    };
    let audit = AuditDouble::failing(0);
    let unreadable = audit_record("orders.note.mangled", "0");
    let valid = audit_record("orders.note.created", "1");
    for record in [&unreadable, &valid] {
        let txn = store.conn().begin().await?;
        Outbox::enqueue_audit(&txn, record).await?;
        txn.commit().await?;
    }
    // Altered outside the outbox: no longer a record.
    let backend = store.conn().get_database_backend();
    store
        .conn()
        .execute_raw(sea_orm::Statement::from_string(
            backend,
            "UPDATE keel_outbox SET payload = '{' WHERE topic = 'orders.note.mangled'",
        ))
        .await?;

    let bus = Arc::new(InProcessBus::new(8));
    let running = Running::start(relay(&store.db, bus, audit.clone()));
    eventually("the readable record is stored", || {
        audit.stored_ids() == vec![valid.id]
    })
    .await?;
    running.stop().await?;

    let rows = outbox_kinds(store.conn()).await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "audit.dead");
    assert!(
        rows[0].1.as_deref().is_some_and(|e| e.contains("unreadable")),
        "{rows:?}"
    );
    store.finish().await
}
