//! The Keel platform process: the all-in-one mode and, later, the module host.
//!
//! Why this crate exists: the README's run command must bring the whole platform up with embedded
//! defaults, and a deployment must be able to run the same code as separate processes. This crate
//! composes a process from the kernel and the components it runs; `main.rs` only parses the
//! command line and calls it. The shape follows `Application::build` → `address` →
//! `run_until_stopped`, so tests can start a real platform on a free port.
//!
//! Today the process runs the kernel and its HTTP server with `/healthz`, `/ready` and `/metrics`
//! on the gateway port, with the platform's own database (the module host's store) registered as a
//! readiness check. The core services and the gateway are added here as they arrive.

mod http_component;

use std::net::SocketAddr;
use std::sync::Arc;

use keel_config::Config;
use keel_db::Database;
use keel_http::{HttpServer, Stack, ops_router};
use keel_kernel::{Component, Kernel, KernelBuilder, KernelError, KernelHandle};

use crate::http_component::HttpComponent;

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
        let config = handle.config().kernel().clone();

        let database = Database::connect(&config.database, PLATFORM_STORE).await?;
        handle.health().register(Arc::new(database.readiness_check()));

        let router = ops_router(handle.health().clone(), handle.metrics().clone());
        let router = Stack::new(config.http.clone(), handle.error_bus().clone()).apply(router);
        let server = HttpServer::bind(SocketAddr::new(config.http.host, config.http.port)).await?;
        let address = server.local_addr();
        let components: Vec<Arc<dyn Component>> = vec![Arc::new(HttpComponent::new(
            "gateway-http",
            server,
            router,
            config.http.shutdown_grace(),
        ))];
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
