//! The process-wide Prometheus recorder behind the `metrics` macros.
//!
//! The `metrics` facade has one global recorder per process, so [`install`] is idempotent: the
//! first call installs it and every later call (another server in the same process, a test) gets
//! the same handle. Histograms whose name ends in `_seconds` get latency buckets from 0.5 ms to
//! 10 s, so `histogram_quantile` works in Prometheus.
//!
//! [`increment_counter`] and [`record_histogram`] are for hot paths (every request): they keep the
//! handle of each name and label set once registered, so a request neither allocates its label
//! strings nor hashes a metric key in the shared registry. Where the owner of a label set lives
//! as long as its series are counted (a gateway route, a rate-limit class), [`KeptCounter`],
//! [`KeptHistogram`] and [`KeptStatusCounters`] do better still: the owner holds the handles, so
//! recording is one atomic operation, with no lookup at all (for a status-labelled counter, or
//! [`KeptStatusPairs`]' counter and histogram, when the status is a common one).

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use http::StatusCode;

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

/// The handles of one kind a thread has registered, found by the hash of their name and labels
/// ([`key_hash`]) and compared piece by piece, so a lookup builds no key. Hashed with foldhash
/// rather than SipHash: this lookup runs for every metric a request records, and its keys come
/// from bounded label sets (callers must never label with a value a client chooses freely: every
/// distinct value is a series kept for the process's life, here and in the exporter).
struct HandleCache<H> {
    entries: hashbrown::HashTable<Cached<H>>,
    hasher: foldhash::fast::RandomState,
}

impl<H> HandleCache<H> {
    /// Keeps `handle`, registered for `name` with `labels`, under their `hash`.
    fn keep(&mut self, hash: u64, name: &'static str, labels: &[(&'static str, &str)], handle: H) {
        let labels = labels
            .iter()
            .map(|(label, value)| (*label, Box::from(*value)))
            .collect();
        let cached = Cached {
            hash,
            name,
            labels,
            handle,
        };
        self.entries.insert_unique(hash, cached, |cached| cached.hash);
    }
}

impl<H> Default for HandleCache<H> {
    fn default() -> Self {
        Self {
            entries: hashbrown::HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

/// One registered handle and what it was registered with.
struct Cached<H> {
    hash: u64,
    name: &'static str,
    labels: Box<[(&'static str, Box<str>)]>,
    handle: H,
}

impl<H> Cached<H> {
    fn is(&self, name: &'static str, labels: &[(&'static str, &str)]) -> bool {
        same_static(self.name, name)
            && self.labels.len() == labels.len()
            && self
                .labels
                .iter()
                .zip(labels)
                .all(|((label, value), (wanted, wanted_value))| {
                    same_static(label, wanted) && **value == **wanted_value
                })
    }
}

/// Whether two static strings are equal: the same literal is the same memory (checked first, no
/// comparison of bytes), but two copies of one literal may not be.
fn same_static(a: &'static str, b: &'static str) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// The handles a thread has registered, by name and label values.
#[derive(Default)]
struct Handles {
    counters: HandleCache<metrics::Counter>,
    histograms: HandleCache<metrics::Histogram>,
    /// [`increment_and_record`]'s pairs, with the histogram's name.
    pairs: HandleCache<(metrics::Counter, metrics::Histogram, &'static str)>,
}

thread_local! {
    /// Per thread, so no lock is taken on the request path. Bounded as the label values are
    /// (which a metric's labels must be anyway).
    static HANDLES: RefCell<Handles> = RefCell::new(Handles::default());
}

/// The hash of `name` and the labels: the static strings (the name, the label names) by
/// address, which costs nothing per byte, and the label values by content, each preceded by its
/// length so no two label sets hash the same pieces whatever characters their values hold. Two
/// copies of one literal hash apart and are cached twice, both handles of the same metric.
fn key_hash(
    hasher: &foldhash::fast::RandomState,
    name: &'static str,
    labels: &[(&'static str, &str)],
) -> u64 {
    let mut state = hasher.build_hasher();
    state.write_usize(name.as_ptr() as usize);
    for (label, value) in labels {
        state.write_usize(label.as_ptr() as usize);
        state.write_usize(value.len());
        state.write(value.as_bytes());
    }
    state.finish()
}

/// The owned labels to register a handle with.
fn owned(labels: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    labels
        .iter()
        .map(|(label, value)| (*label, (*value).to_owned()))
        .collect()
}

/// Applies `apply` to the handle of `name` with `labels` kept in the map `cache` picks, registered
/// with `register` on first use. While no recorder of ours is installed the handle is registered
/// every time and not kept: a handle taken then could stay a no-op one forever.
fn with_cached_handle<H>(
    cache: fn(&mut Handles) -> &mut HandleCache<H>,
    name: &'static str,
    labels: &[(&'static str, &str)],
    register: impl FnOnce(Vec<(&'static str, String)>) -> H,
    apply: impl FnOnce(&H),
) {
    if HANDLE.get().is_none() {
        apply(&register(owned(labels)));
        return;
    }
    HANDLES.with_borrow_mut(|handles| {
        let known = cache(handles);
        let hash = key_hash(&known.hasher, name, labels);
        match known.entries.find(hash, |cached| cached.is(name, labels)) {
            Some(cached) => apply(&cached.handle),
            None => {
                let handle = register(owned(labels));
                apply(&handle);
                known.keep(hash, name, labels, handle);
            }
        }
    });
}

/// Adds one to the counter `name` with `labels`, as `metrics::counter!(name, labels)
/// .increment(1)` does, but through a handle kept per thread once the recorder is installed.
pub fn increment_counter(name: &'static str, labels: &[(&'static str, &str)]) {
    with_cached_handle(
        |handles| &mut handles.counters,
        name,
        labels,
        |labels| metrics::counter!(name, &labels),
        |counter| counter.increment(1),
    );
}

/// Records `value` in the histogram `name` with `labels`, as `metrics::histogram!(name, labels)
/// .record(value)` does, but through a handle kept per thread once the recorder is installed.
pub fn record_histogram(name: &'static str, labels: &[(&'static str, &str)], value: f64) {
    with_cached_handle(
        |handles| &mut handles.histograms,
        name,
        labels,
        |labels| metrics::histogram!(name, &labels),
        |histogram| histogram.record(value),
    );
}

/// Adds one to the counter `counter` and records `value` in the histogram `histogram`, both with
/// `labels`: what [`increment_counter`] and [`record_histogram`] do, with one lookup for the two.
pub fn increment_and_record(
    counter: &'static str,
    histogram: &'static str,
    labels: &[(&'static str, &str)],
    value: f64,
) {
    if HANDLE.get().is_none() {
        let labels = owned(labels);
        metrics::counter!(counter, &labels).increment(1);
        metrics::histogram!(histogram, &labels).record(value);
        return;
    }
    HANDLES.with_borrow_mut(|handles| {
        let known = &mut handles.pairs;
        let mut state = known.hasher.build_hasher();
        state.write_usize(histogram.as_ptr() as usize);
        let hash = key_hash(&known.hasher, counter, labels) ^ state.finish();
        let found = known.entries.find(hash, |cached| {
            cached.is(counter, labels) && same_static(cached.handle.2, histogram)
        });
        if let Some(Cached {
            handle: (kept_counter, kept_histogram, _),
            ..
        }) = found
        {
            kept_counter.increment(1);
            kept_histogram.record(value);
            return;
        }
        let registered = owned(labels);
        let handle = (
            metrics::counter!(counter, &registered),
            metrics::histogram!(histogram, &registered),
            histogram,
        );
        handle.0.increment(1);
        handle.1.record(value);
        known.keep(hash, counter, labels, handle);
    });
}

/// The name and labels of one series, owned by whoever keeps its handle.
#[derive(Debug)]
struct Series {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
}

impl Series {
    fn new(name: &'static str, labels: &[(&'static str, &str)]) -> Self {
        Self {
            name,
            labels: owned(labels),
        }
    }
}

/// The handle kept in `cell`, registered by `register` on first use. While no recorder of ours is
/// installed the handle is registered every time and not kept (as in [`with_cached_handle`]).
/// Once it is, the handle of the first use is kept for the owner's life, from whichever recorder
/// was current then: code that counts under a local recorder (`metrics::with_local_recorder`, in
/// tests) after [`install`] must use owners of its own, not ones first used under the global one.
fn with_kept_handle<H>(cell: &OnceLock<H>, register: impl FnOnce() -> H, apply: impl FnOnce(&H)) {
    if let Some(handle) = cell.get() {
        apply(handle);
    } else if HANDLE.get().is_none() {
        apply(&register());
    } else {
        apply(cell.get_or_init(register));
    }
}

/// A counter of one name and label set, kept by its owner: incrementing it is one atomic add.
/// For label sets whose owner lives while they are counted (a route, a class); a label set made
/// per request belongs in [`increment_counter`].
#[derive(Debug)]
pub struct KeptCounter {
    series: Series,
    handle: OnceLock<metrics::Counter>,
}

impl KeptCounter {
    /// The counter `name` with `labels` (registered with the recorder on first use).
    pub fn new(name: &'static str, labels: &[(&'static str, &str)]) -> Self {
        Self {
            series: Series::new(name, labels),
            handle: OnceLock::new(),
        }
    }

    /// Adds one, as `metrics::counter!(name, labels).increment(1)` does.
    pub fn increment(&self) {
        let Series { name, labels } = &self.series;
        with_kept_handle(
            &self.handle,
            || metrics::counter!(*name, labels),
            |counter| counter.increment(1),
        );
    }
}

/// A histogram of one name and label set, kept by its owner (see [`KeptCounter`]).
#[derive(Debug)]
pub struct KeptHistogram {
    series: Series,
    handle: OnceLock<metrics::Histogram>,
}

impl KeptHistogram {
    /// The histogram `name` with `labels` (registered with the recorder on first use).
    pub fn new(name: &'static str, labels: &[(&'static str, &str)]) -> Self {
        Self {
            series: Series::new(name, labels),
            handle: OnceLock::new(),
        }
    }

    /// Records `value`, as `metrics::histogram!(name, labels).record(value)` does.
    pub fn record(&self, value: f64) {
        let Series { name, labels } = &self.series;
        with_kept_handle(
            &self.handle,
            || metrics::histogram!(*name, labels),
            |histogram| histogram.record(value),
        );
    }
}

/// The statuses [`KeptStatusCounters`] keeps a handle for: the ones services and the gateway
/// answer every day, the gateway's own refusals and upstream failures included.
const KEPT_STATUSES: [u16; 27] = [
    200, 201, 202, 204, 206, 301, 302, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429,
    431, 500, 501, 502, 503, 504,
];

/// The slot of `status` in [`KEPT_STATUSES`].
fn kept_slot(status: u16) -> Option<usize> {
    Some(match status {
        200 => 0,
        201 => 1,
        202 => 2,
        204 => 3,
        206 => 4,
        301 => 5,
        302 => 6,
        304 => 7,
        307 => 8,
        308 => 9,
        400 => 10,
        401 => 11,
        403 => 12,
        404 => 13,
        405 => 14,
        408 => 15,
        409 => 16,
        413 => 17,
        415 => 18,
        422 => 19,
        429 => 20,
        431 => 21,
        500 => 22,
        501 => 23,
        502 => 24,
        503 => 25,
        504 => 26,
        _ => return None,
    })
}

/// `labels`, then `status` as the `status` label.
fn labels_with_status<'a>(
    labels: &'a [(&'static str, String)],
    status: &'a StatusCode,
) -> Vec<(&'static str, &'a str)> {
    let mut all: Vec<(&'static str, &str)> = labels
        .iter()
        .map(|(label, value)| (*label, value.as_str()))
        .collect();
    all.push(("status", status.as_str()));
    all
}

/// A counter of one name and label set plus a `status` label (an HTTP status), kept by its owner:
/// the common statuses ([`KEPT_STATUSES`]) count with one atomic add, the rare others through
/// [`increment_counter`] (a label list built for the call, then the per-thread cache).
#[derive(Debug)]
pub struct KeptStatusCounters {
    series: Series,
    kept: [OnceLock<metrics::Counter>; KEPT_STATUSES.len()],
}

impl KeptStatusCounters {
    /// The counter `name` with `labels` and a last label `status`.
    pub fn new(name: &'static str, labels: &[(&'static str, &str)]) -> Self {
        Self {
            series: Series::new(name, labels),
            kept: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Adds one to the series of `status`.
    pub fn increment(&self, status: StatusCode) {
        let Series { name, labels } = &self.series;
        let with_status = || labels_with_status(labels, &status);
        let kept = kept_slot(status.as_u16()).and_then(|slot| self.kept.get(slot));
        match kept {
            Some(cell) => with_kept_handle(
                cell,
                || metrics::counter!(*name, &owned(&with_status())),
                |counter| counter.increment(1),
            ),
            None => increment_counter(name, &with_status()),
        }
    }
}

/// A counter and a histogram of one label set plus a `status` label, kept by their owner: what
/// [`increment_and_record`] does for a request's count and latency, as one atomic operation per
/// series for the common statuses ([`KEPT_STATUSES`]) and through [`increment_and_record`] for
/// the rare others.
#[derive(Debug)]
pub struct KeptStatusPairs {
    counter: &'static str,
    histogram: &'static str,
    labels: Vec<(&'static str, String)>,
    kept: [OnceLock<(metrics::Counter, metrics::Histogram)>; KEPT_STATUSES.len()],
}

impl KeptStatusPairs {
    /// The counter `counter` and the histogram `histogram`, both with `labels` and a last label
    /// `status`.
    pub fn new(counter: &'static str, histogram: &'static str, labels: &[(&'static str, &str)]) -> Self {
        Self {
            counter,
            histogram,
            labels: owned(labels),
            kept: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Adds one to the counter of `status` and records `value` in its histogram.
    pub fn increment_and_record(&self, status: StatusCode, value: f64) {
        let with_status = || labels_with_status(&self.labels, &status);
        let kept = kept_slot(status.as_u16()).and_then(|slot| self.kept.get(slot));
        match kept {
            Some(cell) => with_kept_handle(
                cell,
                || {
                    let labels = owned(&with_status());
                    (
                        metrics::counter!(self.counter, &labels),
                        metrics::histogram!(self.histogram, &labels),
                    )
                },
                |(counter, histogram)| {
                    counter.increment(1);
                    histogram.record(value);
                },
            ),
            None => increment_and_record(self.counter, self.histogram, &with_status(), value),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_sets_that_share_their_characters_are_different_handles() {
        let cached = Cached {
            hash: 0,
            name: "m",
            labels: Box::new([("a", Box::from("1:b"))]),
            handle: (),
        };
        assert!(cached.is("m", &[("a", "1:b")]));
        assert!(!cached.is("m", &[("a", "1"), ("b", "")]));
        assert!(!cached.is("m", &[("a", "1:")]));
        assert!(!cached.is("n", &[("a", "1:b")]));
        let hasher = foldhash::fast::RandomState::default();
        assert_ne!(
            key_hash(&hasher, "m", &[("a", "1:b")]),
            key_hash(&hasher, "m", &[("a", "1"), ("b", "")])
        );
    }

    #[test]
    fn cached_handles_count_per_label_set_as_the_macros_do() {
        let handle = install();
        for _ in 0..2 {
            increment_counter("keel_test_cached_total", &[("route", "/a"), ("status", "200")]);
        }
        increment_counter("keel_test_cached_total", &[("route", "/a"), ("status", "500")]);
        // A label value holding what the key joins with must not collide with another set.
        increment_counter("keel_test_cached_total", &[("route", "/a\u{1f}status=200")]);
        record_histogram("keel_test_cached_seconds", &[("route", "/a")], 0.002);
        record_histogram("keel_test_cached_seconds", &[("route", "/a")], 0.004);
        let rendered = handle.render();
        assert!(
            rendered.contains(r#"keel_test_cached_total{route="/a",status="200"} 2"#),
            "{rendered}"
        );
        assert!(
            rendered.contains(r#"keel_test_cached_total{route="/a",status="500"} 1"#),
            "{rendered}"
        );
        assert!(
            rendered.contains(r#"keel_test_cached_seconds_count{route="/a"} 2"#),
            "{rendered}"
        );
    }

    #[test]
    fn kept_handles_count_in_the_series_the_macros_name() {
        let handle = install();
        let counter = KeptCounter::new("keel_test_kept_total", &[("route", "/k"), ("outcome", "x")]);
        let histogram = KeptHistogram::new("keel_test_kept_seconds", &[("route", "/k")]);
        let statuses = KeptStatusCounters::new("keel_test_kept_status_total", &[("route", "/k")]);
        for _ in 0..3 {
            counter.increment();
            histogram.record(0.001);
            statuses.increment(StatusCode::OK);
        }
        // A status without a kept handle counts in its own series all the same.
        statuses.increment(StatusCode::IM_A_TEAPOT);
        statuses.increment(StatusCode::IM_A_TEAPOT);
        // A second owner of the same series adds to it.
        KeptCounter::new("keel_test_kept_total", &[("route", "/k"), ("outcome", "x")]).increment();
        let pairs = KeptStatusPairs::new(
            "keel_test_kept_pair_total",
            "keel_test_kept_pair_seconds",
            &[("route", "/k")],
        );
        pairs.increment_and_record(StatusCode::OK, 0.001);
        pairs.increment_and_record(StatusCode::OK, 0.002);
        pairs.increment_and_record(StatusCode::IM_A_TEAPOT, 0.003);
        // The pairs' series are the ones `increment_and_record` counts in.
        increment_and_record(
            "keel_test_kept_pair_total",
            "keel_test_kept_pair_seconds",
            &[("route", "/k"), ("status", "200")],
            0.004,
        );
        let rendered = handle.render();
        for expected in [
            r#"keel_test_kept_total{route="/k",outcome="x"} 4"#,
            r#"keel_test_kept_seconds_count{route="/k"} 3"#,
            r#"keel_test_kept_status_total{route="/k",status="200"} 3"#,
            r#"keel_test_kept_status_total{route="/k",status="418"} 2"#,
            r#"keel_test_kept_pair_total{route="/k",status="200"} 3"#,
            r#"keel_test_kept_pair_seconds_count{route="/k",status="200"} 3"#,
            r#"keel_test_kept_pair_total{route="/k",status="418"} 1"#,
            r#"keel_test_kept_pair_seconds_count{route="/k",status="418"} 1"#,
        ] {
            assert!(rendered.contains(expected), "{expected} in {rendered}");
        }
    }

    #[test]
    fn every_kept_status_has_its_own_slot() {
        for (slot, &status) in KEPT_STATUSES.iter().enumerate() {
            assert_eq!(kept_slot(status), Some(slot), "{status}");
            assert!(StatusCode::from_u16(status).is_ok(), "{status}");
        }
        let kept = (100..=599).filter(|&status| kept_slot(status).is_some()).count();
        assert_eq!(kept, KEPT_STATUSES.len());
    }

    #[test]
    fn pairs_count_and_record_per_label_set_and_histogram() {
        let handle = install();
        let labels = [("method", "GET"), ("status", "200")];
        increment_and_record("keel_test_pair_total", "keel_test_pair_seconds", &labels, 0.001);
        increment_and_record("keel_test_pair_total", "keel_test_pair_seconds", &labels, 0.002);
        // The same counter with another histogram is another pair, not the first one's.
        increment_and_record(
            "keel_test_pair_total",
            "keel_test_pair_other_seconds",
            &labels,
            0.5,
        );
        let other = [("method", "GET"), ("status", "404")];
        increment_and_record("keel_test_pair_total", "keel_test_pair_seconds", &other, 0.001);
        let rendered = handle.render();
        for expected in [
            r#"keel_test_pair_total{method="GET",status="200"} 3"#,
            r#"keel_test_pair_total{method="GET",status="404"} 1"#,
            r#"keel_test_pair_seconds_count{method="GET",status="200"} 2"#,
            r#"keel_test_pair_other_seconds_count{method="GET",status="200"} 1"#,
            r#"keel_test_pair_seconds_count{method="GET",status="404"} 1"#,
        ] {
            assert!(rendered.contains(expected), "{expected} in {rendered}");
        }
    }
}
