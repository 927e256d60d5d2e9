//! Service discovery: how Keel services find each other's instances.
//!
//! Why this crate exists: the gateway routes to, and every typed client calls, services that may
//! run as one process (all-in-one) or as many replicas on many hosts (distributed). Callers must
//! not care which, nor which discovery system the deployment uses, so they see one trait,
//! [`ServiceRegistry`], and the backend is chosen by `registry.kind` in configuration through
//! [`build_registry`].
//!
//! The life of an instance:
//! - on start, a service [registers](ServiceRegistry::register) a [`ServiceInstance`] (id, host,
//!   named ports, version, metadata, health endpoint) and keeps the [`Registration`];
//! - while it runs, the backend keeps it in the healthy set only as long as it answers (a heartbeat
//!   or a health check, depending on the backend); one that stops answering leaves the set within
//!   the backend's configured interval;
//! - on graceful shutdown it [deregisters](ServiceRegistry::deregister).
//!
//! Callers either [discover](ServiceRegistry::discover) the healthy instances once, or
//! [watch](ServiceRegistry::watch) them: the registry pushes every change, so a load balancer reads
//! the current set on each request without asking the backend.
//!
//! Backends, chosen by `registry.kind` (details and guarantees in `docs/discovery.md`):
//! - `static` ([`StaticRegistry`], the embedded default): instances from configuration plus
//!   in-process registrations, optionally health-checked by the process itself;
//! - `etcd` ([`EtcdRegistry`]): instances as keys under leases their process keeps alive, followed
//!   with etcd watches;
//! - `consul` ([`ConsulRegistry`]): services of the local Consul agent with an HTTP or TTL check,
//!   found through the health API with blocking queries;
//! - `kubernetes` ([`KubernetesRegistry`]): the ready endpoints of a Service's EndpointSlices;
//!   Kubernetes owns membership, so registering writes nothing.
//!
//! The remote backends connect lazily: building one never blocks or fails for an unreachable
//! server; the first call reports it as [`RegistryError::Unavailable`]. Each keeps its background
//! work (lease keep-alives, TTL-check heartbeats, one follower per watched service) in tasks that
//! stop when the registry is dropped.
//!
//! ```
//! use keel_registry::{ServiceInstance, ServiceRegistry, StaticRegistry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), keel_registry::RegistryError> {
//! let registry = StaticRegistry::new();
//! let mut audit = registry.watch("audit").await?;
//!
//! let me = ServiceInstance::new("audit", "audit-1", "127.0.0.1")
//!     .with_port(ServiceInstance::HTTP, 8084)
//!     .with_port(ServiceInstance::GRPC, 9084)
//!     .with_version(env!("CARGO_PKG_VERSION"))
//!     .with_health_endpoint("/ready");
//! let registration = registry.register(me).await?;
//!
//! audit.changed().await.ok(); // woken by the registration, no polling
//! let grpc = audit.borrow().first().and_then(|i| i.endpoint(ServiceInstance::GRPC));
//! assert_eq!(grpc.as_deref(), Some("127.0.0.1:9084"));
//!
//! registry.deregister(&registration.service, &registration.instance_id).await?;
//! assert!(registry.discover("audit").await?.is_empty());
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use keel_config::{RegistryConfig, RegistryKind};

mod address;
mod consul;
mod error;
mod etcd;
mod health;
mod instance;
mod json_lines;
mod kubernetes;
mod remote;
mod static_backend;

pub use consul::ConsulRegistry;
pub use error::RegistryError;
pub use etcd::EtcdRegistry;
pub use health::{HealthCheckSettings, HttpProbe, Probe};
pub use instance::ServiceInstance;
pub use kubernetes::{KubernetesRegistry, PodEnvironment};
pub use static_backend::StaticRegistry;

/// A snapshot of a service's healthy instances. Shared, so handing it to many readers copies a
/// pointer, not the instances.
pub type Instances = Arc<[ServiceInstance]>;

/// The receiving end of [`ServiceRegistry::watch`]: always holds the service's latest healthy
/// instances.
///
/// Why a [`tokio::sync::watch`] channel of [`Instances`] rather than a stream of events: a load
/// balancer needs the *current* set, not every step that led to it. The channel keeps only the
/// latest value, so a slow reader never lags or makes the registry buffer, and intermediate states
/// it missed do not matter. [`borrow`](tokio::sync::watch::Receiver::borrow) reads the set
/// synchronously, cheaply enough for every request, and
/// [`changed`](tokio::sync::watch::Receiver::changed) waits for the next change without polling;
/// cloning the `Arc` out of the borrow releases the channel at once. `changed` fails once the
/// registry that fed it is gone. A caller wanting a `Stream` can wrap the receiver
/// (`tokio_stream::wrappers::WatchStream`).
pub type InstanceWatch = tokio::sync::watch::Receiver<Instances>;

/// Proof of a registration: what to pass to [`ServiceRegistry::deregister`] on shutdown.
///
/// Backends that keep a registration alive (an etcd lease, a Consul TTL check) do it themselves
/// until the instance is deregistered; dropping this value does not deregister (async work cannot
/// run in `Drop`), so shut down gracefully.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use = "keep the registration to deregister the instance on shutdown"]
pub struct Registration {
    /// The service registered.
    pub service: String,
    /// The instance's id within that service.
    pub instance_id: String,
}

/// Where services register and are found. One per process, shared as `Arc<dyn ServiceRegistry>`.
///
/// Contract for every backend:
/// - `register` with an id the backend already knows for that service replaces that instance;
/// - `deregister` of an unknown service or instance succeeds (shutdown must not fail because an
///   expired lease already removed the instance);
/// - `discover` and `watch` show *healthy* instances only, in a stable order; a service nobody
///   registered is an empty list, not an error, because in a starting system a peer may simply not
///   be up yet, and a watcher of it is told when it comes.
#[async_trait]
pub trait ServiceRegistry: Send + Sync {
    /// The backend's name as written in `registry.kind`, e.g. `static`; for logs and errors.
    fn name(&self) -> &'static str;

    /// Makes an instance discoverable. Fails with [`RegistryError::InvalidInstance`] when the
    /// instance lacks a service name, id, valid host or port, or has a health endpoint that is not
    /// a path on an `http` port.
    async fn register(&self, instance: ServiceInstance) -> Result<Registration, RegistryError>;

    /// Removes an instance; watchers of its service are told.
    async fn deregister(&self, service: &str, instance_id: &str) -> Result<(), RegistryError>;

    /// The healthy instances of `service` now; empty when there are none.
    async fn discover(&self, service: &str) -> Result<Vec<ServiceInstance>, RegistryError>;

    /// The healthy instances of `service`, now and after every change; see [`InstanceWatch`]. The
    /// receiver starts with the current set (marked as seen).
    async fn watch(&self, service: &str) -> Result<InstanceWatch, RegistryError>;
}

/// The backend `config.kind` names, built from `config`.
///
/// The static backend is returned without health checks, whatever `registry.health_check` says
/// (so this needs no Tokio runtime): [`start_registry`] starts them, or build a
/// [`StaticRegistry`] and call [`StaticRegistry::spawn_health_checks`]. The Kubernetes backend takes its
/// missing settings from this process's pod ([`PodEnvironment::from_process`]).
///
/// Fails with the backend's configuration error ([`RegistryError::InvalidAddress`],
/// [`RegistryError::DuplicateInstance`], [`RegistryError::InvalidConfig`]); never contacts a server.
pub fn build_registry(config: &RegistryConfig) -> Result<Arc<dyn ServiceRegistry>, RegistryError> {
    // No wildcard arm: a new kind must be wired here.
    match config.kind {
        RegistryKind::Static => Ok(Arc::new(StaticRegistry::from_config(config)?)),
        RegistryKind::Etcd => Ok(Arc::new(EtcdRegistry::from_config(config)?)),
        RegistryKind::Consul => Ok(Arc::new(ConsulRegistry::from_config(config)?)),
        RegistryKind::Kubernetes => Ok(Arc::new(KubernetesRegistry::from_config(config)?)),
    }
}

/// [`build_registry`], and for the static backend with `registry.health_check.interval_ms` set,
/// its health checks started ([`StaticRegistry::spawn_health_checks`] with an [`HttpProbe`]) on
/// the current Tokio runtime; they end when the registry is dropped. What a process's kernel uses.
///
/// Fails as [`build_registry`] does.
///
/// # Panics
///
/// Outside a Tokio runtime, when health checks are on.
pub fn start_registry(config: &RegistryConfig) -> Result<Arc<dyn ServiceRegistry>, RegistryError> {
    let checks = &config.health_check;
    match config.kind {
        RegistryKind::Static if checks.interval_ms > 0 => {
            let registry = StaticRegistry::from_config(config)?;
            let settings = HealthCheckSettings {
                interval: std::time::Duration::from_millis(checks.interval_ms),
                timeout: std::time::Duration::from_millis(checks.timeout_ms),
            };
            // Detached: the task ends by itself once the registry is dropped.
            drop(registry.spawn_health_checks(Arc::new(HttpProbe::new()), settings));
            Ok(Arc::new(registry))
        }
        _ => build_registry(config),
    }
}
