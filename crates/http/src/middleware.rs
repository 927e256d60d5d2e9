//! The middleware stack every service's router is wrapped in.
//!
//! Order, outermost first (a request passes down the list, its response back up):
//!
//! 1. **edge**, one layer doing three things, because every layer costs a boxed future and a
//!    clone of the route per request and these three wrap the same call:
//!    - *observe*: takes or makes the request id, opens the request span (parented on an incoming
//!      `traceparent`, carrying `request_id`, `trace_id`, `user_id`), runs the rest inside the
//!      request context, logs completion, and puts `X-Request-ID` on the response. Outermost, so
//!      every line logged below it, and every response, carries the id;
//!    - *security headers*: outside everything that can answer on its own, so 404s, 413s,
//!      timeouts and panics carry them too;
//!    - *metrics*: count and latency by method, *route template* (never the raw path: that would
//!      be unbounded cardinality) and status; sees every answer below, including the ones below
//!      make.
//! 2. **CORS**: answers preflights; adds the allow headers to real responses.
//! 3. **panic catch**: a panicking handler becomes a 500 problem and one error-bus record.
//! 4. **timeout**: a request over `http.request_timeout_ms` becomes a 503 problem.
//! 5. **body limit**: a declared body over the limit is a 413 problem before the handler runs; an
//!    undeclared (chunked) one is cut off by the same limit when the handler reads it. Left out by
//!    [`Stack::without_body_limit`] for routers that limit bodies themselves (the gateway).
//! 6. **compression**: gzip when the client accepts it and `http.compression` is on. Left out by
//!    [`Stack::without_compression`] for routers whose responses come from servers that compress
//!    their own (the gateway).
//!
//! The stack is applied with `Router::layer`, which wraps each route (and the fallback), so the
//! matched route template is known to every layer.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::Method;
use http::header::{self, HeaderName, HeaderValue};
use keel_config::{CorsConfig, HttpConfig};
use keel_errorbus::{ErrorBus, ErrorRecord};
use keel_telemetry::context::{self, RequestContext};
use keel_telemetry::metrics::KeptStatusPairs;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::problem::Problem;
use crate::request_id::{REQUEST_ID_HEADER_NAME, RequestId};

/// Route label for requests that matched no route (the fallback).
const UNMATCHED_ROUTE: &str = "unmatched";
/// Routes polled by orchestrators and scrapers: their completions log at debug, not info.
const QUIET_ROUTES: &[&str] = &["/healthz", "/ready", "/metrics"];

/// The middleware stack of one HTTP server, built from its configuration.
#[derive(Clone, Debug)]
pub struct Stack {
    config: HttpConfig,
    error_bus: ErrorBus,
    body_limit: bool,
    compression: bool,
}

impl Stack {
    /// A stack for a server configured by `config`, reporting unexpected errors to `error_bus`.
    pub fn new(config: HttpConfig, error_bus: ErrorBus) -> Self {
        Self {
            config,
            error_bus,
            body_limit: true,
            compression: true,
        }
    }

    /// Leaves out step 6, compression, whatever `http.compression` says: for a router that passes
    /// on responses of servers that compress their own (the gateway in front of the services), so
    /// no response is compressed twice or streamed through a compressor for nothing.
    #[must_use]
    pub fn without_compression(mut self) -> Self {
        self.compression = false;
        self
    }

    /// Leaves out step 5, the `http.body_limit_bytes` limit: for a router whose handlers limit
    /// request bodies themselves, such as the gateway with its per-route limits (a route allowed
    /// 200 MiB must not be refused at 10 MiB by the stack). Extractors then fall back to axum's
    /// default limit (2 MB).
    #[must_use]
    pub fn without_body_limit(mut self) -> Self {
        self.body_limit = false;
        self
    }

    /// Wraps `router` in the stack and gives it problem+json answers for unknown routes (404) and
    /// wrong methods (405).
    pub fn apply(&self, router: Router) -> Router {
        let router = router
            .fallback(|| async { Problem::not_found("no route matches this path") })
            .method_not_allowed_fallback(|| async { Problem::method_not_allowed() });
        let limit = self.config.body_limit_bytes;
        let timeout = self.config.request_timeout();
        let bus = self.error_bus.clone();
        let headers = security_headers(&self.config);
        // `Router::layer` calls wrap what is already there, so they run innermost first: read
        // bottom-up, this is the order of the module documentation.
        let router = match self.config.compression && self.compression {
            true => router.layer(CompressionLayer::new()),
            false => router,
        };
        let router = match self.body_limit {
            true => router
                .layer(DefaultBodyLimit::max(limit))
                .layer(middleware::from_fn(move |request: Request, next: Next| {
                    reject_declared_oversize(limit, request, next)
                })),
            false => router,
        };
        let router = router
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                enforce_timeout(timeout, request, next)
            }))
            .layer(CatchPanicLayer::custom(
                move |panic: Box<dyn Any + Send + 'static>| panic_response(&bus, panic.as_ref()),
            ));
        let router = match cors(&self.config.cors) {
            Some(layer) => router.layer(layer),
            None => router,
        };
        router.layer(middleware::from_fn(move |request: Request, next: Next| {
            edge(Arc::clone(&headers), request, next)
        }))
    }
}

/// Step 1: request id, span, context, access log; security headers; metrics.
async fn edge(
    security_headers: Arc<[(HeaderName, HeaderValue)]>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let method = request.method().clone();
    let observed = ObservedRequest::begin(&method, route, request.headers_mut());
    let (span, context) = (observed.span.clone(), observed.context.clone());
    request
        .extensions_mut()
        .insert(RequestId(observed.id().to_owned()));
    let mut response = context::scope(context, next.run(request)).instrument(span).await;
    let status = response.status();
    observed.finish(route, status, &security_headers, response.headers_mut());
    response
}

/// What the stack's outermost layer (step 1) does for one request, for code that answers
/// requests without the router, such as a [`crate::ConnectionFront`]: the same request id,
/// span, access log line, metrics and response headers as a routed request gets.
#[derive(Debug)]
pub struct ObservedRequest {
    /// The request span: run the request's work inside it.
    pub span: tracing::Span,
    /// The request context, which holds the request's id (the client's when usable, else a
    /// fresh one): run the request's work inside it (`keel_telemetry::context::scope`).
    pub context: RequestContext,
    header_value: Option<HeaderValue>,
    method: Method,
    started: Instant,
}

impl ObservedRequest {
    /// Starts observing a request of `method` to `route` (its route template, the metric label)
    /// with the request `headers`, whose `X-Request-ID` it sets to the request's id.
    pub fn begin(method: &Method, route: &str, headers: &mut http::HeaderMap) -> Self {
        let sent = headers.get(REQUEST_ID_HEADER_NAME);
        // A fresh id's value has an allocation of its own: the request's headers, which hold it,
        // may be kept by a handler for long (not a slice of a block: `shared_header_value`).
        let observed = Self::observe(
            method,
            route,
            headers,
            sent,
            Instant::now(),
            HeaderValue::from_bytes,
        );
        if let Some(value) = &observed.header_value {
            headers.insert(REQUEST_ID_HEADER_NAME, value.clone());
        }
        observed
    }

    /// Starts observing a request like [`ObservedRequest::begin`], leaving its `headers` as the
    /// client sent them: for code that passes the request id on itself
    /// ([`ObservedRequest::request_id_header`]).
    pub fn begin_detached(method: &Method, route: &str, headers: &http::HeaderMap) -> Self {
        Self::begin_detached_at(method, route, headers, Instant::now())
    }

    /// [`ObservedRequest::begin_detached`] for a request that arrived at `started` (its
    /// latency is counted from then): for code that has read the clock for the request already.
    pub fn begin_detached_at(
        method: &Method,
        route: &str,
        headers: &http::HeaderMap,
        started: Instant,
    ) -> Self {
        let sent = headers.get(REQUEST_ID_HEADER_NAME);
        Self::begin_with_sent_id(method, route, headers, sent, started)
    }

    /// [`ObservedRequest::begin_detached_at`] for code that has found the request's first
    /// `X-Request-ID` field already, `sent` (what a lookup in `headers` gives), while reading
    /// the head: it is not looked up again.
    /// A fresh id's value is cut from the thread's block (`shared_header_value`): the front
    /// holds it for the request's life only.
    pub fn begin_with_sent_id(
        method: &Method,
        route: &str,
        headers: &http::HeaderMap,
        sent: Option<&HeaderValue>,
        started: Instant,
    ) -> Self {
        Self::observe(method, route, headers, sent, started, |bytes| {
            crate::shared_header_value(bytes).ok_or(())
        })
    }

    /// Starts observing a request (`begin_with_sent_id`), making a fresh id's header value with
    /// `value_of`.
    fn observe<E>(
        method: &Method,
        route: &str,
        headers: &http::HeaderMap,
        sent: Option<&HeaderValue>,
        started: Instant,
        value_of: impl FnOnce(&[u8]) -> Result<HeaderValue, E>,
    ) -> Self {
        // The client's id when it is sane (`RequestId::from_header`'s rule): its own value is
        // passed on, not a copy.
        let honoured = sent.and_then(|value| {
            let id = value
                .to_str()
                .ok()
                .filter(|id| context::is_acceptable_request_id(id))?;
            Some((id, value))
        });
        let fresh;
        let (id, header_value) = match honoured {
            Some((id, value)) => (id, Some(value.clone())),
            None => {
                fresh = context::FreshRequestId::generate();
                (fresh.as_str(), value_of(fresh.as_bytes()).ok())
            }
        };
        let span = tracing::info_span!(
            "request",
            request_id = %id,
            trace_id = tracing::field::Empty,
            user_id = tracing::field::Empty,
            method = %method,
            route = %route,
        );
        keel_telemetry::propagation::continue_trace(&span, headers);
        if sent.is_some() && honoured.is_none() {
            span.in_scope(|| tracing::debug!("replaced an unusable X-Request-ID with a fresh one"));
        }
        Self {
            context: RequestContext::new(id),
            span,
            header_value,
            method: method.clone(),
            started,
        }
    }

    /// The request's id (the client's when usable, else a fresh one).
    pub fn id(&self) -> &str {
        self.context.request_id()
    }

    /// The request's id as the `X-Request-ID` value to send (`None` only for an id that is not a
    /// valid header value, which neither an accepted nor a fresh id is).
    pub fn request_id_header(&self) -> Option<&HeaderValue> {
        self.header_value.as_ref()
    }

    /// Ends the request to `route` (as given to [`ObservedRequest::begin`]) with `status`:
    /// counts it, logs its completion, and adds `security_headers` (those not already set) and
    /// `X-Request-ID` to the response `headers`.
    pub fn finish(
        self,
        route: &str,
        status: http::StatusCode,
        security_headers: &SecurityHeaders,
        headers: &mut http::HeaderMap,
    ) {
        let request_id = self.end(route, status);
        for (name, value) in security_headers.iter() {
            // One lookup per header: kept when the response set its own.
            headers.entry(name).or_insert_with(|| value.clone());
        }
        if let Some(value) = request_id {
            headers.insert(REQUEST_ID_HEADER_NAME, value);
        }
    }

    /// Ends the request like [`ObservedRequest::finish`] (counts it, logs its completion) for code
    /// that writes the response head itself: answers the `X-Request-ID` value to send (it replaces
    /// any other), and leaves the security headers to the caller (those the response does not set
    /// itself).
    pub fn end(self, route: &str, status: http::StatusCode) -> Option<HeaderValue> {
        self.end_at(route, status, Instant::now())
    }

    /// [`ObservedRequest::end`] for a request whose answer was ready at `finished` (its latency
    /// is counted until then): for code that has read the clock for the answer already.
    pub fn end_at(self, route: &str, status: http::StatusCode, finished: Instant) -> Option<HeaderValue> {
        let elapsed = finished.saturating_duration_since(self.started);
        record_request(&self.method, route, status, elapsed);
        self.log_end(route, status, elapsed)
    }

    /// [`ObservedRequest::end_at`] for a request to the route whose series `series` keeps: the
    /// count and latency are recorded through its handles, without a label lookup.
    pub fn end_kept(
        self,
        series: &RouteSeries,
        status: http::StatusCode,
        finished: Instant,
    ) -> Option<HeaderValue> {
        let elapsed = finished.saturating_duration_since(self.started);
        series.record(&self.method, status, elapsed);
        self.log_end(series.route, status, elapsed)
    }

    /// Logs the completion of a request to `route`; the `X-Request-ID` value to send.
    fn log_end(self, route: &str, status: http::StatusCode, elapsed: Duration) -> Option<HeaderValue> {
        self.span.in_scope(|| {
            let latency_ms = elapsed.as_secs_f64() * 1000.0;
            let status = status.as_u16();
            if QUIET_ROUTES.contains(&route) {
                tracing::debug!(status, latency_ms, "request completed");
            } else {
                tracing::info!(status, latency_ms, "request completed");
            }
        });
        self.header_value
    }
}

/// The security headers every response gets (`http.security_headers`), computed once.
pub type SecurityHeaders = Arc<[(HeaderName, HeaderValue)]>;

/// The security headers `config` asks for, as [`ObservedRequest::finish`] adds them.
pub fn security_headers_of(config: &HttpConfig) -> SecurityHeaders {
    security_headers(config)
}

/// The 503 problem a request gets when it does not complete within `timeout`
/// (`http.request_timeout_ms`, step 4).
pub fn request_timeout_problem(timeout: Duration) -> Problem {
    Problem::unavailable(format!(
        "the request did not complete within {} ms",
        timeout.as_millis()
    ))
    .with_retry_after(1)
}

/// The request series (`keel_http_requests_total`, `keel_http_request_duration_seconds`) of one
/// route template, kept by code that answers that route's requests without the router
/// ([`ObservedRequest::end_kept`]): recording a request is then one atomic operation per series,
/// with no label lookup, for every method label and the common statuses. Each method's handles
/// are made on its first request.
#[derive(Debug)]
pub struct RouteSeries {
    route: &'static str,
    by_method: [OnceLock<KeptStatusPairs>; METHOD_LABELS.len()],
}

impl RouteSeries {
    /// The series of requests to `route` (a route template, as the router's `MatchedPath`).
    pub fn new(route: &'static str) -> Self {
        Self {
            route,
            by_method: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Counts one request of `method` with `status` and records its latency.
    fn record(&self, method: &Method, status: http::StatusCode, elapsed: Duration) {
        let index = method_index(method);
        let method = METHOD_LABELS[index];
        let pairs = self.by_method[index].get_or_init(|| {
            KeptStatusPairs::new(
                REQUESTS_TOTAL,
                REQUEST_DURATION_SECONDS,
                &[("method", method), ("route", self.route)],
            )
        });
        pairs.increment_and_record(status, elapsed.as_secs_f64());
    }
}

/// The request counter's name.
const REQUESTS_TOTAL: &str = "keel_http_requests_total";
/// The request latency histogram's name.
const REQUEST_DURATION_SECONDS: &str = "keel_http_request_duration_seconds";

/// Counts one request and records its latency (`keel_http_requests_total`,
/// `keel_http_request_duration_seconds`), by method, route template and status.
fn record_request(method: &Method, route: &str, status: http::StatusCode, elapsed: Duration) {
    let labels = [
        ("method", method_label(method)),
        ("route", route),
        ("status", status.as_str()),
    ];
    keel_telemetry::metrics::increment_and_record(
        REQUESTS_TOTAL,
        REQUEST_DURATION_SECONDS,
        &labels,
        elapsed.as_secs_f64(),
    );
}

/// The `method` labels ([`method_label`]), in the order of [`method_index`].
const METHOD_LABELS: [&str; 11] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY", "other",
];

/// The index of `method`'s label in [`METHOD_LABELS`].
fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::CONNECT => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::PATCH => 8,
        _ if method.as_str() == "QUERY" => 9,
        _ => 10,
    }
}

/// The `method` label of a request: its method when HTTP defines it (RFC 9110, `PATCH`,
/// `QUERY`), else `other`. A client chooses the method freely, and every distinct label value is
/// a time series kept for the process's life: made-up methods must not add series.
fn method_label(method: &Method) -> &'static str {
    METHOD_LABELS[method_index(method)]
}

/// Step 3: the answer to a panicking handler, and its error-bus record.
fn panic_response(bus: &ErrorBus, panic: &(dyn Any + Send)) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned());
    let mut record = ErrorRecord::new("panic", format!("handler panicked: {message}"));
    if let Some(current) = context::current() {
        record = record.with_request_id(current.request_id());
        if let Some(user) = current.user_id() {
            record = record.with_user_id(user);
        }
    }
    bus.publish(record);
    Problem::internal().into_response()
}

/// Step 4: a request over the deadline becomes a 503 problem.
async fn enforce_timeout(timeout: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout_ms = timeout.as_millis() as u64, "request timed out");
            request_timeout_problem(timeout).into_response()
        }
    }
}

/// Step 5: a declared `Content-Length` over the limit is refused before the handler runs.
async fn reject_declared_oversize(limit: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Problem::payload_too_large(limit).into_response(),
        _ => next.run(request).await,
    }
}

/// Step 2: CORS from configuration; `None` (no layer, no cross-origin access) when no origin is allowed.
fn cors(config: &CorsConfig) -> Option<CorsLayer> {
    if config.allowed_origins.is_empty() {
        return None;
    }
    let origin = if config.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            config
                .allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    let methods: Vec<Method> = config
        .allowed_methods
        .iter()
        .filter_map(|m| m.parse().ok())
        .collect();
    let headers: Vec<HeaderName> = config
        .allowed_headers
        .iter()
        .filter_map(|h| h.parse().ok())
        .collect();
    let exposed: Vec<HeaderName> = config
        .exposed_headers
        .iter()
        .filter_map(|h| h.parse().ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods(methods)
            .allow_headers(headers)
            .expose_headers(exposed)
            .allow_credentials(config.allow_credentials)
            .max_age(Duration::from_secs(config.max_age_secs)),
    )
}

/// Step 1: the security headers of `config`, computed once.
fn security_headers(config: &HttpConfig) -> SecurityHeaders {
    let settings = &config.security_headers;
    if !settings.enabled {
        return Arc::new([]);
    }
    let mut headers = vec![
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    if let Ok(csp) = HeaderValue::from_str(&settings.content_security_policy)
        && !settings.content_security_policy.is_empty()
    {
        headers.push((header::CONTENT_SECURITY_POLICY, csp));
    }
    if settings.hsts_max_age_secs > 0
        && let Ok(hsts) = HeaderValue::from_str(&format!(
            "max-age={}; includeSubDomains",
            settings.hsts_max_age_secs
        ))
    {
        headers.push((header::STRICT_TRANSPORT_SECURITY, hsts));
    }
    headers.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_metric_label() -> Result<(), http::method::InvalidMethod> {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(method_label(&Method::from_bytes(b"QUERY")?), "QUERY");
        assert_eq!(method_label(&Method::from_bytes(b"FOO1")?), "other");
        assert_eq!(method_label(&Method::from_bytes(b"FOO2")?), "other");
        Ok(())
    }
}
