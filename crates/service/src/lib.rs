//! Hosting of one Keel core service: what every service process does the same way.
//!
//! Why this crate exists: identity, auth, authz and audit (and later the module host) each serve
//! REST and gRPC, answer `/healthz`, `/ready` and `/metrics`, run behind the same HTTP middleware
//! stack, register with the service registry on start and leave it on shutdown. Writing that once
//! keeps the four services identical in how they are operated, and lets the all-in-one `platform`
//! process host all of them side by side exactly as separate binaries would.
//!
//! A service crate hands over a [`HostedService`] (its name, REST router and gRPC services); the
//! [`ServiceHost`] binds the listeners named by the `listen.<service>` configuration
//! ([`ListenConfig`]) and is a kernel [`Component`]: `start` serves and registers, `stop`
//! deregisters. [`SharedRuntime`] is what the services of one process share: the event bus, the
//! clients of their peers behind the permission cache, and the access-token verifier.
//! [`audit_unaudited_mutations`] records the authenticated changes no handler audited.

mod host;
mod http_component;
mod listen;
mod mutation_audit;
mod runtime;
mod standalone;

pub use host::{GrpcRoutes, HostError, HostedService, ServiceHost};
pub use http_component::HttpComponent;
pub use listen::{ListenConfig, listen_config};
pub use mutation_audit::{MutationAuditor, audit_unaudited_mutations};
pub use runtime::{RuntimeError, SharedRuntime};
pub use standalone::{BoxError, BuildService, EVENT_BUS_CAPACITY, run_standalone};
