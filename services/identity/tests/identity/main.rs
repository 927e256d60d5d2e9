//! Integration tests of the identity service, each on SQLite and (with `DATABASE_URL`) on
//! PostgreSQL: REST and gRPC behaviour, what lands in the store, the outbox and the mail outbox.

mod support;

mod background;
mod credentials;
mod openapi;
mod profile;
mod registration;
mod reset;
mod validation;
mod verification;
