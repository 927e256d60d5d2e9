//! The client side: a layer for channels to other services.

use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::{HeaderValue, Request, Response};
use keel_config::GrpcConfig;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::metered::{CallRecorder, MeteredBody, Side};
use crate::split_path;

/// Why a client channel could not be made.
#[derive(Debug, thiserror::Error)]
pub enum GrpcClientError {
    /// The target is not a valid URI.
    #[error("invalid gRPC endpoint {target:?}: {reason}")]
    InvalidEndpoint {
        /// The target as given.
        target: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// A channel to `target` (e.g. `http://127.0.0.1:50051`) that connects on first use and
/// reconnects after failures, with the configured connect timeout, wrapped in [`ClientLayer`].
pub fn connect_lazy(target: &str, config: &GrpcConfig) -> Result<ClientService<Channel>, GrpcClientError> {
    let endpoint = Endpoint::from_shared(target.to_owned())
        .map_err(|e| GrpcClientError::InvalidEndpoint {
            target: target.to_owned(),
            reason: e.to_string(),
        })?
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(ClientLayer::new(config).layer(endpoint.connect_lazy()))
}

/// Client-side layer: client span, `traceparent` and `x-request-id` injected, default deadline,
/// client metrics.
#[derive(Debug, Clone, Copy)]
pub struct ClientLayer {
    default_deadline: Duration,
}

impl ClientLayer {
    /// A layer putting `config.default_deadline_ms` on calls that carry no deadline of their own.
    pub fn new(config: &GrpcConfig) -> Self {
        Self {
            default_deadline: Duration::from_millis(config.default_deadline_ms),
        }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ClientService {
            inner,
            default_deadline: self.default_deadline,
        }
    }
}

/// The service [`ClientLayer`] makes; hand it to a generated client's `new`.
#[derive(Debug, Clone)]
pub struct ClientService<S> {
    inner: S,
    default_deadline: Duration,
}

impl<S, B> Service<Request<Body>> for ClientService<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (service, method) = split_path(request.uri().path());
        let span = tracing::debug_span!("grpc.client", rpc.service = %service, rpc.method = %method);
        span.in_scope(|| keel_telemetry::propagation::inject_current(request.headers_mut()));
        let headers = request.headers_mut();
        if let Some(current) = keel_telemetry::context::current()
            && let Ok(value) = HeaderValue::from_str(current.request_id())
        {
            headers.insert(keel_telemetry::context::REQUEST_ID_HEADER, value);
        }
        if !headers.contains_key("grpc-timeout")
            && let Ok(value) = HeaderValue::from_str(&format!("{}m", self.default_deadline.as_millis()))
        {
            headers.insert("grpc-timeout", value);
        }
        let mut recorder = CallRecorder::new(Side::Client, service, method);
        Box::pin(
            async move {
                match inner.call(request).await {
                    Ok(response) => {
                        if recorder.record_from(response.headers()) {
                            return Ok(response.map(Body::new));
                        }
                        Ok(response.map(|body| Body::new(MeteredBody::new(body, recorder))))
                    }
                    Err(error) => {
                        recorder.record(tonic::Code::Unavailable);
                        Err(error)
                    }
                }
            }
            .instrument(span),
        )
    }
}
