//! Per-service database connections for Keel: one store per service, its migrations, its
//! readiness check and its query metrics.
//!
//! Why this crate exists: every Keel service owns its data and no other service may reach it by
//! accident (DESIGN §1, §3). The same code must run on the embedded default (a SQLite file per
//! service) and in production (a PostgreSQL schema per service on a shared server), with the
//! same pool settings, the same migration runner, the same `/ready` check and the same metrics.
//! Services call [`Database::connect`] and get a [`ServiceDatabase`] whose unqualified table
//! names resolve to their own store only; they never build connection URLs or pools themselves.
//!
//! # Where the data goes
//!
//! | `database.url` | store of service `identity` |
//! | --- | --- |
//! | `sqlite:data` | the file `data/identity.db` (directory and file created if missing, WAL mode) |
//! | `postgres://user:pw@host/db` | the schema `<schema_prefix>identity`, e.g. `keel_identity`, created if missing |
//!
//! On PostgreSQL every pooled connection is opened with `search_path` set to the service's
//! schema alone (a start-up parameter, so it holds on every connection, reconnections included,
//! and survives `RESET`). Tables created by the service's migrations, and the `seaql_migrations`
//! bookkeeping table, therefore live in that schema, and another service's tables cannot be
//! named without qualifying them. (This is isolation by name, not by privilege: with one database
//! role for all services a qualified name still reaches another schema. Give each service its own
//! role through `database.services.<name>.url` where that matters.)
//!
//! A service name is lowercase ASCII letters, digits, `_` and `-`, starting with a letter; `-`
//! becomes `_` in the file and schema name (`api-gateway` → `keel_api_gateway`).
//!
//! `database.pool` applies to every service; `database.services.<name>` may replace the URL and
//! the pool for one service. `connect_timeout_ms` bounds opening a connection at start-up and each
//! readiness check; `acquire_timeout_ms` bounds how long a query waits for a pooled connection;
//! `idle_timeout_secs` of 0 keeps idle connections open.
//!
//! # Observability
//!
//! Every query run through the connection (or a transaction on it) records its duration in the
//! histogram `keel_db_query_duration_seconds{service, outcome="ok"|"error"}`, counts failures in
//! `keel_db_query_errors_total{service}`, and emits a `debug` event (target `keel_db::query`;
//! `warn` when slower than one second) with the service, the operation, the elapsed time and the
//! statement text with its placeholders. Bound values are never logged, nor the text of a
//! statement that has none (it may hold inlined literals). sea-orm does not report
//! `execute_unprepared` statements nor failures to get a pooled connection to the callback these
//! come from, so those are not counted.
//!
//! Error messages ([`DbError`]) and readiness reasons never contain the password of the URL.
//!
//! # Use
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use keel_config::DatabaseConfig;
//! use keel_db::{Database, DbError, ServiceDatabase};
//! use keel_health::HealthRegistry;
//! use sea_orm_migration::MigratorTrait;
//!
//! async fn open_store<M: MigratorTrait>(
//!     config: &DatabaseConfig,
//!     health: &HealthRegistry,
//! ) -> Result<ServiceDatabase, DbError> {
//!     let db = Database::connect(config, "identity").await?;
//!     db.migrate::<M>().await?;
//!     health.register(Arc::new(db.readiness_check()));
//!     Ok(db)
//!     // then: `users::Entity::find().all(db.connection()).await`
//! }
//! ```

mod connect;
mod error;
mod health;
mod migrate;
mod name;
mod observe;
mod settings;

pub use connect::{Database, ServiceDatabase, StoreLocation};
pub use error::DbError;
pub use health::DatabaseCheck;
