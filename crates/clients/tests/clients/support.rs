//! The harness: real tonic servers on loopback ports, registered in a real static registry.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_clients::CallPolicy;
use keel_config::GrpcConfig;
use keel_grpc::{GrpcServer, Layered};
use keel_registry::{ServiceInstance, ServiceRegistry, StaticRegistry};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Router;

/// gRPC settings of the tests: short connect timeout so dead instances fail fast.
pub(crate) fn grpc_config() -> GrpcConfig {
    GrpcConfig {
        default_deadline_ms: 2_000,
        max_deadline_ms: 10_000,
        connect_timeout_ms: 500,
    }
}

/// A policy with short pauses and cool-down so the tests run quickly.
pub(crate) fn policy() -> CallPolicy {
    CallPolicy {
        deadline: Duration::from_secs(2),
        max_attempts: 3,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        breaker_threshold: 3,
        breaker_cool_down: Duration::from_millis(300),
    }
}

/// A registry shared with the clients under test.
pub(crate) fn registry() -> (StaticRegistry, Arc<dyn ServiceRegistry>) {
    let registry = StaticRegistry::new();
    let shared: Arc<dyn ServiceRegistry> = Arc::new(registry.clone());
    (registry, shared)
}

/// A running gRPC server; stopped when dropped.
pub(crate) struct Running {
    /// Its gRPC port on 127.0.0.1.
    pub(crate) port: u16,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a server on a free loopback port with the services `add` adds.
pub(crate) async fn serve<F>(add: F) -> anyhow::Result<Running>
where
    F: FnOnce(Router<Layered>) -> Router<Layered> + Send + 'static,
{
    let server = GrpcServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), &grpc_config()).await?;
    let port = server.local_addr().port();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.serve(add, shutdown.clone(), Duration::from_millis(100)));
    Ok(Running { port, shutdown })
}

/// Registers an instance of `service` listening for gRPC on `port`; its id is returned.
pub(crate) async fn register(registry: &StaticRegistry, service: &str, port: u16) -> anyhow::Result<String> {
    let instance = ServiceInstance::new(service, format!("{service}-{port}"), "127.0.0.1")
        .with_port(ServiceInstance::GRPC, port);
    Ok(registry.register(instance).await?.instance_id)
}

/// A loopback port nothing listens on.
pub(crate) async fn dead_port() -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.port())
}

/// What a fake server saw and how it misbehaves, shared between the test and the server.
#[derive(Default)]
pub(crate) struct Knobs {
    calls: Mutex<HashMap<String, u32>>,
    unavailable: AtomicU32,
    delay_ms: AtomicU64,
}

impl Knobs {
    /// Counts a call of `method`, sleeps if asked, and fails it as unavailable if asked.
    pub(crate) async fn enter(&self, method: &str) -> Result<(), tonic::Status> {
        *self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(method.to_owned())
            .or_default() += 1;
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let failing = self
            .unavailable
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match failing {
            Ok(_) => Err(tonic::Status::unavailable("restarting")),
            Err(_) => Ok(()),
        }
    }

    /// Calls of `method` so far.
    pub(crate) fn calls(&self, method: &str) -> u32 {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Calls of any method so far.
    pub(crate) fn total_calls(&self) -> u32 {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }

    /// The next `count` calls answer UNAVAILABLE.
    pub(crate) fn fail_next(&self, count: u32) {
        self.unavailable.store(count, Ordering::SeqCst);
    }

    /// Every call waits this long before answering.
    pub(crate) fn delay(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }
}

/// Locks a fake's state, even after a panicking test thread.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
