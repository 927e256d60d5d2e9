//! Building the core services of one process and the hosts that serve them.
//!
//! Why a module of its own: the all-in-one process hosts all four, and tests host a subset per
//! kernel (to stop one service while the others go on) with exactly the same wiring.

use std::sync::Arc;

use keel_audit::{AuditDeps, AuditService};
use keel_auth::{AuthDeps, AuthService};
use keel_authz::{AuthzDeps, AuthzService};
use keel_identity::{IdentityDeps, IdentityService};
use keel_kernel::{Component, KernelHandle};
use keel_service::{HostedService, ServiceHost, SharedRuntime, listen_config};

use crate::PlatformError;

/// One of the core services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreService {
    /// Users and credentials.
    Identity,
    /// Login, sessions, signing keys.
    Auth,
    /// Roles and permissions.
    Authz,
    /// The audit log.
    Audit,
}

impl CoreService {
    /// All four.
    pub const ALL: [CoreService; 4] = [Self::Audit, Self::Authz, Self::Identity, Self::Auth];
}

/// The core services built in one process, with the hosts serving them.
#[derive(Default)]
pub struct CoreServices {
    /// The identity service, when hosted here.
    pub identity: Option<Arc<IdentityService>>,
    /// The auth service, when hosted here.
    pub auth: Option<Arc<AuthService>>,
    /// The authz service, when hosted here.
    pub authz: Option<Arc<AuthzService>>,
    /// The audit service, when hosted here.
    pub audit: Option<Arc<AuditService>>,
    /// Their hosts, as kernel components.
    pub hosts: Vec<Arc<ServiceHost>>,
}

impl std::fmt::Debug for CoreServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreServices")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

impl CoreServices {
    /// Builds `which` services (stores connected and migrated) and binds their listeners; their
    /// background work (outbox relays, event subscriptions) is spawned on `kernel`.
    pub async fn build(
        kernel: &KernelHandle,
        shared: &SharedRuntime,
        which: &[CoreService],
    ) -> Result<Self, PlatformError> {
        let mut core = Self::build_stores(kernel, shared, which).await?;
        if let Some(audit) = core.audit.clone() {
            let grpc = audit.grpc_service();
            core.host(
                kernel,
                "audit",
                audit.router(),
                Box::new(move |r| r.add_service(grpc)),
            )
            .await?;
            audit.start_background(kernel);
        }
        if let Some(authz) = core.authz.clone() {
            let grpc = authz.grpc_service();
            core.host(
                kernel,
                "authz",
                authz.router(),
                Box::new(move |r| r.add_service(grpc)),
            )
            .await?;
            authz.start_background(kernel);
        }
        if let Some(identity) = core.identity.clone() {
            let grpc = identity.grpc_service();
            core.host(
                kernel,
                "identity",
                identity.router(),
                Box::new(move |r| r.add_service(grpc)),
            )
            .await?;
            identity.start_background(kernel);
        }
        if let Some(auth) = core.auth.clone() {
            let grpc = auth.grpc_service();
            core.host(
                kernel,
                "auth",
                auth.router(),
                Box::new(move |r| r.add_service(grpc)),
            )
            .await?;
            auth.start_background(kernel);
        }
        Ok(core)
    }

    /// Builds `which` services only: stores connected and migrated, nothing served or spawned
    /// (what `platformctl seed` needs).
    pub async fn build_stores(
        kernel: &KernelHandle,
        shared: &SharedRuntime,
        which: &[CoreService],
    ) -> Result<Self, PlatformError> {
        let mut core = Self::default();
        for service in which {
            match service {
                CoreService::Identity => {
                    let deps = IdentityDeps::new(
                        shared.clients.clone(),
                        shared.events.clone(),
                        shared.verifier.clone(),
                    );
                    let built = IdentityService::build(kernel, deps)
                        .await
                        .map_err(service_error("identity"))?;
                    core.identity = Some(Arc::new(built));
                }
                CoreService::Auth => {
                    let deps = AuthDeps::new(shared.clients.clone(), shared.events.clone());
                    let built = AuthService::build(kernel, deps)
                        .await
                        .map_err(service_error("auth"))?;
                    core.auth = Some(Arc::new(built));
                }
                CoreService::Authz => {
                    let deps = AuthzDeps {
                        clients: shared.clients.clone(),
                        events: shared.events.clone(),
                        verifier: shared.verifier.clone(),
                    };
                    let built = AuthzService::build(kernel, deps)
                        .await
                        .map_err(service_error("authz"))?;
                    core.authz = Some(Arc::new(built));
                }
                CoreService::Audit => {
                    let deps = AuditDeps {
                        clients: shared.clients.clone(),
                        verifier: shared.verifier.clone(),
                    };
                    let built = AuditService::build(kernel, deps)
                        .await
                        .map_err(service_error("audit"))?;
                    core.audit = Some(Arc::new(built));
                }
            }
        }
        Ok(core)
    }

    async fn host(
        &mut self,
        kernel: &KernelHandle,
        name: &str,
        rest: axum::Router,
        grpc: keel_service::GrpcRoutes,
    ) -> Result<(), PlatformError> {
        let listen = listen_config(kernel.config(), name)?;
        let hosted = HostedService {
            name: name.to_owned(),
            version: VERSION.to_owned(),
            rest,
            grpc,
        };
        self.hosts
            .push(Arc::new(ServiceHost::bind(kernel, &listen, hosted).await?));
        Ok(())
    }

    /// The hosts as kernel components, in start order.
    pub fn components(&self) -> Vec<Arc<dyn Component>> {
        self.hosts
            .iter()
            .map(|host| host.clone() as Arc<dyn Component>)
            .collect()
    }
}

fn service_error<E>(service: &'static str) -> impl Fn(E) -> PlatformError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |error| PlatformError::Service {
        service,
        source: Box::new(error),
    }
}
