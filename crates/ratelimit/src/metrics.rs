//! The decision counter every backend reports to, so dashboards see one metric for all of them.
//!
//! `keel_ratelimit_decisions_total{backend, outcome}`: `backend` is `memory` or `redis`, `outcome`
//! is `allowed`, `denied` or `unavailable` (the store could not decide; whether the request then
//! went through is the caller's policy, which the caller reports).
//!
//! Counted through `keel_telemetry::metrics`, whose per-thread handle cache spares the recorder's
//! registry lookup on every check (this runs on every request through the gateway).

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
    let backend = match backend {
        Backend::Memory => "memory",
        Backend::Redis => "redis",
    };
    let outcome = match outcome {
        Ok(decision) if decision.allowed => "allowed",
        Ok(_) => "denied",
        Err(_) => "unavailable",
    };
    keel_telemetry::metrics::increment_counter(
        "keel_ratelimit_decisions_total",
        &[("backend", backend), ("outcome", outcome)],
    );
}
