//! The `main` of a separately deployed service (`identity-service`, `auth-service`, …).

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use keel_config::ConfigLoader;
use keel_events::InProcessBus;
use keel_kernel::{Component, Kernel, KernelHandle};

use crate::{HostedService, ServiceHost, SharedRuntime, listen_config};

/// Any error of a service's construction.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Events buffered per subscriber of the in-process bus before a slow one starts losing the oldest.
pub const EVENT_BUS_CAPACITY: usize = 4096;

/// What a service's binary supplies: builds the service against the kernel and the shared runtime
/// (connecting its store, spawning its background work) and hands it to the host.
pub type BuildService = Box<
    dyn FnOnce(
        KernelHandle,
        SharedRuntime,
    ) -> Pin<Box<dyn Future<Output = Result<HostedService, BoxError>> + Send>>,
>;

/// Runs one service as its own process until SIGTERM or Ctrl-C: configuration from the process
/// (`KEEL_*`, `config/`), telemetry, the registry named by `registry.kind`, an in-process event bus
/// (so, until a broker adapter exists, events do not cross processes: a warning says so at
/// start), the service on `listen.<service>`. Exit code 2
/// for a configuration error, 1 for any other failure.
pub fn run_standalone(service: &'static str, build: BuildService) -> ExitCode {
    let config = match ConfigLoader::from_process().load() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{service}: configuration error: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{service}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome: Result<(), BoxError> = runtime.block_on(async move {
        let listen = listen_config(&config, service)?;
        let kernel = Kernel::builder(config).build()?;
        let handle = kernel.handle();
        // No broker adapter exists yet (NATS and Kafka arrive with the infrastructure issue): the
        // bus is this process's own, so events do not reach the other services. Say so loudly.
        tracing::warn!(
            service,
            "events stay inside this process (in-process bus): peers will not see this service's \
             events (default roles, cache invalidation and session revocation by event); run the \
             all-in-one `platform` until a broker adapter is configured"
        );
        let shared = SharedRuntime::new(&handle, Arc::new(InProcessBus::new(EVENT_BUS_CAPACITY)))?;
        shared.spawn_permission_invalidation(&handle).await?;
        let hosted = build(handle.clone(), shared).await?;
        let host = ServiceHost::bind(&handle, &listen, hosted).await?;
        let components: Vec<Arc<dyn Component>> = vec![Arc::new(host)];
        kernel.run(components).await?;
        Ok(())
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, service, "stopped with an error");
            eprintln!("{service}: {error}");
            ExitCode::FAILURE
        }
    }
}
