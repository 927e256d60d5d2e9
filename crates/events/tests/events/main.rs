//! Integration tests of keel-events: the in-process bus, and the outbox with its relay on SQLite
//! and on PostgreSQL. PostgreSQL tests need `DATABASE_URL` and skip (with a printed reason)
//! without it.

mod bus;
mod observability;
mod outbox;
mod replicas;
mod support;
