//! Behaviour of the rate limiters and throttles, in memory (paused Tokio clock) and on a real
//! Redis (`REDIS_URL`; skipped without it, required in CI).

mod memory;
mod metrics;
mod redis;
mod throttle;
