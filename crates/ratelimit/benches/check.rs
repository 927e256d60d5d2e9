//! Cost of one in-memory rate-limit check: the gateway pays it on every request.
//!
//! `hot_key`: one key checked over and over (a single busy client). `many_keys`: 10,000 keys in
//! turn (many clients, each lookup likely a cache miss). `trait_check`: the same through the async
//! `RateLimiter` trait object, as the gateway calls it. No metrics recorder is installed, so the
//! counter costs what it does before `/metrics` exists.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_ratelimit::{InMemoryRateLimiter, Quota, RateLimiter};

fn in_memory_check(c: &mut Criterion) {
    let quota = Quota::new(1_000_000, Duration::from_secs(1)).expect("a valid quota");
    let limiter = InMemoryRateLimiter::default();

    c.bench_function("hot_key", |b| {
        b.iter(|| limiter.decide(black_box("user:42"), quota))
    });

    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("ip:10.0.{}.{}", i / 256, i % 256))
        .collect();
    let mut next = keys.iter().cycle();
    c.bench_function("many_keys", |b| {
        b.iter(|| {
            let key = next.next().expect("a cycle never ends");
            limiter.decide(black_box(key), quota)
        })
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let shared: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::default());
    c.bench_function("trait_check", |b| {
        b.to_async(&runtime)
            .iter(|| shared.check(black_box("user:42"), quota))
    });
}

criterion_group!(benches, in_memory_check);
criterion_main!(benches);
