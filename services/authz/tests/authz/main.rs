//! Integration tests of the authz service, each run on SQLite and (with `DATABASE_URL`) on
//! PostgreSQL: the catalogue, seeding, roles, grants, assignments, effective permissions, the
//! events and audit records every change leaves in the outbox, default roles from user events,
//! the REST and gRPC edges and the OpenAPI document.

mod assignments;
mod catalogue;
mod events;
mod grants;
mod grpc;
mod openapi;
mod rest;
mod roles;
mod seeding;
mod support;
