//! Typed clients of Keel's core services.
//!
//! Why this crate exists: a caller depends on *what* a peer service does, never on how it is reached
//! or where its data lives (no service reads another's database). Each core service has one trait
//! here ([`IdentityClient`], [`AuthClient`], [`AuthzClient`], [`AuditClient`]) in domain types, and a
//! gRPC implementation with deadlines, retries for idempotent calls and a circuit breaker, found
//! through the service registry. Tests and the all-in-one process can substitute any of them.
//!
//! Errors: every call fails with a [`ServiceError`], the one vocabulary of failures shared by the
//! gRPC wire (status codes) and the REST edge (problem+json), so a peer's "not found" or
//! "validation failed" reaches the end user unchanged and a peer being down is a 503.
//!
//! What is here:
//! - the traits and their domain types;
//! - [`wire`]: [`wire::to_status`] / [`wire::from_status`] (field violations as
//!   `google.rpc.BadRequest`, retry delays as `google.rpc.RetryInfo`), timestamps, request origins;
//!   and `From`/`TryFrom` between every domain type and its protobuf message, for servers and
//!   clients alike;
//! - [`GrpcIdentityClient`], [`GrpcAuthClient`], [`GrpcAuthzClient`], [`GrpcAuditClient`] and
//!   [`ServiceClients::connect`]: discovery through the registry (services `identity`, `auth`,
//!   `authz`, `audit`, port `grpc`), balancing over healthy instances with ejection of unreachable
//!   ones (`keel-balancer`), the deadline and retries of
//!   a [`CallPolicy`], and a circuit breaker per client;
//! - [`CachedAuthzClient`]: permission checks answered from a per-user cache, invalidated by the
//!   caller's own writes and by [`CachedAuthzClient::invalidate_user`] /
//!   [`CachedAuthzClient::invalidate_all`].
//!
//! Wiring a process:
//!
//! ```no_run
//! # use std::{sync::Arc, time::Duration};
//! # fn wire(registry: Arc<dyn keel_registry::ServiceRegistry>, grpc: &keel_config::GrpcConfig) {
//! use keel_clients::{CachedAuthzClient, ServiceClients};
//!
//! let mut clients = ServiceClients::connect(registry, grpc);
//! let authz = Arc::new(CachedAuthzClient::new(clients.authz.clone(), Duration::from_secs(30)));
//! clients.authz = authz.clone(); // keep `authz` to invalidate it from role/permission events
//! # }
//! ```
//!
//! See `docs/clients.md` for the behaviour in one page.

mod audit;
mod auth;
mod authz;
mod cache;
mod convert;
mod error;
mod grpc;
mod identity;
mod origin;
pub mod wire;

pub use audit::{AuditClient, AuditQuery, AuditRecord, ChainReport, StoredAuditRecord};
pub use auth::{AuthClient, Session, TokenInfo, TokenPair};
pub use authz::{AuthzClient, NewRole, Permission, Role, RoleChanges, RoleSelector};
pub use cache::CachedAuthzClient;
pub use error::{FieldViolation, ServiceError};
pub use grpc::{CallPolicy, GrpcAuditClient, GrpcAuthClient, GrpcAuthzClient, GrpcIdentityClient};
pub use identity::{CredentialsVerdict, IdentityClient, NewUser, User, UserChanges};
pub use origin::ClientOrigin;

use serde::Serialize;
use uuid::Uuid;

/// Who caused a call, carried to the peer for its audit records: the acting user and the original
/// HTTP client's address and user agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The authenticated user acting; `None` when anonymous.
    pub actor_id: Option<Uuid>,
    /// The client's IP address as the edge saw it.
    pub ip: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

/// One page of a cursor-paginated list (its OpenAPI schema is `Page_<T>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The cursor of the next page (pass it as `cursor`); `null` on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Page size and position of a list request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Items per page, 1..=100; `None` means the default (20).
    pub limit: Option<u32>,
    /// The opaque cursor of a previous page; `None` for the first.
    pub cursor: Option<String>,
}

use std::sync::Arc;

/// The clients of every core service, as one process's services and modules receive them.
#[derive(Clone)]
pub struct ServiceClients {
    /// The identity service.
    pub identity: Arc<dyn IdentityClient>,
    /// The auth service.
    pub auth: Arc<dyn AuthClient>,
    /// The authz service (cached in production wiring).
    pub authz: Arc<dyn AuthzClient>,
    /// The audit service.
    pub audit: Arc<dyn AuditClient>,
}

impl std::fmt::Debug for ServiceClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClients").finish_non_exhaustive()
    }
}
