//! The gRPC server: the server-side layer and the serve loop.

use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use keel_config::GrpcConfig;
use keel_telemetry::context::{self, REQUEST_ID_HEADER, RequestContext};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::transport::server::{Router, TcpIncoming};
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthService;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::metered::{CallRecorder, MeteredBody, Side};
use crate::split_path;

/// Why the gRPC server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The address could not be bound.
    #[error("cannot bind gRPC server to {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("gRPC server failed: {0}")]
    Serve(#[source] tonic::transport::Error),
}

/// Server-side layer: request id, request span, request context, metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerLayer;

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ServerService { inner }
    }
}

/// The service [`ServerLayer`] makes.
#[derive(Debug, Clone)]
pub struct ServerService<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for ServerService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        // The ready clone must serve this call; leave a fresh clone for the next (tower's rule).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (service, method) = split_path(request.uri().path());
        let sent = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok());
        let (request_id, _) = context::accept_request_id(sent);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            request.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let span = tracing::info_span!(
            "request",
            request_id = %request_id,
            trace_id = tracing::field::Empty,
            user_id = tracing::field::Empty,
            rpc.service = %service,
            rpc.method = %method,
        );
        keel_telemetry::propagation::continue_trace(&span, request.headers());
        let mut recorder = CallRecorder::new(Side::Server, service, method);
        Box::pin(async move {
            let context = RequestContext::new(&request_id);
            let outcome = context::scope(context, inner.call(request))
                .instrument(span.clone())
                .await;
            match outcome {
                Ok(response) => {
                    if recorder.record_from(response.headers()) {
                        span.in_scope(|| tracing::debug!("call completed (trailers-only)"));
                        return Ok(response);
                    }
                    Ok(response.map(|body| Body::new(MeteredBody::new(body, recorder))))
                }
                Err(error) => {
                    recorder.record(tonic::Code::Internal);
                    Err(error)
                }
            }
        })
    }
}

/// The layer stack of a Keel gRPC server's router.
pub type Layered = tower::layer::util::Stack<ServerLayer, tower::layer::util::Identity>;

/// A bound gRPC listener with the standard health service.
pub struct GrpcServer {
    listener: TcpListener,
    address: SocketAddr,
    max_deadline: Duration,
    health: crate::HealthReporter,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// Binds `address`; calls may take at most `config.max_deadline_ms` whatever their deadline.
    pub async fn bind(address: SocketAddr, config: &GrpcConfig) -> Result<Self, GrpcError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| GrpcError::Bind { address, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| GrpcError::Bind { address, source })?;
        Ok(Self {
            listener,
            address,
            max_deadline: Duration::from_millis(config.max_deadline_ms),
            health: crate::HealthReporter::new(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The health reporter; mark each service serving once it is ready
    /// (`reporter.set_serving::<FooServer<_>>()`), not serving while it cannot answer.
    pub fn health(&self) -> crate::HealthReporter {
        self.health.clone()
    }

    /// Serves the services `add` puts on the router, with [`ServerLayer`], until `shutdown`; then
    /// stops accepting and drains in-flight calls for up to `grace`.
    pub async fn serve<F>(self, add: F, shutdown: CancellationToken, grace: Duration) -> Result<(), GrpcError>
    where
        F: FnOnce(Router<Layered>) -> Router<Layered>,
    {
        let address = self.address;
        let router = tonic::transport::Server::builder()
            .timeout(self.max_deadline)
            .layer(ServerLayer)
            .add_service(HealthServer::new(HealthService::from_health_reporter(
                self.health,
            )));
        let router = add(router);
        tracing::info!(%address, "gRPC server listening");
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        let serving = router.serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => result.map_err(GrpcError::Serve),
            () = shutdown.cancelled() => {
                match tokio::time::timeout(grace, serving).await {
                    Ok(result) => result.map_err(GrpcError::Serve),
                    Err(_) => {
                        tracing::warn!(%address, "grace period over; dropping gRPC calls still in flight");
                        Ok(())
                    }
                }
            }
        }
    }
}
