//! The Keel platform process: the all-in-one mode and, later, the module host.
//!
//! Why this crate exists: the README's run command must bring the whole platform up with embedded
//! defaults, and a deployment must be able to run the same code as separate processes. This crate
//! composes a process from the kernel and the components it runs; `main.rs` only parses the
//! command line and calls it. The shape follows `Application::build` → `address` →
//! `run_until_stopped`, so tests can start a real platform on a free port.
//!
//! The all-in-one process runs, in one kernel:
//! - the four core services (identity, auth, authz, audit), each on its own loopback REST and gRPC
//!   ports (`listen.<service>`, free ports by default), registered in the in-process registry and
//!   talking to each other over gRPC exactly as when deployed apart ([`CoreServices`]);
//! - one in-process event bus shared by their outboxes and subscriptions;
//! - the API gateway on the public port (`http.host`:`http.port`, 8080), proxying DESIGN §9's
//!   routes to the services found in the registry, beside `/healthz`, `/ready` and `/metrics`;
//! - seeding of roles and the administrator at start when `platform.seed_on_start` is set (the
//!   development default), see [`seed`];
//! - the platform's own store (the module host's database), checked by `/ready`.

mod core;
pub mod seed;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use keel_config::Config;
use keel_db::Database;
use keel_events::InProcessBus;
use keel_gateway::{EdgeAuth, Gateway, GatewayConfig};
use keel_http::{HttpServer, Stack, ops_router};
use keel_kernel::{Component, ComponentError, Kernel, KernelBuilder, KernelError, KernelHandle};
use keel_service::{EVENT_BUS_CAPACITY, HttpComponent, SharedRuntime};
use serde::Deserialize;

pub use crate::core::{CoreService, CoreServices};

/// Name of the platform's own store (the module host's database).
const PLATFORM_STORE: &str = "platform";

/// Why the platform could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The kernel could not be built or a component failed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// The HTTP server could not bind.
    #[error(transparent)]
    Http(#[from] keel_http::HttpError),
    /// The platform database could not be opened.
    #[error(transparent)]
    Database(#[from] keel_db::DbError),
    /// A setting is missing or invalid.
    #[error(transparent)]
    Config(#[from] keel_config::ConfigError),
    /// The shared runtime (clients, verifier, event subscriptions) could not be built.
    #[error(transparent)]
    Runtime(#[from] keel_service::RuntimeError),
    /// A service's listeners could not be bound.
    #[error(transparent)]
    Host(#[from] keel_service::HostError),
    /// The gateway's configuration is invalid.
    #[error(transparent)]
    Gateway(#[from] keel_gateway::GatewayError),
    /// A core service could not be built.
    #[error("{service} service: {source}")]
    Service {
        /// Which.
        service: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The `platform` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSettings {
    /// Seed roles and the administrator at start (development default; `platformctl seed` otherwise).
    pub seed_on_start: bool,
}

/// A platform process, built and bound but not yet serving.
pub struct Application {
    kernel: Kernel,
    address: SocketAddr,
    components: Vec<Arc<dyn Component>>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Builds the process from `config`, installing process-wide telemetry.
    pub async fn build(config: Config) -> Result<Self, PlatformError> {
        Self::build_with(Kernel::builder(config)).await
    }

    /// Builds the process from a prepared kernel builder (tests replace parts of the kernel).
    pub async fn build_with(builder: KernelBuilder) -> Result<Self, PlatformError> {
        let kernel = builder.build()?;
        let handle = kernel.handle();
        let config = handle.config().clone();
        let settings: PlatformSettings = config.section("platform")?;
        let kernel_config = config.kernel();

        let database = Database::connect(&kernel_config.database, PLATFORM_STORE).await?;
        handle.health().register(Arc::new(database.readiness_check()));

        let shared = SharedRuntime::new(&handle, Arc::new(InProcessBus::new(EVENT_BUS_CAPACITY)))?;
        shared.spawn_permission_invalidation(&handle).await?;
        let core = CoreServices::build(&handle, &shared, &CoreService::ALL).await?;

        let gateway_config = GatewayConfig::from_config(&config)?;
        let limits = gateway_config.connection_limits(&kernel_config.http);
        let serving_threads = gateway_config.serving_threads();
        let auth = EdgeAuth::new(shared.verifier.clone(), shared.clients.authz.clone());
        let limiter = keel_gateway::configured_rate_limiter(&config)?;
        let gateway = Gateway::new(gateway_config, handle.registry().clone(), auth, Some(limiter)).await?;
        handle.health().register(gateway.readiness_check());
        handle.spawn(
            "gateway-reload-on-sighup",
            keel_gateway::reload_on_hangup(gateway.clone(), handle.shutdown_token()),
        );
        let router = gateway
            .router()
            .merge(ops_router(handle.health().clone(), handle.metrics().clone()));
        // The gateway limits bodies per route (gateway.body_limit_bytes and route overrides), and
        // the services it proxies compress their own responses.
        let router = Stack::new(kernel_config.http.clone(), handle.error_bus().clone())
            .without_body_limit()
            .without_compression()
            .apply(router);
        let server = HttpServer::bind(SocketAddr::new(kernel_config.http.host, kernel_config.http.port))
            .await?
            .with_limits(limits)
            .with_worker_threads(serving_threads)
            .with_front(gateway.http1_front(&kernel_config.http, keel_http::OPS_PATHS));
        let address = server.local_addr();

        let mut components = core.components();
        if settings.seed_on_start {
            components.push(Arc::new(Seeder { core: Arc::new(core) }));
        }
        components.push(Arc::new(HttpComponent::new(
            "gateway-http",
            server,
            router,
            kernel_config.http.shutdown_grace(),
        )));
        Ok(Self {
            kernel,
            address,
            components,
        })
    }

    /// The address the public HTTP server is bound to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A handle to the kernel (to stop the process from a test, or read its metrics).
    pub fn kernel(&self) -> KernelHandle {
        self.kernel.handle()
    }

    /// Serves until SIGTERM, SIGINT or a shutdown through the kernel handle, then stops gracefully.
    pub async fn run_until_stopped(self) -> Result<(), PlatformError> {
        self.kernel
            .run(self.components)
            .await
            .map_err(PlatformError::from)
    }
}

/// Seeds once the services serve, before the gateway opens.
struct Seeder {
    core: Arc<CoreServices>,
}

#[async_trait]
impl Component for Seeder {
    fn name(&self) -> &str {
        "seed"
    }

    async fn start(&self, kernel: &KernelHandle) -> Result<(), ComponentError> {
        let (Some(identity), Some(authz)) = (&self.core.identity, &self.core.authz) else {
            return Err(ComponentError::new(
                "seeding needs the identity and authz services in this process",
            ));
        };
        let outcome = seed::seed(identity, authz, kernel.config())
            .await
            .map_err(ComponentError::new)?;
        seed::report(&outcome);
        Ok(())
    }
}
