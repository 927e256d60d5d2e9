//! The proxy itself: route, check, pick an instance, forward, stream the answer back.
//!
//! Why a module of its own: this is the per-request path, the one that must stay fast and never
//! hang. Bodies are streamed: the client's request body is handed to the upstream request as it
//! arrives, and the upstream's response body to the client the same way; only a request body of a
//! small declared length (`gateway.upstream.buffer_body_bytes`) is read whole first, so the
//! upstream receives that request in one piece (408 when it does not arrive in time, 400 when it
//! ends early). Before anything is sent upstream a request passes the header limits (431), the
//! route's body limit when its length is declared (413), and the route's authentication and
//! permission (401, 403). Every failure is
//! answered at once as problem+json: no route 404, no instance 503, unreachable 502, no response
//! head within the route's timeout 504, a streamed body passing the limit 413.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::header::HeaderValue;
use http::request::Parts;
use http::{StatusCode, Uri, Version};
use keel_authn::Principal;
use keel_balancer::Pick;
use keel_http::Problem;
use keel_ratelimit::Decision;
use tokio::time::error::Elapsed;
use tracing::Instrument;

use crate::client_address::{Origin, TrustedProxies};
use crate::config::{GatewayConfig, RouteConfig};
use crate::edge::{self, EdgeAuth};
use crate::error::ProxyError;
use crate::headers::{self, UpstreamFields};
use crate::limits::{HeaderLimits, Limited, limit_body};
use crate::metrics::{self, NO_SERVICE, RouteMetrics, UNMATCHED_ROUTE};
use crate::policy::Access;
use crate::pool::{PooledBody, UpstreamError, UpstreamPools};
use crate::rate_limit::{RateClass, RateLimits};
use crate::routes::{RouteTable, has_dot_segment};
use crate::upgrade::ClientUpgrade;
use crate::upstream::{Target, Upstream};

/// A route ready to serve: where it goes and how.
#[derive(Debug)]
pub(crate) struct Route {
    /// Its series (labelled with the configured prefix), kept with it.
    pub(crate) metrics: RouteMetrics,
    pub(crate) upstream: Arc<Upstream>,
    strip_prefix: bool,
    pub(crate) timeout: Duration,
    access: Access,
    body_limit: u64,
    /// The rate-limit class requests of this route count against.
    rate_class: Option<Arc<RateClass>>,
}

impl Route {
    /// The route `config` describes, served by `upstream`, with the gateway's defaults (`gateway`)
    /// for what it does not set itself.
    pub(crate) fn new(
        config: RouteConfig,
        upstream: Arc<Upstream>,
        gateway: &GatewayConfig,
        rate_class: Option<Arc<RateClass>>,
    ) -> Self {
        Self {
            rate_class,
            access: Access::of(&config),
            body_limit: config.body_limit_bytes.unwrap_or(gateway.body_limit_bytes),
            timeout: config
                .timeout_ms
                .map_or(gateway.upstream.timeout(), Duration::from_millis),
            strip_prefix: config.strip_prefix,
            metrics: RouteMetrics::new(&config.prefix, upstream.service()),
            upstream,
        }
    }
}

/// What a configuration decides and a reload replaces: the route table, the rate limits and the
/// header limits.
#[derive(Debug)]
pub(crate) struct Routing {
    pub(crate) table: RouteTable<Route>,
    limits: RateLimits,
    header_limits: HeaderLimits,
    trusted_proxies: TrustedProxies,
    /// `gateway.upstream.buffer_body_bytes`.
    buffer_body_bytes: u64,
}

impl Routing {
    /// The routing `config` describes over `table` and `limits`.
    pub(crate) fn new(
        table: RouteTable<Route>,
        limits: RateLimits,
        trusted_proxies: TrustedProxies,
        config: &GatewayConfig,
    ) -> Self {
        Self {
            table,
            limits,
            trusted_proxies,
            header_limits: HeaderLimits {
                max_headers: config.max_headers,
                max_bytes: config.max_header_bytes,
            },
            buffer_body_bytes: config.upstream.buffer_body_bytes,
        }
    }
}

/// The current routing, the edge authentication and the upstream connection pools.
///
/// The routing sits behind an [`ArcSwap`]: a request takes the routing current when it arrives
/// and keeps it to the end, and a reload swaps in a new one for the requests after it, so no
/// connection or request in flight is disturbed.
///
/// Each thread that serves requests has its own pool of upstream connections ([`UpstreamPools`]):
/// on the gateway's worker threads (`keel_http::HttpServer::with_worker_threads`) a request only
/// ever uses connections driven by its own thread, with no cross-thread hand-off.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub(crate) routing: ArcSwap<Routing>,
    pools: Arc<UpstreamPools>,
    auth: EdgeAuth,
}

impl Proxy {
    /// A proxy over `table`, authenticating with `auth` and connecting to upstreams as `config`
    /// says (call within a Tokio runtime: the pools start their idle sweep).
    pub(crate) fn new(routing: Routing, auth: EdgeAuth, config: &GatewayConfig) -> Self {
        Self {
            routing: ArcSwap::from_pointee(routing),
            pools: UpstreamPools::start(&config.upstream),
            auth,
        }
    }

    /// Serves the requests that arrive from now on with `routing`.
    pub(crate) fn replace_routing(&self, routing: Routing) {
        self.routing.store(Arc::new(routing));
    }

    /// The routed services that have no healthy instance now, sorted, each once.
    pub(crate) fn unavailable_services(&self) -> Vec<String> {
        let routing = self.routing.load();
        let mut missing: Vec<String> = routing
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
        let received = Instant::now();
        let routing = self.routing.load_full();
        let path = request.uri().path();
        let found = match has_dot_segment(path) {
            true => Err(ProxyError::DotSegment),
            false => routing
                .table
                .find(path, request.method())
                .map_err(|allowed| match allowed.is_empty() {
                    true => ProxyError::NoRoute,
                    false => ProxyError::MethodNotAllowed { allowed },
                }),
        };
        match found {
            Err(error) => {
                let peer = request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(address)| *address);
                let response = self.unrouted(&routing, &error, request.headers(), peer).await;
                metrics::request(UNMATCHED_ROUTE, NO_SERVICE, response.status());
                metrics::request_duration(UNMATCHED_ROUTE, received.elapsed());
                response
            }
            Ok((route, matched)) => {
                let response = self.serve_route(&routing, route, matched, request).await;
                route.metrics.answered(response.status(), received.elapsed());
                response
            }
        }
    }

    /// Answers a request `route` matched (`matched` bytes of its path): admitted (`admit`: rate
    /// limits, header limits, declared body size, authentication and permission), then proxied.
    async fn serve_route(
        &self,
        routing: &Routing,
        route: &Route,
        matched: usize,
        request: Request,
    ) -> Response {
        let service = route.upstream.service();
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| *address);
        let (parts, body) = request.into_parts();
        let admitted = match self.admit(routing, route, &parts, body, None, peer).await {
            Ok(admitted) => admitted,
            Err(refused) => return refused,
        };
        let Admitted {
            body,
            principal,
            origin,
            decision,
            deadline,
        } = admitted;
        let body = match body.declared {
            Some(length @ 1..) if length <= routing.buffer_body_bytes => {
                match read_whole(body, deadline, route.timeout).await {
                    Ok(body) => body,
                    Err(error) => return with_decision(fail(service, &error), decision.as_ref()),
                }
            }
            _ => body,
        };
        let sent = self.send(
            route,
            matched,
            parts,
            body,
            principal.as_deref(),
            origin,
            deadline,
        );
        let response = match sent.await {
            Ok(response) => response,
            Err(error) => fail(service, &error),
        };
        with_decision(response, decision.as_ref())
    }

    /// The first half of serving a request `route` matched (its head `parts` and `body`; the
    /// stack's `request_id` when `parts` are as the client sent them, as for
    /// `HeaderLimits::check`), from `peer` (`None` when unknown), in order: the client address's
    /// rate limit (429), header limits (431), declared body size (413), authentication and
    /// permission (401, 403), the user's rate limit (429), each refusal answered with the
    /// rate-limit headers. What is admitted has been counted against the rate limits and has the
    /// deadline of the route's timeout, from now.
    pub(crate) async fn admit(
        &self,
        routing: &Routing,
        route: &Route,
        parts: &Parts,
        body: Body,
        request_id: Option<&HeaderValue>,
        peer: Option<SocketAddr>,
    ) -> Result<Admitted, Response> {
        let service = route.upstream.service();
        let origin = peer.map(|address| routing.trusted_proxies.resolve(address.ip(), &parts.headers));
        let class = route.rate_class.as_deref();
        // Counted before anything else is checked: a request refused below draws on its address's
        // budget too, and once that is spent a flood of bad tokens costs no verification.
        let by_address = match class {
            Some(class) => {
                let client = origin.map(|origin| origin.client);
                routing.limits.check_address(class, client).await
            }
            None => None,
        };
        let refuse = |response: Response, decision: Option<&Decision>| {
            if let Some(class) = class {
                routing.limits.settle(class, decision);
            }
            with_decision(response, decision)
        };
        if let Some(decision) = by_address.filter(|decision| !decision.allowed) {
            return Err(refuse(rate_limited(&decision), Some(&decision)));
        }
        let checked = routing
            .header_limits
            .check(&parts.headers, request_id)
            .and_then(|()| limit_body(&parts.headers, body, route.body_limit));
        let body = checked.map_err(|error| refuse(fail(service, &error), by_address.as_ref()))?;
        let admitted = self.auth.admit(&route.access, &parts.headers).await;
        route.metrics.auth(edge::outcome(&route.access, &admitted));
        let principal = admitted.map_err(|refused| refuse(refused.into_response(), by_address.as_ref()))?;
        // The caller is known (`principal`, else the client address) and nothing has been sent
        // upstream yet: count the request against its user's budget too.
        let decision = match class {
            Some(class) => {
                let user = principal.as_deref().map(|principal| principal.user_id);
                let decision = routing.limits.check_user(class, user, by_address).await;
                routing.limits.settle(class, decision.as_ref());
                decision
            }
            None => None,
        };
        if let Some(decision) = decision.as_ref().filter(|decision| !decision.allowed) {
            return Err(rate_limited(decision));
        }
        Ok(Admitted {
            body,
            principal,
            origin,
            decision,
            // One deadline for reading a small body and for the upstream's answer: the route's
            // timeout bounds both together.
            deadline: tokio::time::Instant::now() + route.timeout,
        })
    }

    /// The answer to a request no route takes (`error`: 404, 405, or 400 for a dot segment),
    /// from `peer` (`None` when unknown): like every request, it counts against its client
    /// address's budget (of the `default` class) and carries the rate-limit headers, or is 429
    /// once that budget is spent.
    pub(crate) async fn unrouted(
        &self,
        routing: &Routing,
        error: &ProxyError,
        headers: &http::HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Response {
        let decision = match (routing.limits.default_class(), peer) {
            (Some(class), Some(peer)) => {
                let client = routing.trusted_proxies.resolve(peer.ip(), headers).client;
                let decision = routing.limits.check_address(class, Some(client)).await;
                routing.limits.settle(class, decision.as_ref());
                decision
            }
            _ => None,
        };
        match decision {
            Some(decision) if !decision.allowed => rate_limited(&decision),
            decision => with_decision(fail(NO_SERVICE, error), decision.as_ref()),
        }
    }

    /// Sends the request to an instance of `route`'s service as `principal` (if any), from
    /// `origin` (`None` when the peer is unknown); `matched` is the length of the path the route's
    /// prefix matched. The response head must arrive by `deadline`.
    #[allow(clippy::too_many_arguments)] // one call site; each argument is a distinct input
    async fn send(
        &self,
        route: &Route,
        matched: usize,
        mut parts: Parts,
        body: Limited,
        principal: Option<&Principal>,
        origin: Option<Origin>,
        deadline: tokio::time::Instant,
    ) -> Result<Response, ProxyError> {
        let upgrade = ClientUpgrade::take(&mut parts);
        let Outbound {
            pick,
            span,
            uri,
            fields,
        } = prepare_upstream(route, matched, &parts, None, principal, origin)?;
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        fields.apply(&mut parts.headers);
        // After the hop-by-hop fields went: the upgrade's own are restored.
        if let Some(upgrade) = &upgrade {
            upgrade.restore_request_headers(&mut parts.headers);
        }
        let started = Instant::now();
        let exchange = self
            .pools
            .send(pick.endpoint(), Request::from_parts(parts, body.body), body.whole);
        let sent = tokio::time::timeout_at(deadline, exchange).instrument(span).await;
        route.metrics.upstream_duration(started.elapsed());
        settle(sent, &pick, route, body.tripped.as_ref(), upgrade)
    }
}

/// What [`Proxy::admit`] found of a request a route admitted (its head stays with the caller):
/// nothing sent upstream yet.
pub(crate) struct Admitted {
    /// Its body, within the route's limit.
    pub(crate) body: Limited,
    /// The verified caller, if any.
    pub(crate) principal: Option<Arc<Principal>>,
    /// Where it comes from (`None` when the peer is unknown).
    pub(crate) origin: Option<Origin>,
    /// The rate-limit decision (an allowing one), whose headers go on the answer.
    pub(crate) decision: Option<Decision>,
    /// When the upstream's answer (and a small body read before it) must have arrived.
    pub(crate) deadline: tokio::time::Instant,
}

/// Where an admitted request goes and what it carries there: the instance, the span its exchange
/// runs in, its target and its head fields.
pub(crate) struct Outbound {
    /// The instance (report the outcome to it).
    pub(crate) pick: Pick<Target>,
    /// The `gateway.upstream` span.
    pub(crate) span: tracing::Span,
    /// The request target at the upstream (origin form, the route's prefix stripped if it asks).
    pub(crate) uri: Uri,
    /// The head fields for the upstream (the `headers` module's policy, `Host` the instance's).
    pub(crate) fields: UpstreamFields,
}

/// Picks an instance of `route`'s service and works out the request it receives from the client's
/// `parts` (header policy of the `headers` module, `principal`'s identity, the upstream URI and
/// `Host`); `matched` is the length of the path the route's prefix matched, `request_id` the
/// stack's request id when the caller holds it (`UpstreamFields::of`).
pub(crate) fn prepare_upstream(
    route: &Route,
    matched: usize,
    parts: &Parts,
    request_id: Option<&HeaderValue>,
    principal: Option<&Principal>,
    origin: Option<Origin>,
) -> Result<Outbound, ProxyError> {
    let service = route.upstream.service();
    let pick = route
        .upstream
        .pick_instance()
        .ok_or_else(|| ProxyError::NoInstance {
            service: service.to_owned(),
        })?;
    let authority = pick.endpoint();
    let span = tracing::debug_span!("gateway.upstream", service, upstream = %authority);
    let strip = route.strip_prefix.then_some(matched);
    let host = match &pick.payload().host {
        Some(host) => Ok(host.clone()),
        None => HeaderValue::from_str(authority).map_err(http::Error::from),
    };
    let target = host.and_then(|host| Ok((host, upstream_uri(&parts.uri, strip)?)));
    let (host, uri) = target.map_err(|source| ProxyError::BadTarget {
        service: service.to_owned(),
        authority: authority.to_owned(),
        source,
    })?;
    // In the upstream span: `traceparent` names it.
    let fields = span.in_scope(|| UpstreamFields::of(parts, request_id, host, origin, principal));
    Ok(Outbound {
        pick,
        span,
        uri,
        fields,
    })
}

/// What the upstream exchange's outcome means for the client: the response, or the failure to
/// answer with. Reports the instance's behaviour to the balancer: any response head is a success,
/// a refused connection a failure; other failures say nothing about the instance. A `101` to a
/// request that asked to `upgrade` starts the tunnel between the two connections.
fn settle(
    sent: Result<Result<http::Response<PooledBody>, UpstreamError>, Elapsed>,
    pick: &Pick<Target>,
    route: &Route,
    tripped: Option<&Arc<AtomicBool>>,
    upgrade: Option<ClientUpgrade>,
) -> Result<Response, ProxyError> {
    // Owned names only for the failures (the success path allocates nothing).
    let service = || route.upstream.service().to_owned();
    let authority = || pick.endpoint().to_owned();
    match sent {
        Ok(Ok(mut response)) => {
            pick.succeeded();
            if let Some(upgrade) = upgrade {
                response = upgrade.complete(response, route.upstream.service());
            } else {
                headers::prepare_response(response.headers_mut());
            }
            Ok(response.map(Body::new))
        }
        // The client's body passed the limit mid-stream, which cut the exchange off.
        Ok(Err(_)) | Err(_) if Limited::was_tripped(tripped) => Err(ProxyError::BodyTooLarge {
            limit: route.body_limit,
        }),
        Ok(Err(source)) if source.is_connect() => {
            pick.failed();
            Err(ProxyError::Connect {
                service: service(),
                authority: authority(),
                source,
            })
        }
        Ok(Err(source)) => Err(ProxyError::Exchange {
            service: service(),
            authority: authority(),
            source,
        }),
        Err(_) => Err(ProxyError::Timeout {
            service: service(),
            authority: authority(),
            after: route.timeout,
        }),
    }
}

/// `body` (of a declared length) read to its end by `deadline` (the route's `timeout` from the
/// moment the request was checked, authenticated and counted), as one chunk, so that hyper writes
/// it upstream in the same write as the request head.
async fn read_whole(
    body: Limited,
    deadline: tokio::time::Instant,
    timeout: Duration,
) -> Result<Limited, ProxyError> {
    let limit = body
        .declared
        .and_then(|length| usize::try_from(length).ok())
        .unwrap_or(usize::MAX);
    match tokio::time::timeout_at(deadline, axum::body::to_bytes(body.body, limit)).await {
        Ok(Ok(bytes)) => Ok(Limited {
            body: Body::from(bytes.clone()),
            whole: Some(bytes),
            ..body
        }),
        Ok(Err(source)) => Err(ProxyError::ClientBody { source }),
        Err(_) => Err(ProxyError::ClientBodyTimeout { after: timeout }),
    }
}

/// The axum handler every path is routed to.
pub(crate) async fn serve(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    proxy.forward(request).await
}

/// `response` with the rate-limit headers of `decision` (none without one).
pub(crate) fn with_decision(mut response: Response, decision: Option<&Decision>) -> Response {
    if let Some(decision) = decision {
        decision.apply_headers(response.headers_mut());
    }
    response
}

/// The 429 problem of a denied request, with the rate-limit headers and `Retry-After`.
fn rate_limited(decision: &Decision) -> Response {
    let problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
        .with_detail("the request rate limit was exceeded; retry after the time in Retry-After")
        .with_retry_after(decision.retry_after_secs().unwrap_or(1));
    let mut response = problem.into_response();
    decision.apply_headers(response.headers_mut());
    response
}

/// Logs and counts a failure, and answers it.
pub(crate) fn fail(service: &str, error: &ProxyError) -> Response {
    match error.upstream_kind() {
        Some(kind) => {
            metrics::upstream_error(service, kind);
            tracing::warn!(error = %error, "upstream request failed");
        }
        None => tracing::debug!(error = %error, "request refused at the gateway"),
    }
    let mut response = error.problem().into_response();
    if let ProxyError::MethodNotAllowed { allowed } = error
        && let Ok(value) = http::HeaderValue::from_str(&crate::error::allow_header(allowed))
    {
        response.headers_mut().insert(http::header::ALLOW, value);
    }
    response
}

/// `<path>?<query>` (origin form, the instance goes in `Host`), the path without its first `strip`
/// bytes when given (`/` when nothing is left).
fn upstream_uri(original: &Uri, strip: Option<usize>) -> Result<Uri, http::Error> {
    // An HTTP/1.1 request's target is already in origin form.
    if strip.is_none() && original.scheme().is_none() && original.authority().is_none() {
        return Ok(original.clone());
    }
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
    Uri::builder().path_and_query(path_and_query).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_uri_keeps_the_query_and_strips_only_when_asked() -> Result<(), http::Error> {
        let original: Uri = "/api/v1/auth/login?next=%2Fhome".parse()?;
        let kept = upstream_uri(&original, None)?;
        assert_eq!(kept.to_string(), "/api/v1/auth/login?next=%2Fhome");
        let stripped = upstream_uri(&original, Some("/api/v1/auth".len()))?;
        assert_eq!(stripped.to_string(), "/login?next=%2Fhome");
        let whole: Uri = "/api/v1/auth".parse()?;
        let root = upstream_uri(&whole, Some("/api/v1/auth".len()))?;
        assert_eq!(root.to_string(), "/");
        // HTTP/2 requests carry the absolute form.
        let absolute: Uri = "http://gateway.example/api/v1/users?limit=5".parse()?;
        assert_eq!(
            upstream_uri(&absolute, None)?.to_string(),
            "/api/v1/users?limit=5"
        );
        Ok(())
    }
}
