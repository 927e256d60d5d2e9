//! The in-process rate limiter: GCRA over a sharded, bounded map, for a single gateway instance.
//!
//! Why it exists next to the Redis one: the embedded `platform` binary and single-replica
//! deployments need no Redis, and a check costs a hash lookup under an uncontended mutex instead of
//! a network round trip. Behaviour is the same as [`crate::RedisRateLimiter`]'s (same `gcra`
//! step), except that time comes from an injectable [`Clock`] instead of Redis's `TIME`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{Clock, TokioClock, micros};
use crate::store::{Expiring, ShardedStore, Write};
use crate::{Decision, Quota, RateLimitError, RateLimiter, gcra, metrics};

/// Bounds and housekeeping of an in-memory backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InMemoryOptions {
    /// Most keys held at once (default 100,000, about 10 MB with short keys). Past it the keys
    /// closest to expiry are evicted first.
    pub max_keys: usize,
    /// How often each shard drops expired keys, when next touched (default 60 s).
    pub sweep_interval: Duration,
}

impl Default for InMemoryOptions {
    fn default() -> Self {
        Self {
            max_keys: 100_000,
            sweep_interval: Duration::from_secs(60),
        }
    }
}

impl InMemoryOptions {
    /// The sweep interval in microseconds, at least 1.
    pub(crate) fn sweep_every_us(&self) -> u64 {
        u64::try_from(self.sweep_interval.as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// A key's theoretical arrival time, in microseconds on the limiter's clock.
#[derive(Debug, Clone, Copy)]
struct Tat(u64);

impl Expiring for Tat {
    fn expires_at(&self) -> u64 {
        self.0
    }
}

/// GCRA rate limiting in this process's memory.
#[derive(Debug)]
pub struct InMemoryRateLimiter {
    store: ShardedStore<Tat>,
    clock: Arc<dyn Clock>,
}

impl InMemoryRateLimiter {
    /// A limiter with these bounds, on Tokio's clock.
    pub fn new(options: InMemoryOptions) -> Self {
        Self {
            store: ShardedStore::new(options.max_keys, options.sweep_every_us()),
            clock: Arc::new(TokioClock::new()),
        }
    }

    /// The same limiter reading time from `clock` (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The check, synchronously: it cannot fail, and a caller on the hot path avoids the boxed
    /// future of [`RateLimiter::check`]. Counted in the decisions metric like `check`.
    pub fn decide(&self, key: &str, quota: Quota) -> Decision {
        let now = micros(self.clock.as_ref());
        let decision = self.store.update(key, now, |stored| {
            let (decision, new_tat) = gcra::check(stored.map(|tat| tat.0), now, &quota);
            let write = new_tat.map_or(Write::Keep, |tat| Write::Set(Tat(tat)));
            (write, decision)
        });
        metrics::record(metrics::Backend::Memory, &Ok(decision));
        decision
    }

    /// Drops every key whose budget is full again. Shards also do this on their own, when touched,
    /// once per sweep interval; call this from a periodic task to reclaim memory of idle shards.
    pub fn sweep(&self) {
        self.store.sweep(micros(self.clock.as_ref()));
    }

    /// Keys currently held (for metrics and tests).
    pub fn tracked_keys(&self) -> usize {
        self.store.len()
    }
}

impl Default for InMemoryRateLimiter {
    fn default() -> Self {
        Self::new(InMemoryOptions::default())
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        Ok(self.decide(key, quota))
    }

    fn check_now(&self, key: &str, quota: Quota) -> Option<Result<Decision, RateLimitError>> {
        Some(Ok(self.decide(key, quota)))
    }
}
