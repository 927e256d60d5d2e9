//! Decisions are counted in `keel_ratelimit_decisions_total{backend, outcome}`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel_ratelimit::{InMemoryRateLimiter, Quota, RateLimiter, RedisOptions, RedisRateLimiter};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Counters by `name{label=value,…}`, recorded for the current thread only.
#[derive(Default)]
struct Counters(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl Counters {
    fn get(&self, rendered: &str) -> u64 {
        let counters = self.0.lock().expect("no test panicked holding the lock");
        counters.get(rendered).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let rendered = format!("{}{{{}}}", key.name(), labels.join(","));
        let counter = self
            .0
            .lock()
            .expect("no test panicked holding the lock")
            .entry(rendered)
            .or_default()
            .clone();
        Counter::from_arc(counter)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn allowed_and_denied_decisions_are_counted_per_backend_and_outcome() {
    let counters = Counters::default();
    let limiter = InMemoryRateLimiter::default();
    let quota = Quota::new(3, Duration::from_secs(60)).unwrap();
    metrics::with_local_recorder(&counters, || {
        for _ in 0..5 {
            limiter.decide("user:1", quota);
        }
    });
    let allowed = "keel_ratelimit_decisions_total{backend=memory,outcome=allowed}";
    let denied = "keel_ratelimit_decisions_total{backend=memory,outcome=denied}";
    assert_eq!(counters.get(allowed), 3);
    assert_eq!(counters.get(denied), 2);
}

#[test]
fn an_unreachable_redis_is_counted_as_unavailable() {
    let counters = Counters::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let quota = Quota::new(3, Duration::from_secs(60)).unwrap();
    let outcome = metrics::with_local_recorder(&counters, || {
        runtime.block_on(async {
            let limiter = RedisRateLimiter::open("redis://127.0.0.1:1", RedisOptions::default()).unwrap();
            limiter.check("user:1", quota).await
        })
    });
    assert!(outcome.is_err());
    let unavailable = "keel_ratelimit_decisions_total{backend=redis,outcome=unavailable}";
    assert_eq!(counters.get(unavailable), 1);
}
