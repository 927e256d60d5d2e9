//! Delivery of the outbox after commit: events to the bus, audit records to the audit service.

mod batch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_clients::AuditClient;
use sea_orm::{
    ColumnTrait as _, DatabaseConnection, DbBackend, EntityTrait as _, PaginatorTrait as _, QueryFilter as _,
    TransactionTrait as _,
};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::outbox::entity;
use crate::{EventBus, EventError};

/// Wakes an [`OutboxRelay`] so it delivers at once instead of at its next poll, or waits for it
/// to have delivered. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RelayWaker {
    notify: Arc<Notify>,
    /// The running relay's progress; `None` while no relay runs.
    passes: Arc<watch::Sender<Option<Progress>>>,
}

/// Where a running relay is.
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// Passes completed.
    completed: u64,
    /// Whether a pass is under way (it may have read the outbox before a caller's commit).
    in_pass: bool,
}

impl Default for RelayWaker {
    fn default() -> Self {
        Self {
            notify: Arc::new(Notify::new()),
            passes: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl RelayWaker {
    /// Asks the relay to look at the outbox now. Call it after committing a transaction that
    /// enqueued something; a wake while the relay is busy makes it look again right after.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Wakes the relay and waits, at most `limit`, until it has completed a whole pass that began
    /// after this call: what was committed before the call is then delivered (unless a delivery
    /// failed and waits for its retry). For writes whose events must have reached the bus before
    /// the caller answers, e.g. permission changes that other services' caches must see on the
    /// very next request. Returns at once (`false`) when no relay runs; `false` on timeout.
    pub async fn flush(&self, limit: Duration) -> bool {
        let mut passes = self.passes.subscribe();
        let Some(now) = *passes.borrow_and_update() else {
            return false;
        };
        self.wake();
        // A pass under way may have read the outbox before the caller's commit; the wake makes the
        // relay run one more right after it, and that is the one to wait for.
        let target = now.completed + if now.in_pass { 2 } else { 1 };
        let done = passes.wait_for(|progress| progress.is_none_or(|p| p.completed >= target));
        matches!(tokio::time::timeout(limit, done).await, Ok(Ok(progress)) if progress.is_some())
    }

    fn pass_started(&self) {
        self.passes.send_modify(|progress| {
            let completed = progress.map_or(0, |p| p.completed);
            *progress = Some(Progress {
                completed,
                in_pass: true,
            });
        });
    }

    fn pass_completed(&self) {
        self.passes.send_modify(|progress| {
            let completed = progress.map_or(0, |p| p.completed) + 1;
            *progress = Some(Progress {
                completed,
                in_pass: false,
            });
        });
    }

    fn stopped(&self) {
        self.passes.send_replace(None);
    }
}

/// Tuning of a relay; the defaults suit production.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Rows taken per batch (and audit records per `record` call).
    pub(crate) batch_size: u64,
    /// How often the outbox is read when nobody wakes the relay.
    pub(crate) poll_interval: Duration,
    /// Delay after the first failed attempt; doubled after each further failure.
    pub(crate) backoff_base: Duration,
    /// Longest delay between attempts.
    pub(crate) backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_secs(1),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Delivers a service's outbox: the background task every service that enqueues runs once per
/// store (on PostgreSQL, one per replica is fine).
///
/// See the [crate documentation](crate) for the guarantees (at least once, in order per kind,
/// never dropped) and the metrics.
pub struct OutboxRelay {
    db: DatabaseConnection,
    service: Arc<str>,
    events: Arc<dyn EventBus>,
    audit: Arc<dyn AuditClient>,
    waker: RelayWaker,
    settings: Settings,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("service", &self.service)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OutboxRelay {
    /// A relay over the store `db` of `service` (the name labels its metrics and logs), publishing
    /// events on `events` and sending audit records to `audit`.
    pub fn new(
        db: DatabaseConnection,
        service: &str,
        events: Arc<dyn EventBus>,
        audit: Arc<dyn AuditClient>,
    ) -> Self {
        Self {
            db,
            service: service.into(),
            events,
            audit,
            waker: RelayWaker::default(),
            settings: Settings::default(),
        }
    }

    /// How many rows one batch takes (default 100, at least 1); audit records go to the audit
    /// service in batches of this size.
    pub fn with_batch_size(mut self, rows: u64) -> Self {
        self.settings.batch_size = rows.max(1);
        self
    }

    /// How often the outbox is read when nobody wakes the relay (default 1 s).
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.settings.poll_interval = interval;
        self
    }

    /// The delay after a failed attempt: `base` doubled per further failure, at most `max`
    /// (defaults 500 ms and 30 s).
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.settings.backoff_base = base;
        self.settings.backoff_max = max;
        self
    }

    /// A handle to wake this relay; clones wake the same relay.
    pub fn waker(&self) -> RelayWaker {
        self.waker.clone()
    }

    /// Delivers until `shutdown` is cancelled, then returns after the batch in hand.
    ///
    /// Fails only when the outbox cannot be read on the first pass (typically: the service's
    /// migrator lacks [`crate::OutboxMigration`]), so a misconfigured service stops at start-up.
    /// Later storage or delivery failures are logged and retried, never returned: the rows stay
    /// in the outbox until delivered.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), EventError> {
        tracing::info!(service = %self.service, "outbox relay started");
        self.waker.pass_started();
        let first = match self.pass(&shutdown).await {
            Ok(()) => self.refresh_gauges().await,
            Err(error) => Err(error),
        };
        self.waker.pass_completed();
        if let Err(error) = first {
            self.waker.stopped();
            return Err(error);
        }
        // The gauges cost two counting queries: under load, when passes follow each other, they
        // are refreshed at most once per poll interval (and once more on the way out).
        let mut gauges_refreshed = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = self.waker.notify.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
            self.waker.pass_started();
            let mut outcome = self.pass(&shutdown).await;
            if outcome.is_ok() && gauges_refreshed.elapsed() >= self.settings.poll_interval {
                outcome = self.refresh_gauges().await;
                gauges_refreshed = Instant::now();
            }
            if let Err(error) = outcome {
                tracing::warn!(service = %self.service, %error, "outbox relay pass failed; will retry");
            }
            self.waker.pass_completed();
        }
        if let Err(error) = self.refresh_gauges().await {
            tracing::debug!(service = %self.service, %error, "outbox gauges not refreshed at stop");
        }
        self.waker.stopped();
        tracing::info!(service = %self.service, "outbox relay stopped");
        Ok(())
    }

    /// Delivers every due row of both kinds, batch after batch.
    async fn pass(&self, shutdown: &CancellationToken) -> Result<(), EventError> {
        for kind in [entity::KIND_EVENT, entity::KIND_AUDIT] {
            loop {
                let delivered = self.batch(kind).await?;
                if delivered < self.settings.batch_size || shutdown.is_cancelled() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Sets the pending and dead-letter gauges from the outbox as it is now.
    async fn refresh_gauges(&self) -> Result<(), EventError> {
        let live = [entity::KIND_EVENT, entity::KIND_AUDIT];
        let pending = entity::Entity::find()
            .filter(entity::Column::Kind.is_in(live))
            .count(&self.db)
            .await?;
        let dead = entity::Entity::find()
            .filter(entity::Column::Kind.is_not_in(live))
            .count(&self.db)
            .await?;
        // Precision loss above 2^53 rows is irrelevant for a gauge.
        #[allow(clippy::cast_precision_loss)]
        {
            metrics::gauge!("keel_outbox_pending", "service" => self.service.to_string()).set(pending as f64);
            metrics::gauge!("keel_outbox_dead_letters", "service" => self.service.to_string())
                .set(dead as f64);
        }
        Ok(())
    }

    /// One batch of `kind`; returns how many rows were delivered. On PostgreSQL the batch runs in
    /// a transaction holding its rows' locks until they are deleted or rescheduled.
    async fn batch(&self, kind: &'static str) -> Result<u64, EventError> {
        if self.db.get_database_backend() == DbBackend::Postgres {
            let txn = self.db.begin().await?;
            let delivered = batch::Batch::new(self, kind).run(&txn).await?;
            txn.commit().await?;
            Ok(delivered)
        } else {
            batch::Batch::new(self, kind).run(&self.db).await
        }
    }
}
