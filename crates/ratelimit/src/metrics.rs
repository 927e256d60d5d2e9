//! The decision counter every backend reports to, so dashboards see one metric for all of them.
//!
//! `keel_ratelimit_decisions_total{backend, outcome}`: `backend` is `memory` or `redis`, `outcome`
//! is `allowed`, `denied` or `unavailable` (the store could not decide; whether the request then
//! went through is the caller's policy, which the caller reports).
//!
//! Every label is a literal at its call site: the `metrics` macros then build the key statically,
//! with no allocation per check (this runs on every request through the gateway).

use crate::{Decision, RateLimitError};

/// Which backend decided.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    /// [`crate::InMemoryRateLimiter`].
    Memory,
    /// [`crate::RedisRateLimiter`].
    Redis,
}

/// Counts one check's outcome.
pub(crate) fn record(backend: Backend, outcome: &Result<Decision, RateLimitError>) {
    use metrics::counter;
    let counter = match (backend, outcome) {
        (Backend::Memory, Ok(d)) if d.allowed => {
            counter!("keel_ratelimit_decisions_total", "backend" => "memory", "outcome" => "allowed")
        }
        (Backend::Memory, Ok(_)) => {
            counter!("keel_ratelimit_decisions_total", "backend" => "memory", "outcome" => "denied")
        }
        (Backend::Memory, Err(_)) => {
            counter!("keel_ratelimit_decisions_total", "backend" => "memory", "outcome" => "unavailable")
        }
        (Backend::Redis, Ok(d)) if d.allowed => {
            counter!("keel_ratelimit_decisions_total", "backend" => "redis", "outcome" => "allowed")
        }
        (Backend::Redis, Ok(_)) => {
            counter!("keel_ratelimit_decisions_total", "backend" => "redis", "outcome" => "denied")
        }
        (Backend::Redis, Err(_)) => {
            counter!("keel_ratelimit_decisions_total", "backend" => "redis", "outcome" => "unavailable")
        }
    };
    counter.increment(1);
}
