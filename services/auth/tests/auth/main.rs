//! Integration tests of keel-auth: the service built over a real store (SQLite, and PostgreSQL when
//! `DATABASE_URL` is set), driven through its REST router and its gRPC server, with test doubles of
//! its peers (identity, authz, audit) and a clock the tests move.

mod doubles;
mod grpc;
mod keys;
mod login;
mod openapi;
mod refresh;
mod sessions;
mod support;
