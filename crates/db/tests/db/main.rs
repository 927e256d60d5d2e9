//! Integration tests of keel-db: SQLite files, PostgreSQL schemas, migrations, readiness and
//! query observability. PostgreSQL tests need `DATABASE_URL` and skip (with a printed reason)
//! without it.

mod observability;
mod postgres;
mod readiness;
mod sqlite;
mod support;
