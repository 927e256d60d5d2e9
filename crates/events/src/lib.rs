//! Events for Keel: the [`EventBus`] port with an in-process implementation, and the
//! transactional outbox that feeds both the bus and the audit service.
//!
//! Why this crate exists: a service that changes data must tell others (an authz cache to drop a
//! user's permissions, the audit log to record who did it), and the telling must not be lost when
//! the bus or the audit service is down, nor happen for a change that was rolled back. So nothing
//! is sent from inside a request: the event or audit record is written by [`Outbox`] in the same
//! database transaction as the change, and an [`OutboxRelay`] delivers it after commit.
//!
//! # Publishing and subscribing
//!
//! ```no_run
//! # async fn demo(bus: std::sync::Arc<dyn keel_events::EventBus>) -> Result<(), keel_events::EventError> {
//! use keel_events::{Event, topics};
//! let mut roles = bus.subscribe(topics::ALL_ROLE).await?;      // prefix: "platform.role.*"
//! bus.publish(&Event::new(topics::ROLE_ASSIGNED, "authz", serde_json::json!({"user_id": "…"}))?).await?;
//! while let Some(event) = roles.next().await { /* event.topic, event.payload */ }
//! # Ok(()) }
//! ```
//!
//! A pattern is an exact topic or a prefix ending in `.*`. [`InProcessBus`] never blocks a
//! publisher: a subscriber that falls more than the bus capacity behind loses the oldest events
//! (warning logged, `keel_events_lagged_total{pattern}` counted). Published events are counted in
//! `keel_events_published_total{topic}`.
//!
//! # The outbox
//!
//! ```no_run
//! # async fn demo(db: &sea_orm::DatabaseConnection, relay_waker: keel_events::RelayWaker,
//! #               record: keel_clients::AuditRecord) -> Result<(), Box<dyn std::error::Error>> {
//! use sea_orm::TransactionTrait as _;
//! use keel_events::{Event, Outbox, topics};
//! let txn = db.begin().await?;
//! // … the change itself, on `txn` …
//! Outbox::enqueue_event(&txn, &Event::new(topics::USER_CREATED, "identity", serde_json::json!({}))?).await?;
//! Outbox::enqueue_audit(&txn, &record).await?;
//! txn.commit().await?;
//! relay_waker.wake(); // deliver now rather than at the next poll
//! # Ok(()) }
//! ```
//!
//! Each service lists [`OutboxMigration`] in its migrator, which creates in its own store:
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `id` | uuid, primary key | UUID v7 taken at enqueue: the delivery order |
//! | `kind` | varchar(16) | `event` or `audit`; `event.dead` or `audit.dead` once set aside |
//! | `topic` | varchar(200) | the event's topic or the audit record's action |
//! | `payload` | text | the whole [`Event`] or [`keel_clients::AuditRecord`] as JSON |
//! | `created_at` | timestamp with time zone | when it was enqueued |
//! | `attempts` | integer | failed delivery attempts so far |
//! | `next_attempt_at` | timestamp with time zone | not retried before then |
//! | `last_error` | text, null | why the last attempt failed |
//!
//! and starts one [`OutboxRelay`] (`kernel.spawn("outbox-relay", relay.run(kernel.shutdown_token()))`).
//!
//! # Delivery guarantees
//!
//! - **Nothing for a rolled-back change; at least once for a committed one.** A row is deleted
//!   only after the bus took the event or the audit service acknowledged the batch; a crash in
//!   between delivers it again. Consumers de-duplicate by id: [`Event::id`] for events, the
//!   record id for audit (the audit service's `Record` is idempotent by it).
//! - **Never dropped.** A failed delivery keeps the row with `attempts + 1`, `last_error`, and a
//!   next attempt after an exponential backoff (500 ms doubling, at most 30 s), for as long as the
//!   failure lasts (the bus or the audit service down).
//! - **Dead letters.** A row that can never be delivered is set aside rather than retried forever,
//!   which would hold back every row of its kind behind it: a payload that no longer decodes, or an
//!   audit record the audit service refuses as invalid (`InvalidArgument`; a refused batch is sent
//!   again record by record, so only the refused records are set aside). Its `kind` becomes
//!   `event.dead` / `audit.dead`, which no relay claims; it stays in the table with `last_error`
//!   for an operator, logged at error level. The gauges `keel_outbox_pending{service}` and
//!   `keel_outbox_dead_letters{service}` show a backlog and the rows set aside;
//!   `keel_outbox_delivered_total`, `keel_outbox_delivery_failures_total` and
//!   `keel_outbox_dead_lettered_total` (`{service,kind}`) count rows.
//! - **In order, per kind.** Events are published one by one, audit records sent in batches (of
//!   the relay's batch size), oldest row first; a row waiting for its retry holds back the rows
//!   after it of the same kind, so nothing overtakes it. Events and audit records do not wait for
//!   each other. Rows are ordered by their enqueue id: one transaction's rows, or those of
//!   transactions one after another, keep their order; concurrent transactions have none.
//! - **Several replicas.** On PostgreSQL a batch claims its rows with `SELECT … FOR UPDATE SKIP
//!   LOCKED` in a transaction held until they are deleted or rescheduled, and only a relay holding
//!   the oldest rows of a kind delivers: replicas never deliver a row twice between them nor out of
//!   order. On SQLite (one process per file) run a single relay.
//!
//! The relay wakes on [`RelayWaker::wake`] and otherwise polls every second; it stops when its
//! shutdown token is cancelled, after finishing the batch in hand. `docs/events.md` has the longer
//! story (service wiring, failure handling, metrics).

mod bus;
mod error;
mod event;
mod in_process;
mod outbox;
mod relay;
pub mod topics;

pub use bus::{EventBus, Subscription};
pub use error::EventError;
pub use event::Event;
pub use in_process::InProcessBus;
pub use outbox::{Outbox, OutboxMigration};
pub use relay::{OutboxRelay, RelayWaker};
