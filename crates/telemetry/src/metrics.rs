//! The process-wide Prometheus recorder behind the `metrics` macros.
//!
//! The `metrics` facade has one global recorder per process, so [`install`] is idempotent: the
//! first call installs it and every later call (another server in the same process, a test) gets
//! the same handle. Histograms whose name ends in `_seconds` get latency buckets from 0.5 ms to
//! 10 s, so `histogram_quantile` works in Prometheus.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets for `*_seconds` histograms: sub-millisecond resolution for fast paths up to slow queries.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder (once) and returns the handle that renders `/metrics`.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness's); ours then only
            // renders what was recorded through it, which is still a valid exposition.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

/// Help texts for the metrics every Keel process exports.
fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        "keel_http_requests_total",
        "HTTP requests served, by method, route template and status."
    );
    describe_histogram!(
        "keel_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method, route template and status."
    );
    describe_counter!(
        "keel_grpc_requests_total",
        "gRPC calls served, by service, method and gRPC status code."
    );
    describe_histogram!(
        "keel_grpc_request_duration_seconds",
        Unit::Seconds,
        "gRPC call latency by service, method and code."
    );
    describe_counter!(
        "keel_grpc_client_requests_total",
        "gRPC calls made, by service, method and gRPC status code."
    );
    describe_histogram!(
        "keel_grpc_client_request_duration_seconds",
        Unit::Seconds,
        "Latency of gRPC calls made."
    );
    describe_counter!(
        "keel_errors_total",
        "Unexpected errors published to the error bus, by kind."
    );
    describe_counter!(
        "keel_error_bus_dropped_total",
        "Error records dropped because the error bus was full."
    );
    describe_histogram!(
        "keel_db_query_duration_seconds",
        Unit::Seconds,
        "Database query latency by service and outcome."
    );
    describe_counter!(
        "keel_db_query_errors_total",
        "Failed database queries by service."
    );
    describe_counter!(
        "keel_ratelimit_decisions_total",
        "Rate-limit decisions by backend (memory, redis) and outcome (allowed, denied, unavailable)."
    );
}
