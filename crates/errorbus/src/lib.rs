//! The error bus: one place where every unexpected error of a process ends up.
//!
//! Why this crate exists: a handler that hits an unexpected error (or panics) must answer its
//! client at once, yet the error must still be logged with its context and, later, reported to an
//! error tracker. Publishing is a non-blocking `try_send` into a bounded channel: when the channel
//! is full the record is dropped and counted (`keel_error_bus_dropped_total`), never allowed to
//! block a request. A background consumer hands each record to every [`ErrorSink`]; the
//! [`LogSink`] writes it as an `ERROR` log line with its request id and user id. Sinks for error
//! trackers (Sentry) plug in the same way.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One unexpected error and its context.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRecord {
    /// Category used for the `keel_errors_total{kind}` counter, e.g. `panic`, `database`, `upstream`.
    pub kind: &'static str,
    /// What happened, for operators (may hold internal detail; never shown to clients).
    pub message: String,
    /// The request it happened in, when there was one.
    pub request_id: Option<String>,
    /// The authenticated user, when there was one.
    pub user_id: Option<String>,
    /// The route template or gRPC method, when known.
    pub operation: Option<String>,
    /// When it happened.
    pub at: DateTime<Utc>,
}

impl ErrorRecord {
    /// A record of `kind` with `message`, stamped now, without context.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            request_id: None,
            user_id: None,
            operation: None,
            at: Utc::now(),
        }
    }

    /// Attaches the request id.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Attaches the user id.
    pub fn with_user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Attaches the operation (route template or gRPC method).
    pub fn with_operation(mut self, operation: impl Into<String>) -> Self {
        self.operation = Some(operation.into());
        self
    }
}

/// Somewhere error records go: a log, an error tracker, a test's collector.
pub trait ErrorSink: Send + Sync {
    /// Takes one record. Runs on the consumer task: must not block for long.
    fn record(&self, record: &ErrorRecord);
}

/// Writes each record as an `ERROR` log line with its context fields.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSink;

impl ErrorSink for LogSink {
    fn record(&self, record: &ErrorRecord) {
        tracing::error!(
            target: "keel::error_bus",
            kind = record.kind,
            request_id = record.request_id.as_deref().unwrap_or("-"),
            user_id = record.user_id.as_deref().unwrap_or("-"),
            operation = record.operation.as_deref().unwrap_or("-"),
            at = %record.at.to_rfc3339(),
            "{}",
            record.message
        );
    }
}

/// The publishing side of the bus. Cheap to clone; every clone feeds the same consumer.
#[derive(Clone, Debug)]
pub struct ErrorBus {
    sender: mpsc::Sender<ErrorRecord>,
}

/// What [`ErrorBus::publish`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Queued for the sinks.
    Queued,
    /// The bus was full (or stopped): the record was dropped and counted.
    Dropped,
}

impl ErrorBus {
    /// Starts the consumer task with room for `capacity` records. The task runs until `shutdown` is
    /// cancelled, then hands the records still queued to the sinks and ends.
    pub fn start(
        capacity: usize,
        sinks: Vec<Arc<dyn ErrorSink>>,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let consumer = tokio::spawn(consume(receiver, sinks, shutdown));
        (Self { sender }, consumer)
    }

    /// Queues `record` without waiting. Never blocks: when the bus is full the record is dropped,
    /// counted in `keel_error_bus_dropped_total`, and [`Published::Dropped`] returned.
    pub fn publish(&self, record: ErrorRecord) -> Published {
        metrics::counter!("keel_errors_total", "kind" => record.kind).increment(1);
        match self.sender.try_send(record) {
            Ok(()) => Published::Queued,
            Err(_) => {
                metrics::counter!("keel_error_bus_dropped_total").increment(1);
                Published::Dropped
            }
        }
    }
}

async fn consume(
    mut receiver: mpsc::Receiver<ErrorRecord>,
    sinks: Vec<Arc<dyn ErrorSink>>,
    shutdown: CancellationToken,
) {
    let deliver = |record: ErrorRecord| sinks.iter().for_each(|sink| sink.record(&record));
    loop {
        tokio::select! {
            biased;
            next = receiver.recv() => match next {
                Some(record) => deliver(record),
                None => return,
            },
            () = shutdown.cancelled() => break,
        }
    }
    receiver.close();
    while let Ok(record) = receiver.try_recv() {
        deliver(record);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<ErrorRecord>>);

    impl ErrorSink for Collect {
        fn record(&self, record: &ErrorRecord) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(record.clone());
        }
    }

    impl Collect {
        fn len(&self) -> usize {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
        }
    }

    #[tokio::test]
    async fn published_records_reach_every_sink_with_their_context() {
        let sink = Arc::new(Collect::default());
        let shutdown = CancellationToken::new();
        let (bus, consumer) = ErrorBus::start(8, vec![sink.clone(), Arc::new(LogSink)], shutdown.clone());
        let outcome = bus.publish(
            ErrorRecord::new("database", "connection reset")
                .with_request_id("req-1")
                .with_user_id("u-1"),
        );
        assert_eq!(outcome, Published::Queued);
        shutdown.cancel();
        consumer.await.expect("consumer ends");
        let records = sink.0.lock().expect("lock");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].request_id.as_deref(), Some("req-1"));
        assert_eq!(records[0].user_id.as_deref(), Some("u-1"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_bus_drops_instead_of_blocking() {
        let sink = Arc::new(Collect::default());
        let shutdown = CancellationToken::new();
        let (bus, consumer) = ErrorBus::start(2, vec![sink.clone()], shutdown.clone());
        // On a current-thread runtime the consumer cannot run until we yield, so the third and
        // later records find the channel full; publish must return at once regardless.
        let outcomes: Vec<_> = (0..5)
            .map(|i| bus.publish(ErrorRecord::new("test", format!("e{i}"))))
            .collect();
        assert_eq!(outcomes.iter().filter(|o| **o == Published::Queued).count(), 2);
        assert_eq!(outcomes.iter().filter(|o| **o == Published::Dropped).count(), 3);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(sink.len(), 2);
        shutdown.cancel();
        consumer.await.expect("consumer ends");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn records_queued_before_shutdown_are_still_delivered() {
        let sink = Arc::new(Collect::default());
        let shutdown = CancellationToken::new();
        let (bus, consumer) = ErrorBus::start(16, vec![sink.clone()], shutdown.clone());
        for i in 0..10 {
            bus.publish(ErrorRecord::new("test", format!("e{i}")));
        }
        // The consumer has not run yet (current-thread runtime): it sees the cancellation with ten
        // records queued, and must deliver them all before it ends.
        shutdown.cancel();
        consumer.await.expect("consumer ends");
        assert_eq!(sink.len(), 10);
    }
}
