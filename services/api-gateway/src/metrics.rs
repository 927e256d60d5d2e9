//! The gateway's own metrics, beside the `keel_http_*` ones the HTTP stack records.
//!
//! Labels are bounded: `route` is the configured prefix (or `unmatched`), never the raw path;
//! `service` is a routed service name (or `none`).

use std::time::Duration;

/// `route` label of requests no route matched.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";
/// `service` label of requests that reached no service.
pub(crate) const NO_SERVICE: &str = "none";

const REQUESTS: &str = "keel_gateway_requests_total";
const UPSTREAM_DURATION: &str = "keel_gateway_upstream_duration_seconds";
const UPSTREAM_ERRORS: &str = "keel_gateway_upstream_errors_total";
const REQUEST_DURATION: &str = "keel_gateway_request_duration_seconds";
const AUTH: &str = "keel_gateway_auth_total";
const TUNNELS: &str = "keel_gateway_tunnels_total";
const OPEN_TUNNELS: &str = "keel_gateway_open_tunnels";

/// Registers the help texts (idempotent; called when a gateway is built).
pub(crate) fn describe() {
    metrics::describe_counter!(
        REQUESTS,
        "Requests answered by the gateway, by route prefix, service and status."
    );
    metrics::describe_histogram!(
        UPSTREAM_DURATION,
        metrics::Unit::Seconds,
        "Time from sending a request upstream to receiving its response head, by service."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time from a request reaching the gateway to its response head, by route prefix."
    );
    metrics::describe_counter!(
        AUTH,
        "Authentication decisions at the gateway, by route prefix and outcome (public, anonymous, authenticated, allowed, missing, invalid, denied, unavailable)."
    );
    metrics::describe_counter!(
        TUNNELS,
        "Upgraded connections (WebSocket) the gateway tunnelled after an upstream's 101, by service and outcome (opened, failed)."
    );
    metrics::describe_gauge!(
        OPEN_TUNNELS,
        "Upgraded connections (WebSocket) being tunnelled now, by service."
    );
    metrics::describe_gauge!(
        crate::connector::UPSTREAM_CONNECTIONS,
        "Connections open from the gateway's pools to an upstream instance (idle or busy), by upstream host:port."
    );
    metrics::describe_counter!(
        crate::connector::UPSTREAM_CONNECTS,
        "Connections opened to an upstream instance, by upstream host:port; a steady value under load means keep-alive works."
    );
    metrics::describe_counter!(
        crate::pool::UPSTREAM_REPLAYS,
        "Safe requests sent a second time, on a new connection, because the kept-alive connection they were written on closed under them without an answer, by upstream host:port."
    );
    metrics::describe_counter!(
        UPSTREAM_ERRORS,
        "Requests that got no upstream response, by service and kind (no_instance, connect, exchange, timeout, bad_target)."
    );
}

// A request a route matched records through the route's own handles (`RouteMetrics`); the
// others (no route, upstream errors) through handles cached per thread (`keel_telemetry::metrics`):
// either way no label strings are allocated and no metric key hashed in the shared registry per
// request.
use keel_telemetry::metrics::{
    KeptCounter, KeptHistogram, KeptStatusCounters, increment_counter, record_histogram,
};

use crate::edge::AuthOutcome;

/// The series of one route, kept with it: a request it matched records each with one atomic
/// operation, without looking its labels up (a request answered with a rare status goes through
/// the per-thread cache: `KeptStatusCounters`).
#[derive(Debug)]
pub(crate) struct RouteMetrics {
    /// `keel_gateway_requests_total{route, service, status}`.
    requests: KeptStatusCounters,
    /// `keel_gateway_request_duration_seconds{route}`.
    duration: KeptHistogram,
    /// `keel_gateway_upstream_duration_seconds{service}`.
    upstream_duration: KeptHistogram,
    /// `keel_gateway_auth_total{route, outcome}`, by [`AuthOutcome::index`].
    auth: Vec<KeptCounter>,
}

impl RouteMetrics {
    /// The series of the route with the label `route` to `service`.
    pub(crate) fn new(route: &str, service: &str) -> Self {
        Self {
            requests: KeptStatusCounters::new(REQUESTS, &[("route", route), ("service", service)]),
            duration: KeptHistogram::new(REQUEST_DURATION, &[("route", route)]),
            upstream_duration: KeptHistogram::new(UPSTREAM_DURATION, &[("service", service)]),
            auth: AuthOutcome::ALL
                .iter()
                .map(|outcome| KeptCounter::new(AUTH, &[("route", route), ("outcome", outcome.label())]))
                .collect(),
        }
    }

    /// One answered request, `elapsed` after it reached the gateway (as [`request`] and
    /// [`request_duration`] count it).
    pub(crate) fn answered(&self, status: http::StatusCode, elapsed: Duration) {
        self.requests.increment(status);
        self.duration.record(elapsed.as_secs_f64());
    }

    /// One authentication decision on a request of the route.
    pub(crate) fn auth(&self, outcome: AuthOutcome) {
        if let Some(counter) = self.auth.get(outcome.index()) {
            counter.increment();
        }
    }

    /// One upstream exchange's time to the response head (or to its failure).
    pub(crate) fn upstream_duration(&self, elapsed: Duration) {
        self.upstream_duration.record(elapsed.as_secs_f64());
    }
}

/// One answered request.
pub(crate) fn request(route: &str, service: &str, status: http::StatusCode) {
    increment_counter(
        REQUESTS,
        &[
            ("route", route),
            ("service", service),
            ("status", status.as_str()),
        ],
    );
}

/// How long the gateway took to answer a request of `route` (to the response head).
pub(crate) fn request_duration(route: &str, elapsed: Duration) {
    record_histogram(REQUEST_DURATION, &[("route", route)], elapsed.as_secs_f64());
}

/// One request that got no upstream response.
pub(crate) fn upstream_error(service: &str, kind: &'static str) {
    increment_counter(UPSTREAM_ERRORS, &[("service", service), ("kind", kind)]);
}

/// An upgrade the upstream accepted that never became a tunnel (a side went away first).
pub(crate) fn tunnel_failed(service: &str) {
    metrics::counter!(TUNNELS, "service" => service.to_owned(), "outcome" => "failed").increment(1);
}

/// One open tunnel, counted in `keel_gateway_open_tunnels` from [`TunnelOpen::new`] until dropped.
pub(crate) struct TunnelOpen {
    open: metrics::Gauge,
}

impl TunnelOpen {
    /// Counts a tunnel of `service` that has just opened.
    pub(crate) fn new(service: &str) -> Self {
        metrics::counter!(TUNNELS, "service" => service.to_owned(), "outcome" => "opened").increment(1);
        let open = metrics::gauge!(OPEN_TUNNELS, "service" => service.to_owned());
        open.increment(1.0);
        Self { open }
    }
}

impl Drop for TunnelOpen {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}
