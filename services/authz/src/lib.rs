//! The authz service: who may do what.
//!
//! Why this crate exists: Keel's authorisation is role-based (DESIGN §3, §4). This service owns
//! the permission catalogue (core `platform.*` permissions plus those every module declares),
//! roles, the permissions each role grants and the roles each user holds, in its own store. It
//! answers permission checks (`HasPermission`, `GetUserPermissions` over gRPC, or in-process
//! through [`AuthzService::local_client`]), serves the role management REST API of plan story 2.4,
//! seeds the system roles, and gives new users their default roles.
//!
//! Every change (role created, updated or deleted; permissions granted or revoked; roles assigned
//! or revoked) is written in one transaction together with its event (`platform.role.*`,
//! `platform.permission.*`) and its audit record (`authz.role.*`, `authz.permission.*`) through
//! the transactional outbox of `keel-events`; the relay delivers them after commit, so callers'
//! permission caches are invalidated before the next request and nothing is lost while the bus or
//! the audit service is down. A change that fails writes nothing.
//!
//! The host builds it with [`AuthzService::build`] and mounts [`AuthzService::router`] and
//! [`AuthzService::grpc_service`], then calls [`AuthzService::start_background`]. See
//! `docs/services/authz.md` for the catalogue, seeded roles, API, events, audit and caching.

mod cache;
mod catalogue;
mod engine;
mod error;
mod grpc;
mod local;
mod names;
mod rest;
mod service;
mod settings;
mod store;
mod subscriptions;

pub use engine::SeedReport;
pub use error::AuthzError;
pub use service::{AuthzDeps, AuthzService};

/// The service's name: its registry entry and its store.
pub const SERVICE_NAME: &str = "authz";
