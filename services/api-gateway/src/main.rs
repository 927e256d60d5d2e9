//! `api-gateway`: the public entry as its own process (distributed mode): the configured routes to
//! the services found in the registry, with `/healthz`, `/ready` and `/metrics`, on `http.port`.
//! Tokens are verified here against the auth service's JWKS, and permissions asked of authz, over
//! the same gRPC clients the services use (found through the registry, authz behind the
//! permission cache).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use keel_config::ConfigLoader;
use keel_events::InProcessBus;
use keel_gateway::{EdgeAuth, Gateway, GatewayConfig};
use keel_http::{HttpServer, Stack, ops_router};
use keel_kernel::{Component, Kernel};
use keel_service::{EVENT_BUS_CAPACITY, HttpComponent, SharedRuntime};

/// mimalloc serves the many small, short-lived allocations of proxying (headers, bodies' frames)
/// faster than glibc's malloc, with less contention between threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let config = match ConfigLoader::from_process().load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("api-gateway: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("api-gateway: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome: Result<(), Box<dyn std::error::Error>> = runtime.block_on(async move {
        let gateway_config = GatewayConfig::from_config(&config)?;
        let http = config.kernel().http.clone();
        let kernel = Kernel::builder(config).build()?;
        let handle = kernel.handle();
        // The bus only serves the permission cache's invalidation, and no event reaches this
        // process yet (no broker adapter): cached permissions live `authz.cache_ttl_secs`.
        let shared = SharedRuntime::new(&handle, Arc::new(InProcessBus::new(EVENT_BUS_CAPACITY)))?;
        let auth = EdgeAuth::new(shared.verifier.clone(), shared.clients.authz.clone());
        let limits = gateway_config.connection_limits(&http);
        let threads = gateway_config.serving_threads();
        let limiter = keel_gateway::configured_rate_limiter(handle.config())?;
        let gateway = Gateway::new(gateway_config, handle.registry().clone(), auth, Some(limiter)).await?;
        handle.health().register(gateway.readiness_check());
        handle.spawn(
            "gateway-reload-on-sighup",
            keel_gateway::reload_on_hangup(gateway.clone(), handle.shutdown_token()),
        );
        let router = gateway
            .router()
            .merge(ops_router(handle.health().clone(), handle.metrics().clone()));
        // The gateway limits bodies per route, and the services it proxies compress their own
        // responses.
        let router = Stack::new(http.clone(), handle.error_bus().clone())
            .without_body_limit()
            .without_compression()
            .apply(router);
        let server = HttpServer::bind(SocketAddr::new(http.host, http.port))
            .await?
            .with_limits(limits)
            .with_worker_threads(threads)
            .with_front(gateway.http1_front(&http, keel_http::OPS_PATHS));
        let component: Arc<dyn Component> = Arc::new(HttpComponent::new(
            "gateway-http",
            server,
            router,
            http.shutdown_grace(),
        ));
        kernel.run(vec![component]).await?;
        Ok(())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "api-gateway stopped with an error");
            eprintln!("api-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}
