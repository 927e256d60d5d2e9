//! Fixtures: a store per test (SQLite temp dir or PostgreSQL schema) migrated with the outbox, test
//! doubles of the audit service and of a failing bus, and polling helpers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use keel_clients::{
    AuditClient, AuditQuery, AuditRecord, ChainReport, Page, ServiceError, StoredAuditRecord,
};
use keel_config::{DatabaseConfig, PoolConfig, SecretString};
use keel_db::{Database, ServiceDatabase};
use keel_events::{Event, EventBus, EventError, InProcessBus, OutboxRelay, Subscription};
use sea_orm::{ConnectionTrait as _, DatabaseConnection, Statement};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The service whose store the tests use.
pub(crate) const SERVICE: &str = "orders";

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated store of [`SERVICE`] that nobody else uses.
pub(crate) struct Store {
    pub(crate) db: ServiceDatabase,
    config: DatabaseConfig,
    _dir: Option<tempfile::TempDir>,
    schema_to_drop: Option<(String, String)>,
}

impl Store {
    /// A fresh store on `backend`; `None` (printed skip) for PostgreSQL without `DATABASE_URL`.
    pub(crate) async fn open(backend: Backend) -> anyhow::Result<Option<Store>> {
        let (config, dir, schema_to_drop) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let config = config(&format!("sqlite:{}", dir.path().display()), "keel_");
                (config, Some(dir), None)
            }
            Backend::Postgres => {
                let Some(url) = keel_testkit::server_url("DATABASE_URL") else {
                    return Ok(None);
                };
                let prefix = format!("{}_", keel_testkit::unique_name("ke"));
                let schema = format!("{prefix}{SERVICE}");
                (config(&url, &prefix), None, Some((url, schema)))
            }
        };
        let db = Database::connect(&config, SERVICE).await?;
        db.migrate::<migrations::Migrator>().await?;
        Ok(Some(Store {
            db,
            config,
            _dir: dir,
            schema_to_drop,
        }))
    }

    /// The pooled connection.
    pub(crate) fn conn(&self) -> &DatabaseConnection {
        self.db.connection()
    }

    /// A second, independent pool on the same store (what another process or replica would open).
    pub(crate) async fn reopen(&self) -> anyhow::Result<ServiceDatabase> {
        Ok(Database::connect(&self.config, SERVICE).await?)
    }

    /// Drops the PostgreSQL schema (the SQLite directory goes with the value).
    pub(crate) async fn finish(self) -> anyhow::Result<()> {
        self.db.close().await;
        if let Some((url, schema)) = self.schema_to_drop {
            let db = sea_orm::Database::connect(url.as_str()).await?;
            db.execute_unprepared(&format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#))
                .await?;
            db.close().await?;
        }
        Ok(())
    }
}

fn config(url: &str, schema_prefix: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: SecretString::from(url.to_owned()),
        schema_prefix: schema_prefix.to_owned(),
        pool: PoolConfig {
            max_connections: 5,
            min_connections: 0,
            connect_timeout_ms: 5_000,
            acquire_timeout_ms: 5_000,
            idle_timeout_secs: 60,
        },
        services: BTreeMap::new(),
    }
}

/// The test service's migrations: the outbox and a `notes` table standing for its own data.
pub(crate) mod migrations {
    use sea_orm_migration::prelude::*;

    pub(crate) struct Migrator;

    #[async_trait::async_trait]
    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(keel_events::OutboxMigration), Box::new(CreateNotes)]
        }
    }

    struct CreateNotes;

    impl MigrationName for CreateNotes {
        fn name(&self) -> &str {
            "m20260101_000001_create_notes"
        }
    }

    #[allow(elided_lifetimes_in_paths)]
    #[async_trait::async_trait]
    impl MigrationTrait for CreateNotes {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("notes"))
                        .col(
                            ColumnDef::new(Alias::new("body"))
                                .string()
                                .not_null()
                                .primary_key(),
                        )
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table(Alias::new("notes")).to_owned())
                .await
        }
    }
}

/// Inserts a note (the service's own change) on `conn`.
pub(crate) async fn add_note<C: sea_orm::ConnectionTrait>(conn: &C, body: &str) -> anyhow::Result<()> {
    let backend = conn.get_database_backend();
    conn.execute_raw(Statement::from_sql_and_values(
        backend,
        match backend {
            sea_orm::DbBackend::Postgres => "INSERT INTO notes (body) VALUES ($1)",
            _ => "INSERT INTO notes (body) VALUES (?)",
        },
        [body.into()],
    ))
    .await?;
    Ok(())
}

/// Rows of a table.
pub(crate) async fn count_rows(conn: &DatabaseConnection, table: &str) -> anyhow::Result<i64> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await?
        .context("COUNT returns a row")?;
    Ok(row.try_get::<i64>("", "n")?)
}

/// `(kind, last_error)` of every outbox row, oldest first.
pub(crate) async fn outbox_kinds(conn: &DatabaseConnection) -> anyhow::Result<Vec<(String, Option<String>)>> {
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT kind, last_error FROM keel_outbox ORDER BY id",
        ))
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("", "kind")?, row.try_get("", "last_error")?)))
        .collect()
}

/// `(attempts, last_error)` of every outbox row, oldest first.
pub(crate) async fn outbox_rows(conn: &DatabaseConnection) -> anyhow::Result<Vec<(i32, Option<String>)>> {
    let backend = conn.get_database_backend();
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT attempts, last_error FROM keel_outbox ORDER BY id",
        ))
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("", "attempts")?, row.try_get("", "last_error")?)))
        .collect()
}

/// An audit record of `action` with a fresh id.
pub(crate) fn audit_record(action: &str, target: &str) -> AuditRecord {
    AuditRecord {
        id: Uuid::now_v7(),
        action: action.to_owned(),
        actor_id: Some(Uuid::now_v7()),
        target_type: Some("note".to_owned()),
        target_id: Some(target.to_owned()),
        request_id: Some("req-1".to_owned()),
        ip: Some("127.0.0.1".to_owned()),
        user_agent: Some("tests".to_owned()),
        occurred_at: chrono::Utc::now(),
        metadata: serde_json::json!({"target": target}),
        source: SERVICE.to_owned(),
        tenant_id: None,
    }
}

/// An event on `topic` whose payload names `n`.
pub(crate) fn event(topic: &str, n: usize) -> Result<Event, EventError> {
    Event::new(topic, SERVICE, serde_json::json!({ "n": n }))
}

/// A stand-in audit service: refuses the first `failures` calls, then stores records once per id,
/// in arrival order, like the real one; remembers how often each id was in an accepted call.
#[derive(Default)]
pub(crate) struct AuditDouble {
    state: Mutex<AuditState>,
}

#[derive(Default)]
struct AuditState {
    failures_left: usize,
    /// A call holding a record of this action is refused as invalid, as the real service refuses
    /// a malformed record (the whole call).
    refused_action: Option<String>,
    calls: usize,
    stored: Vec<AuditRecord>,
    accepted: BTreeMap<Uuid, usize>,
}

impl AuditDouble {
    /// A double that fails its first `failures` calls with `Unavailable`.
    pub(crate) fn failing(failures: usize) -> Arc<Self> {
        let double = Self::default();
        double.lock().failures_left = failures;
        Arc::new(double)
    }

    /// A double that refuses, as invalid, every call holding a record of `action`.
    pub(crate) fn refusing(action: &str) -> Arc<Self> {
        let double = Self::default();
        double.lock().refused_action = Some(action.to_owned());
        Arc::new(double)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuditState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ids of the stored records, in the order they were stored.
    pub(crate) fn stored_ids(&self) -> Vec<Uuid> {
        self.lock().stored.iter().map(|r| r.id).collect()
    }

    /// The stored records.
    pub(crate) fn stored(&self) -> Vec<AuditRecord> {
        self.lock().stored.clone()
    }

    /// How many times `id` was part of an accepted `record` call.
    pub(crate) fn times_accepted(&self, id: Uuid) -> usize {
        self.lock().accepted.get(&id).copied().unwrap_or(0)
    }

    /// `record` calls so far, failed ones included.
    pub(crate) fn calls(&self) -> usize {
        self.lock().calls
    }
}

#[async_trait]
impl AuditClient for AuditDouble {
    async fn record(&self, records: &[AuditRecord]) -> Result<u32, ServiceError> {
        let mut state = self.lock();
        state.calls += 1;
        if state.failures_left > 0 {
            state.failures_left -= 1;
            return Err(ServiceError::Unavailable("audit: connection refused".to_owned()));
        }
        if let Some(refused) = &state.refused_action
            && records.iter().any(|record| &record.action == refused)
        {
            return Err(ServiceError::InvalidArgument {
                message: format!("records[].action `{refused}` is refused"),
                violations: Vec::new(),
            });
        }
        let mut new = 0;
        for record in records {
            *state.accepted.entry(record.id).or_default() += 1;
            if !state.stored.iter().any(|r| r.id == record.id) {
                state.stored.push(record.clone());
                new += 1;
            }
        }
        Ok(new)
    }

    async fn query(&self, _query: AuditQuery) -> Result<Page<StoredAuditRecord>, ServiceError> {
        Err(ServiceError::FailedPrecondition(
            "the audit double only stores records".to_owned(),
        ))
    }

    async fn verify_chain(&self) -> Result<ChainReport, ServiceError> {
        Err(ServiceError::FailedPrecondition(
            "the audit double only stores records".to_owned(),
        ))
    }
}

/// A bus that refuses the first `failures` publishes, then hands events to an [`InProcessBus`].
pub(crate) struct FlakyBus {
    inner: InProcessBus,
    failures_left: Mutex<usize>,
}

impl FlakyBus {
    pub(crate) fn new(failures: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: InProcessBus::new(1_024),
            failures_left: Mutex::new(failures),
        })
    }
}

#[async_trait]
impl EventBus for FlakyBus {
    async fn publish(&self, event: &Event) -> Result<(), EventError> {
        {
            let mut left = self
                .failures_left
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *left > 0 {
                *left -= 1;
                return Err(EventError::BusUnavailable("broker down".to_owned()));
            }
        }
        self.inner.publish(event).await
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, EventError> {
        self.inner.subscribe(pattern).await
    }
}

/// A relay tuned for tests: fast polls and short backoff.
pub(crate) fn relay(
    db: &ServiceDatabase,
    events: Arc<dyn EventBus>,
    audit: Arc<dyn AuditClient>,
) -> OutboxRelay {
    OutboxRelay::new(db.connection().clone(), SERVICE, events, audit)
        .with_poll_interval(Duration::from_millis(50))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// A running relay and the token that stops it.
pub(crate) struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), EventError>>,
}

impl Running {
    pub(crate) fn start(relay: OutboxRelay) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(relay.run(stop.clone()));
        Self { stop, task }
    }

    /// Cancels the token and waits for the relay to return.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .context("relay did not stop")???;
        Ok(())
    }
}

/// The next event of `subscription` within 10 s.
pub(crate) async fn next_event(subscription: &mut Subscription) -> anyhow::Result<Event> {
    tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .context("no event within 10 s")?
        .context("the bus closed")
}

/// Polls `done` every 20 ms until it holds; fails after 15 s.
pub(crate) async fn eventually(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !done() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
