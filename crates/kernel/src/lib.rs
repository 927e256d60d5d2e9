//! The Keel kernel: explicit composition of what every process needs, and its lifecycle.
//!
//! Why this crate exists: a Keel process (the all-in-one `platform`, or one service deployed alone)
//! needs configuration, telemetry, health, metrics, an error bus, a service registry and one
//! shutdown signal, wired in the same order every time. There is no DI framework: a
//! [`KernelBuilder`] builds them from a [`keel_config::Config`], any of them can be replaced before
//! `build` (tests do), and [`Kernel::run`] starts the process's [`Component`]s in order, waits for
//! SIGTERM/SIGINT (or [`Kernel::shutdown`]), then stops them in reverse order, waits for their
//! tasks, drains the error bus and flushes telemetry.

mod component;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use component::{Component, ComponentError};
use keel_config::Config;
use keel_errorbus::{ErrorBus, ErrorSink, LogSink};
use keel_health::{HealthCheck, HealthRegistry};
use keel_registry::ServiceRegistry;
use keel_telemetry::TelemetryGuard;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the metrics recorder is compacted (histogram upkeep).
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Why the kernel could not be built or a run failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Telemetry could not be installed.
    #[error(transparent)]
    Telemetry(#[from] keel_telemetry::TelemetryError),
    /// The service registry could not be built.
    #[error("service registry: {0}")]
    Registry(#[from] keel_registry::RegistryError),
    /// A component failed to start (the ones started before it were stopped again).
    #[error("component {name} failed to start: {source}")]
    Start {
        /// The component.
        name: String,
        /// Its error.
        source: ComponentError,
    },
    /// A background task failed, which stopped the process.
    #[error("task {name} failed: {reason}")]
    Task {
        /// The task.
        name: String,
        /// Its error.
        reason: String,
    },
}

/// Builds a [`Kernel`]; every part can be replaced before [`KernelBuilder::build`].
pub struct KernelBuilder {
    config: Config,
    global_telemetry: bool,
    error_sinks: Vec<Arc<dyn ErrorSink>>,
    registry: Option<Arc<dyn ServiceRegistry>>,
    health_checks: Vec<Arc<dyn HealthCheck>>,
    shutdown: Option<CancellationToken>,
}

impl KernelBuilder {
    /// A builder over `config` that installs process-wide telemetry (logs, traces) on build.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            global_telemetry: true,
            error_sinks: vec![Arc::new(LogSink)],
            registry: None,
            health_checks: Vec::new(),
            shutdown: None,
        }
    }

    /// Leaves the global `tracing` subscriber alone (tests install their own per test).
    pub fn without_global_telemetry(mut self) -> Self {
        self.global_telemetry = false;
        self
    }

    /// Adds a sink that receives every error-bus record (besides the log).
    pub fn with_error_sink(mut self, sink: Arc<dyn ErrorSink>) -> Self {
        self.error_sinks.push(sink);
        self
    }

    /// Uses `registry` instead of the one `registry.kind` names.
    pub fn with_registry(mut self, registry: Arc<dyn ServiceRegistry>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Registers a readiness check from the start.
    pub fn with_health_check(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.health_checks.push(check);
        self
    }

    /// Uses `token` as the shutdown signal (so a test, or an embedding process, can stop the kernel).
    pub fn with_shutdown_token(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(token);
        self
    }

    /// Builds the kernel: telemetry first (so everything after can log), then metrics, error bus,
    /// health, registry. Must run inside a Tokio runtime.
    pub fn build(self) -> Result<Kernel, KernelError> {
        let telemetry = if self.global_telemetry {
            Some(keel_telemetry::init(&self.config)?)
        } else {
            None
        };
        let kernel_config = self.config.kernel();
        let metrics = keel_telemetry::metrics::install();
        let shutdown = self.shutdown.unwrap_or_default();
        let tasks = TaskTracker::new();
        // The error bus gets its own token, cancelled only after every component stopped, so the
        // errors of a shutdown are still delivered.
        let bus_stop = CancellationToken::new();
        let (error_bus, error_consumer) = ErrorBus::start(
            kernel_config.error_bus.capacity,
            self.error_sinks,
            bus_stop.clone(),
        );
        let health = HealthRegistry::new(Duration::from_millis(kernel_config.health.check_timeout_ms));
        for check in self.health_checks {
            health.register(check);
        }
        let registry = match self.registry {
            Some(registry) => registry,
            None => keel_registry::start_registry(&kernel_config.registry)?,
        };
        let upkeep = metrics.clone();
        let upkeep_stop = shutdown.clone();
        tasks.spawn(async move {
            let mut interval = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
            loop {
                tokio::select! {
                    _ = interval.tick() => upkeep.run_upkeep(),
                    () = upkeep_stop.cancelled() => return,
                }
            }
        });
        tracing::info!(
            environment = self.config.environment(),
            app = %kernel_config.app.name,
            config = %self.config.redacted(),
            "kernel built with this effective configuration (secrets redacted)"
        );
        Ok(Kernel {
            inner: Arc::new(Inner {
                config: self.config,
                health,
                metrics,
                error_bus,
                registry,
                shutdown,
                tasks,
                task_failure: std::sync::Mutex::default(),
            }),
            owned: Some(Owned {
                telemetry,
                bus_stop,
                error_consumer,
            }),
        })
    }
}

struct Inner {
    config: Config,
    health: HealthRegistry,
    metrics: PrometheusHandle,
    error_bus: ErrorBus,
    registry: Arc<dyn ServiceRegistry>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The first background task that failed: (name, reason). Makes [`Kernel::run`] return an error.
    task_failure: std::sync::Mutex<Option<(String, String)>>,
}

/// What only the kernel's owner may take down, at the very end.
struct Owned {
    telemetry: Option<TelemetryGuard>,
    bus_stop: CancellationToken,
    error_consumer: JoinHandle<()>,
}

/// The shared services of one process. Components receive a [`KernelHandle`] to it.
pub struct Kernel {
    inner: Arc<Inner>,
    owned: Option<Owned>,
}

/// A cheap, cloneable view of the kernel for components and handlers.
#[derive(Clone)]
pub struct KernelHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KernelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelHandle")
            .field("environment", &self.inner.config.environment())
            .finish_non_exhaustive()
    }
}

impl KernelHandle {
    /// The effective configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    /// The readiness checks; register a component's checks here.
    pub fn health(&self) -> &HealthRegistry {
        &self.inner.health
    }
    /// The Prometheus handle that renders `/metrics`.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }
    /// The error bus.
    pub fn error_bus(&self) -> &ErrorBus {
        &self.inner.error_bus
    }
    /// The service registry.
    pub fn registry(&self) -> &Arc<dyn ServiceRegistry> {
        &self.inner.registry
    }
    /// The process-wide shutdown signal: cancelled when the process begins to stop.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }
    /// Asks the process to stop, as SIGTERM would.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Runs `task` in the background until it ends; the kernel waits for it on shutdown. A task
    /// that fails stops the whole process (fail fast rather than run half-broken).
    pub fn spawn<F, E>(&self, name: &str, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let name = name.to_owned();
        let inner = self.inner.clone();
        self.inner.tasks.spawn(async move {
            if let Err(error) = task.await {
                tracing::error!(task = %name, %error, "background task failed; stopping the process");
                let record = keel_errorbus::ErrorRecord::new("task", format!("task {name} failed: {error}"));
                inner.error_bus.publish(record);
                inner
                    .task_failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(|| (name.clone(), error.to_string()));
                inner.shutdown.cancel();
            }
        });
    }
}

impl Kernel {
    /// A builder over `config`.
    pub fn builder(config: Config) -> KernelBuilder {
        KernelBuilder::new(config)
    }

    /// A handle for components and handlers.
    pub fn handle(&self) -> KernelHandle {
        KernelHandle {
            inner: self.inner.clone(),
        }
    }

    /// Starts `components` in order, runs until SIGTERM, SIGINT or [`KernelHandle::shutdown`], then
    /// stops them in reverse order and tears the kernel down. If a component fails to start, the
    /// ones already started are stopped and the error returned.
    pub async fn run(mut self, components: Vec<Arc<dyn Component>>) -> Result<(), KernelError> {
        let handle = self.handle();
        let mut started: Vec<Arc<dyn Component>> = Vec::with_capacity(components.len());
        let mut failure = None;
        for component in components {
            tracing::info!(component = component.name(), "starting");
            match component.start(&handle).await {
                Ok(()) => started.push(component),
                Err(source) => {
                    failure = Some(KernelError::Start {
                        name: component.name().to_owned(),
                        source,
                    });
                    break;
                }
            }
        }
        if failure.is_none() {
            tracing::info!("started; waiting for a shutdown signal");
            wait_for_signal(&handle.inner.shutdown).await;
        }
        handle.shutdown();
        tracing::info!("shutting down");
        for component in started.iter().rev() {
            tracing::info!(component = component.name(), "stopping");
            if let Err(error) = component.stop().await {
                tracing::warn!(component = component.name(), %error, "component did not stop cleanly");
            }
        }
        self.teardown().await;
        let task_failure = self
            .inner
            .task_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match (failure, task_failure) {
            (Some(failure), _) => Err(failure),
            (None, Some((name, reason))) => Err(KernelError::Task { name, reason }),
            (None, None) => Ok(()),
        }
    }

    /// Waits for the background tasks, drains the error bus, flushes telemetry. Idempotent.
    pub async fn teardown(&mut self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        if let Some(owned) = self.owned.take() {
            owned.bus_stop.cancel();
            let _ = owned.error_consumer.await;
            tracing::info!("stopped");
            if let Some(telemetry) = owned.telemetry {
                telemetry.shutdown();
            }
        }
    }
}

/// Resolves on SIGTERM, SIGINT (Ctrl-C) or when `token` is cancelled.
async fn wait_for_signal(token: &CancellationToken) {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
        () = token.cancelled() => {}
    }
}
