//! The Keel audit service: an append-only, hash-chained log of security-relevant actions.
//!
//! Why this crate exists: who did what, when, from where, must be recorded by every service and
//! must be hard to rewrite afterwards (DESIGN §3, §4). Producers send records (through their
//! transactional outbox) over gRPC `Record`, in batches, retried freely: a record's `id` is its
//! idempotency key. This crate stores them in the `audit_log` table of its own store and gives
//! each one a place in a SHA-256 hash chain, so any change to a stored record, or a record taken
//! out of the middle, is found by [`verify_store`] / `VerifyChain` (`platformctl audit verify`).
//! Administrators read the log with `GET /api/v1/audit-logs` (`platform.audit.read`).
//!
//! Append-only holds at three levels: the code has no update or delete path; the database
//! refuses UPDATE, DELETE (and on PostgreSQL TRUNCATE) through triggers; on PostgreSQL those
//! privileges are revoked as well. The limits (an owner or superuser can drop a trigger; the end
//! of the log can be cut off undetected unless its head hash is kept elsewhere) are spelled out in
//! `docs/services/audit.md`.
//!
//! Hosting: [`AuditService::build`] opens and migrates the store; the host serves
//! [`AuditService::router`] and [`AuditService::grpc_service`] and calls
//! [`AuditService::start_background`]. [`AuditService::local_client`] is the in-process
//! [`AuditClient`] for the all-in-one process and tests.

mod chain;
mod cursor;
mod entity;
mod error;
mod grpc;
mod local;
mod metrics;
mod migration;
mod openapi;
mod record;
mod rest;
mod settings;
mod store;
mod watch;

use std::sync::Arc;

use keel_authn::{PermissionGuard, TokenVerifier};
use keel_clients::{AuditClient, ChainReport, ServiceClients};
use keel_db::Database;
use keel_kernel::KernelHandle;
use keel_proto::audit::v1::audit_service_server::AuditServiceServer;

pub use error::AuditError;
pub use grpc::GrpcAudit;
pub use local::LocalAuditClient;
pub use migration::Migrator;

use local::Audit;
use settings::AuditSettings;
use store::AuditStore;

/// The name of the service in the registry and of its store.
pub const SERVICE_NAME: &str = "audit";

/// What the audit service needs from the rest of the process.
pub struct AuditDeps {
    /// Peer clients; the REST API asks `authz` whether a caller holds `platform.audit.read`.
    pub clients: ServiceClients,
    /// Verifies the access tokens of REST callers.
    pub verifier: Arc<TokenVerifier>,
}

impl std::fmt::Debug for AuditDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditDeps").finish_non_exhaustive()
    }
}

/// The audit service, built and ready to be served.
pub struct AuditService {
    audit: Audit,
    store: AuditStore,
    settings: AuditSettings,
    verifier: Arc<TokenVerifier>,
    guard: PermissionGuard,
}

impl std::fmt::Debug for AuditService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AuditService {
    /// Reads the `audit` configuration section, opens the store (`Database::connect(..,
    /// "audit")`), applies its migrations and registers its readiness check on the kernel. On
    /// PostgreSQL, warns when the service's role could still UPDATE or DELETE the log.
    pub async fn build(kernel: &KernelHandle, deps: AuditDeps) -> Result<Self, AuditError> {
        let settings = AuditSettings::load(kernel.config())?;
        let store = open_store(kernel.config(), &settings).await?;
        kernel.health().register(Arc::new(store.readiness_check()));
        watch::warn_if_role_can_rewrite(&store).await;
        metrics::describe();
        Ok(Self {
            audit: Audit::new(store.clone()),
            store,
            settings,
            verifier: deps.verifier,
            guard: PermissionGuard::new(deps.clients.authz),
        })
    }

    /// The REST routes (`GET /api/v1/audit-logs`) and the service's OpenAPI document
    /// (`GET /api/v1/audit/openapi.json`, no token needed), without operational routes or
    /// middleware.
    pub fn router(&self) -> axum::Router {
        rest::router(self.audit.clone(), self.verifier.clone(), self.guard.clone())
    }

    /// The gRPC service (`keel.audit.v1.AuditService`) to add to the gRPC server.
    pub fn grpc_service(&self) -> AuditServiceServer<GrpcAudit> {
        AuditServiceServer::new(GrpcAudit::new(self.audit.clone()))
    }

    /// Starts the periodic chain verification (every `audit.verify_interval_secs`; none when 0)
    /// on the kernel, so tampering shows up in the logs and in `keel_audit_chain_intact` without
    /// anyone asking.
    pub fn start_background(&self, kernel: &KernelHandle) {
        watch::start_periodic_verification(kernel, self.store.clone(), self.settings.verify_interval_secs);
    }

    /// This service as an [`AuditClient`] called in process.
    pub fn local_client(&self) -> Arc<dyn AuditClient> {
        Arc::new(LocalAuditClient::new(self.audit.clone()))
    }
}

/// Verifies the hash chain of the audit store `config` points at, without a running service:
/// what `platformctl audit verify` does against the database. Needs only read access to the log:
/// the store is not migrated, and one without the `audit_log` table is an error. No deadline
/// applies, unlike `VerifyChain` over gRPC.
pub async fn verify_store(config: &keel_config::Config) -> Result<ChainReport, AuditError> {
    let settings = AuditSettings::load(config)?;
    let db = Database::connect(&config.kernel().database, SERVICE_NAME).await?;
    let store = AuditStore::new(db, settings.verify_page_size);
    let report = store.verify_chain().await;
    store.close().await;
    report
}

/// Connects and migrates the service's store.
async fn open_store(
    config: &keel_config::Config,
    settings: &AuditSettings,
) -> Result<AuditStore, AuditError> {
    let db = Database::connect(&config.kernel().database, SERVICE_NAME).await?;
    db.migrate::<Migrator>().await?;
    Ok(AuditStore::new(db, settings.verify_page_size))
}
