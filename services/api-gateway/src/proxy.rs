//! The proxy itself: route, pick an instance, forward, stream the answer back.
//!
//! Why a module of its own: this is the per-request path, the one that must stay fast and never
//! hang. Bodies are never buffered: the client's request body is handed to the upstream request
//! as it arrives, and the upstream's response body to the client the same way. Every failure is
//! answered at once as problem+json: no route 404, no instance 503, unreachable 502, no response
//! head within the route's timeout 504.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::uri::Scheme;
use http::{Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tracing::Instrument;

use crate::config::{RouteConfig, UpstreamConfig};
use crate::error::ProxyError;
use crate::headers;
use crate::metrics::{self, NO_SERVICE, UNMATCHED_ROUTE};
use crate::routes::{RouteTable, has_dot_segment};
use crate::upstream::Upstream;

/// A route ready to serve: where it goes and how.
#[derive(Debug)]
pub(crate) struct Route {
    /// The configured prefix, the `route` metric label.
    label: Box<str>,
    upstream: Arc<Upstream>,
    strip_prefix: bool,
    timeout: Duration,
}

impl Route {
    /// The route `config` describes, served by `upstream`, with `default_timeout` unless it has
    /// its own.
    pub(crate) fn new(config: RouteConfig, upstream: Arc<Upstream>, default_timeout: Duration) -> Self {
        Self {
            label: config.prefix.into(),
            upstream,
            strip_prefix: config.strip_prefix,
            timeout: config.timeout_ms.map_or(default_timeout, Duration::from_millis),
        }
    }
}

/// The route table and the pooled client every request shares.
#[derive(Debug)]
pub(crate) struct Proxy {
    table: RouteTable<Route>,
    client: Client<HttpConnector, Body>,
}

impl Proxy {
    /// A proxy over `table`, connecting to upstreams as `settings` says.
    pub(crate) fn new(table: RouteTable<Route>, settings: &UpstreamConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout()));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout())
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .build(connector);
        Self { table, client }
    }

    /// The routed services that have no healthy instance now, sorted, each once.
    pub(crate) fn unavailable_services(&self) -> Vec<String> {
        let mut missing: Vec<String> = self
            .table
            .values()
            .filter(|route| !route.upstream.is_available())
            .map(|route| route.upstream.service().to_owned())
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// Answers one request: the upstream's response, or a problem.
    async fn forward(&self, request: Request) -> Response {
        let path = request.uri().path();
        let found = match has_dot_segment(path) {
            true => Err(ProxyError::DotSegment),
            false => self.table.find(path).ok_or(ProxyError::NoRoute),
        };
        let (route, service, outcome) = match found {
            Err(error) => (UNMATCHED_ROUTE, NO_SERVICE, Err(error)),
            Ok((route, matched)) => (
                &*route.label,
                route.upstream.service(),
                self.send(route, matched, request).await,
            ),
        };
        let response = match outcome {
            Ok(response) => response,
            Err(error) => fail(service, &error),
        };
        metrics::request(route, service, response.status().as_u16());
        response
    }

    /// Sends the request to an instance of `route`'s service; `matched` is the length of the path
    /// the route's prefix matched.
    async fn send(&self, route: &Route, matched: usize, request: Request) -> Result<Response, ProxyError> {
        let service = route.upstream.service();
        let authority = route.upstream.pick().ok_or_else(|| ProxyError::NoInstance {
            service: service.to_owned(),
        })?;
        let (mut parts, body) = request.into_parts();
        let strip = route.strip_prefix.then_some(matched);
        parts.uri = upstream_uri(&parts.uri, &authority, strip).map_err(|source| ProxyError::BadTarget {
            service: service.to_owned(),
            authority: authority.clone(),
            source,
        })?;
        parts.version = Version::HTTP_11;
        let span = tracing::debug_span!("gateway.upstream", service, upstream = %authority);
        span.in_scope(|| headers::prepare_request(&mut parts));

        let started = Instant::now();
        let exchange = self.client.request(Request::from_parts(parts, body));
        let sent = tokio::time::timeout(route.timeout, exchange)
            .instrument(span)
            .await;
        metrics::upstream_duration(service, started.elapsed());
        match sent {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                headers::prepare_response(&mut parts.headers);
                Ok(Response::from_parts(parts, Body::new(body)))
            }
            Ok(Err(source)) if source.is_connect() => Err(ProxyError::Connect {
                service: service.to_owned(),
                authority,
                source,
            }),
            Ok(Err(source)) => Err(ProxyError::Exchange {
                service: service.to_owned(),
                authority,
                source,
            }),
            Err(_) => Err(ProxyError::Timeout {
                service: service.to_owned(),
                authority,
                after: route.timeout,
            }),
        }
    }
}

/// The axum handler every path is routed to.
pub(crate) async fn serve(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    proxy.forward(request).await
}

/// Logs and counts a failure, and answers it.
fn fail(service: &str, error: &ProxyError) -> Response {
    match error.upstream_kind() {
        Some(kind) => {
            metrics::upstream_error(service, kind);
            tracing::warn!(error = %error, "upstream request failed");
        }
        None => tracing::debug!(error = %error, "request not routed"),
    }
    error.problem().into_response()
}

/// `http://<authority><path>?<query>`, the path without its first `strip` bytes when given (`/`
/// when nothing is left).
fn upstream_uri(original: &Uri, authority: &str, strip: Option<usize>) -> Result<Uri, http::Error> {
    let path = original.path();
    let path = match strip.and_then(|len| path.get(len..)) {
        Some("") => "/",
        Some(rest) => rest,
        None => path,
    };
    let path_and_query = match original.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_uri_keeps_the_query_and_strips_only_when_asked() -> Result<(), http::Error> {
        let original: Uri = "/api/v1/auth/login?next=%2Fhome".parse()?;
        let kept = upstream_uri(&original, "127.0.0.1:8082", None)?;
        assert_eq!(
            kept.to_string(),
            "http://127.0.0.1:8082/api/v1/auth/login?next=%2Fhome"
        );
        let stripped = upstream_uri(&original, "127.0.0.1:8082", Some("/api/v1/auth".len()))?;
        assert_eq!(stripped.to_string(), "http://127.0.0.1:8082/login?next=%2Fhome");
        let whole: Uri = "/api/v1/auth".parse()?;
        let root = upstream_uri(&whole, "[::1]:8082", Some("/api/v1/auth".len()))?;
        assert_eq!(root.to_string(), "http://[::1]:8082/");
        Ok(())
    }
}
