//! Integration tests of keel-audit, each scenario on SQLite and on PostgreSQL (the PostgreSQL
//! half needs `DATABASE_URL` and skips with a printed reason without it): appending and the hash
//! chain, idempotent re-sends, concurrent appenders, the append-only guards, tamper detection,
//! queries and cursor pages, the REST API with real tokens, its OpenAPI document, and the gRPC API
//! through keel-clients.

mod append;
mod append_only;
mod grpc;
mod keys;
mod openapi;
mod privileges;
mod query;
mod rest;
mod settings;
mod support;
