//! Opening a service's store: a SQLite file or a PostgreSQL schema, behind one sqlx pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbBackend, SqlxPostgresConnector, SqlxSqliteConnector};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use keel_config::DatabaseConfig;

use crate::error::Redactor;
use crate::settings::{Pool, Settings, Target};
use crate::{DbError, name, observe};

/// Opens per-service databases. See the [crate documentation](crate) for the rules.
#[derive(Debug, Clone, Copy, Default)]
pub struct Database;

/// Where one service's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file, `<directory>/<service>.db` (with `-` in the service name turned into `_`).
    SqliteFile(PathBuf),
    /// A PostgreSQL schema, `<schema_prefix><service>` (same mapping), that unqualified names
    /// resolve to.
    PostgresSchema(String),
}

/// One service's database: a pooled connection whose unqualified table names resolve to the
/// service's own file or schema, with query metrics attached. Cheap to clone (clones share the
/// pool).
#[derive(Clone)]
pub struct ServiceDatabase {
    pub(crate) service: Arc<str>,
    pub(crate) location: StoreLocation,
    pub(crate) connection: DatabaseConnection,
    pub(crate) pool: Pool,
    /// The sqlx pool under `connection` (PostgreSQL only): its connect options serve the
    /// readiness probe and the migration lock, which use connections of their own.
    pub(crate) pg_pool: Option<PgPool>,
    pub(crate) redactor: Redactor,
}

impl std::fmt::Debug for ServiceDatabase {
    /// Leaves out the connection: sqlx's connect options print the password in `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceDatabase")
            .field("service", &self.service)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens the store of `service`: creates the SQLite directory and file, or the PostgreSQL
    /// schema, if missing; builds the pool from `config.pool` or the service's override in
    /// `config.services`; attaches query metrics. The service name must be lowercase ASCII
    /// letters, digits, `_` or `-` (mapped to `_`), starting with a letter.
    ///
    /// Fails at once with the driver's reason when the server refuses the connection, and after
    /// `connect_timeout_ms` when it does not answer.
    pub async fn connect(config: &DatabaseConfig, service: &str) -> Result<ServiceDatabase, DbError> {
        let store = name::store_name(service)?;
        let Settings {
            target,
            pool,
            redactor,
        } = Settings::resolve(config, service, &store)?;
        let (location, mut connection, pg_pool) = match target {
            Target::Sqlite { file } => {
                let connection = open_sqlite(&file, &pool, service).await?;
                (StoreLocation::SqliteFile(file), connection, None)
            }
            Target::Postgres { url, schema } => {
                let err = |e: sqlx::Error| connect_error(service, &redactor, e);
                let options = postgres_options(&url, &schema, service).map_err(err)?;
                let pg_pool = open_postgres(options, &schema, &pool, service, &redactor).await?;
                let connection = SqlxPostgresConnector::from_sqlx_postgres_pool(pg_pool.clone());
                (StoreLocation::PostgresSchema(schema), connection, Some(pg_pool))
            }
        };
        connection.set_metric_callback(observe::observer(service));
        tracing::debug!(service, ?location, "database connected");
        Ok(ServiceDatabase {
            service: service.into(),
            location,
            connection,
            pool,
            pg_pool,
            redactor,
        })
    }
}

impl ServiceDatabase {
    /// The pooled connection to run sea-orm queries on (`Entity::find().all(db.connection())`).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// The service name this database was opened for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Where the data lives.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// PostgreSQL or SQLite, for the rare query that must differ.
    pub fn backend(&self) -> DbBackend {
        match self.location {
            StoreLocation::SqliteFile(_) => DbBackend::Sqlite,
            StoreLocation::PostgresSchema(_) => DbBackend::Postgres,
        }
    }

    /// Closes the pool, waiting for connections in use to be returned. Clones share the pool, so
    /// they are closed too.
    pub async fn close(&self) {
        if let Err(error) = self.connection.close_by_ref().await {
            tracing::warn!(service = %self.service, error = %self.redactor.clean(error), "closing the database pool failed");
        }
    }
}

pub(crate) fn connect_error(service: &str, redactor: &Redactor, error: impl std::fmt::Display) -> DbError {
    DbError::Connect {
        service: service.to_owned(),
        reason: redactor.clean(error),
    }
}

/// `url` plus: `search_path` set to the schema alone at connection start-up, so every pooled
/// connection (and every reconnection) resolves unqualified names there; an application name for
/// `pg_stat_activity`; sqlx's own statement log off (we emit one event per query instead).
fn postgres_options(url: &str, schema: &str, service: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let mut options: PgConnectOptions = url.parse()?;
    // The schema name is a checked plain identifier (lowercase letters, digits, `_`), so it
    // needs no quoting inside the `-c search_path=…` start-up option.
    options = options.options([("search_path", schema)]);
    if options.get_application_name().is_none() {
        options = options.application_name(&format!("keel-{service}"));
    }
    Ok(options.disable_statement_logging())
}

/// Creates the schema if missing over one short-lived connection, checks the server honours the
/// start-up `search_path`, then builds the pool.
async fn open_postgres(
    options: PgConnectOptions,
    schema: &str,
    pool: &Pool,
    service: &str,
    redactor: &Redactor,
) -> Result<PgPool, DbError> {
    let err = |e: sqlx::Error| connect_error(service, redactor, e);
    // One attempt bounded by the connect timeout: a refused connection is reported at once with
    // its cause, where the pool would retry until its acquire timeout and report only "timed out".
    let mut bootstrap = tokio::time::timeout(pool.connect_timeout, options.connect())
        .await
        .map_err(|_| {
            connect_error(
                service,
                redactor,
                format!("no connection within {} ms", pool.connect_timeout.as_millis()),
            )
        })?
        .map_err(err)?;
    ensure_schema(&mut bootstrap, schema).await.map_err(err)?;
    let current: Option<String> = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&mut bootstrap)
        .await
        .map_err(err)?;
    // Closing is a courtesy to the server; the schema is in place whatever happens here.
    let _ = bootstrap.close().await;
    if current.as_deref() != Some(schema) {
        return Err(connect_error(
            service,
            redactor,
            format!(
                "the server ignored the start-up `search_path` (current schema is {current:?}, expected {schema:?}); \
                 a connection pooler in front of PostgreSQL may be dropping the `options` parameter"
            ),
        ));
    }
    PgPoolOptions::new()
        .max_connections(pool.max_connections)
        .min_connections(pool.min_connections)
        .acquire_timeout(pool.acquire_timeout)
        .idle_timeout(pool.idle_timeout)
        .connect_with(options)
        .await
        .map_err(err)
}

/// Creates the schema unless it exists. Checking first lets a role without `CREATE` on the
/// database use a schema an operator made for it; a concurrent creation by another instance of
/// the service (unique violation on the catalogue) counts as success.
async fn ensure_schema(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_namespace WHERE nspname = $1")
        .bind(schema)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        return Ok(());
    }
    let create = format!(r#"CREATE SCHEMA IF NOT EXISTS "{schema}""#);
    match sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut *conn).await {
        Ok(_) => Ok(()),
        Err(error) if error.as_database_error().and_then(|e| e.code()).as_deref() == Some("23505") => Ok(()),
        Err(error) => Err(error),
    }
}

/// Opens (creating if needed) the service's SQLite file in write-ahead-log mode, through a pool
/// of ONE connection whatever `database.pool.max_connections` says.
///
/// Why one: SQLite lets one writer in at a time, and a writer that finds the database locked
/// waits in SQLite's busy handler, which sleeps and retries with growing pauses. Under a burst of
/// concurrent writes (32 refresh-token rotations at once) that is unfair: some writers keep losing
/// the race until `busy_timeout` runs out and the request fails with "database is locked" (seen in
/// perf/run.sh). With one connection, statements queue in the pool instead, first come first
/// served, each waiting at most `acquire_timeout` for its turn. Reads lose their concurrency,
/// which costs little: every statement of a Keel service is short, and a deployment that needs
/// concurrent writers runs PostgreSQL. The rule this imposes on code: never use the pool (`&db`)
/// while holding a transaction of the same store; do the I/O before `begin` or through the
/// transaction.
async fn open_sqlite(file: &Path, pool: &Pool, service: &str) -> Result<DatabaseConnection, DbError> {
    if let Some(directory) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        let owned = directory.to_path_buf();
        let created = tokio::task::spawn_blocking(move || std::fs::create_dir_all(&owned)).await;
        let reason = match created {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(join) => Some(join.to_string()),
        };
        if let Some(reason) = reason {
            return Err(DbError::Storage {
                service: service.to_owned(),
                path: directory.to_path_buf(),
                reason,
            });
        }
    }
    let options = SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(pool.acquire_timeout)
        .disable_statement_logging();
    let sqlite_pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(pool.min_connections.min(1))
        .acquire_timeout(pool.acquire_timeout)
        .idle_timeout(pool.idle_timeout)
        .connect_with(options)
        .await
        .map_err(|e| connect_error(service, &Redactor::default(), format!("{}: {e}", file.display())))?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(sqlite_pool))
}
