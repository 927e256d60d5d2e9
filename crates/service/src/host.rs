//! The kernel component that serves one service and keeps its registry entry.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use keel_grpc::{GrpcServer, Layered};
use keel_http::{HttpServer, Stack, ops_router};
use keel_kernel::{Component, ComponentError, KernelHandle};
use keel_registry::{Registration, ServiceInstance, ServiceRegistry};

use crate::ListenConfig;

/// Adds a service's tonic services to the gRPC router.
/// e.g. `Box::new(move |router| router.add_service(server))`.
pub type GrpcRoutes = Box<
    dyn FnOnce(tonic::transport::server::Router<Layered>) -> tonic::transport::server::Router<Layered> + Send,
>;

/// What a service crate hands to the host.
pub struct HostedService {
    /// Registry name, e.g. `identity`.
    pub name: String,
    /// Build version, advertised in the registry.
    pub version: String,
    /// REST routes, without operational routes or middleware (the host adds both).
    pub rest: Router,
    /// The gRPC services.
    pub grpc: GrpcRoutes,
}

impl std::fmt::Debug for HostedService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedService")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Why a service could not be hosted.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The REST listener could not bind.
    #[error("service {service}: {source}")]
    Http {
        /// The service.
        service: String,
        /// The cause.
        #[source]
        source: keel_http::HttpError,
    },
    /// The gRPC listener could not bind.
    #[error("service {service}: {source}")]
    Grpc {
        /// The service.
        service: String,
        /// The cause.
        #[source]
        source: keel_grpc::GrpcError,
    },
    /// A listener is bound to an unspecified address and no `advertise_host` says how peers reach it.
    #[error(
        "service {0}: listen address is unspecified (0.0.0.0 or ::); set listen.{0}.advertise_host \
         to the name peers reach this instance by"
    )]
    NoAdvertiseHost(String),
}

struct Pending {
    http: HttpServer,
    router: Router,
    grpc: GrpcServer,
    routes: GrpcRoutes,
}

/// Serves one service's REST (with `/healthz`, `/ready`, `/metrics` and the HTTP middleware stack)
/// and gRPC listeners, registers the instance when started and deregisters it when stopped.
pub struct ServiceHost {
    name: String,
    instance: ServiceInstance,
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    pending: Mutex<Option<Pending>>,
    registry: Arc<dyn ServiceRegistry>,
    registration: Mutex<Option<Registration>>,
    grace: Duration,
}

impl std::fmt::Debug for ServiceHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHost")
            .field("name", &self.name)
            .field("http", &self.http_addr)
            .field("grpc", &self.grpc_addr)
            .finish_non_exhaustive()
    }
}

impl ServiceHost {
    /// Binds both listeners of `service` (failing fast when a port is taken).
    pub async fn bind(
        kernel: &KernelHandle,
        listen: &ListenConfig,
        service: HostedService,
    ) -> Result<Self, HostError> {
        let name = service.name.clone();
        let kernel_config = kernel.config().kernel();
        let http = HttpServer::bind(listen.http)
            .await
            .map_err(|source| HostError::Http {
                service: name.clone(),
                source,
            })?;
        let grpc = GrpcServer::bind(listen.grpc, &kernel_config.grpc)
            .await
            .map_err(|source| HostError::Grpc {
                service: name.clone(),
                source,
            })?;
        let (http_addr, grpc_addr) = (http.local_addr(), grpc.local_addr());
        let host = advertised_host(&name, listen, http_addr.ip())?;
        let instance = ServiceInstance::new(&name, format!("{name}-{}", uuid::Uuid::new_v4().simple()), host)
            .with_port(ServiceInstance::HTTP, http_addr.port())
            .with_port(ServiceInstance::GRPC, grpc_addr.port())
            .with_version(&service.version)
            .with_health_endpoint("/ready");
        let router = service
            .rest
            .merge(ops_router(kernel.health().clone(), kernel.metrics().clone()));
        let router = Stack::new(kernel_config.http.clone(), kernel.error_bus().clone()).apply(router);
        Ok(Self {
            name,
            instance,
            http_addr,
            grpc_addr,
            pending: Mutex::new(Some(Pending {
                http,
                router,
                grpc,
                routes: service.grpc,
            })),
            registry: kernel.registry().clone(),
            registration: Mutex::new(None),
            grace: kernel_config.http.shutdown_grace(),
        })
    }

    /// The bound REST address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The instance as registered.
    pub fn instance(&self) -> &ServiceInstance {
        &self.instance
    }
}

fn advertised_host(service: &str, listen: &ListenConfig, bound: IpAddr) -> Result<String, HostError> {
    match listen.advertise_host.as_deref().filter(|host| !host.is_empty()) {
        Some(host) => Ok(host.to_owned()),
        None if bound.is_unspecified() || listen.grpc.ip().is_unspecified() => {
            Err(HostError::NoAdvertiseHost(service.to_owned()))
        }
        None => Ok(bound.to_string()),
    }
}

#[async_trait]
impl Component for ServiceHost {
    fn name(&self) -> &str {
        &self.name
    }

    async fn start(&self, kernel: &KernelHandle) -> Result<(), ComponentError> {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Pending {
            http,
            router,
            grpc,
            routes,
        } = pending.ok_or_else(|| ComponentError::new(format!("{} already started", self.name)))?;
        let token = kernel.shutdown_token();
        kernel.spawn(
            &format!("{}-http", self.name),
            http.serve(router, token.clone(), self.grace),
        );
        kernel.spawn(
            &format!("{}-grpc", self.name),
            grpc.serve(routes, token, self.grace),
        );
        let registration = self
            .registry
            .register(self.instance.clone())
            .await
            .map_err(|e| ComponentError::new(format!("{}: cannot register: {e}", self.name)))?;
        tracing::info!(
            service = %self.name,
            http = %self.http_addr,
            grpc = %self.grpc_addr,
            "service started and registered"
        );
        *self.registration.lock().unwrap_or_else(PoisonError::into_inner) = Some(registration);
        Ok(())
    }

    async fn stop(&self) -> Result<(), ComponentError> {
        let registration = self
            .registration
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(registration) = registration {
            self.registry
                .deregister(&registration.service, &registration.instance_id)
                .await
                .map_err(|e| ComponentError::new(format!("{}: cannot deregister: {e}", self.name)))?;
        }
        Ok(())
    }
}
