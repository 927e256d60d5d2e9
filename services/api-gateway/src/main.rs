//! `api-gateway`: the public entry as its own process (distributed mode): the configured routes to
//! the services found in the registry, with `/healthz`, `/ready` and `/metrics`, on `http.port`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use keel_config::ConfigLoader;
use keel_gateway::{Gateway, GatewayConfig};
use keel_http::{HttpServer, Stack, ops_router};
use keel_kernel::{Component, Kernel};
use keel_service::HttpComponent;

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
        let gateway = Gateway::new(gateway_config, handle.registry().clone()).await?;
        handle.health().register(gateway.readiness_check());
        let router = gateway
            .router()
            .merge(ops_router(handle.health().clone(), handle.metrics().clone()));
        let router = Stack::new(http.clone(), handle.error_bus().clone()).apply(router);
        let server = HttpServer::bind(SocketAddr::new(http.host, http.port)).await?;
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
