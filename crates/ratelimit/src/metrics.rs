//! The decision counter every backend reports to, so dashboards see one metric for all of them.
//!
//! `keel_ratelimit_decisions_total{backend, outcome}`: `backend` is `memory` or `redis`, `outcome`
//! is `allowed`, `denied` or `unavailable` (the store could not decide; whether the request then
//! went through is the caller's policy, which the caller reports).
//!
//! The six series are fixed, so their handles are kept in a static ([`KeptCounter`]): a check,
//! which runs on every request through the gateway, counts with one atomic add.

use std::sync::LazyLock;

use keel_telemetry::metrics::KeptCounter;

use crate::{Decision, RateLimitError};

const BACKENDS: [&str; 2] = ["memory", "redis"];
const OUTCOMES: [&str; 3] = ["allowed", "denied", "unavailable"];

/// One counter per backend and outcome, in the order of [`BACKENDS`] × [`OUTCOMES`].
static DECISIONS: LazyLock<Vec<KeptCounter>> = LazyLock::new(|| {
    BACKENDS
        .iter()
        .flat_map(|backend| {
            OUTCOMES.iter().map(move |outcome| {
                KeptCounter::new(
                    "keel_ratelimit_decisions_total",
                    &[("backend", backend), ("outcome", outcome)],
                )
            })
        })
        .collect()
});

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
        Backend::Memory => 0,
        Backend::Redis => 1,
    };
    let outcome = match outcome {
        Ok(decision) if decision.allowed => 0,
        Ok(_) => 1,
        Err(_) => 2,
    };
    if let Some(counter) = DECISIONS.get(backend * OUTCOMES.len() + outcome) {
        counter.increment();
    }
}
