//! Rate limiting for the gateway and a failed-login throttle for auth.
//!
//! Why this crate exists: the gateway limits requests per user, per IP and per route class, and
//! several gateway replicas must share one budget; the auth service slows down credential stuffing
//! per account and per IP. Both need the same small building blocks, with one behaviour whether the
//! state lives in the process or in Redis.
//!
//! - [`RateLimiter`] answers "may this key do one more request under this [`Quota`]?" with a
//!   [`Decision`] that carries everything the `X-RateLimit-*` and `Retry-After` headers need
//!   ([`Decision::apply_headers`]). The algorithm is GCRA (see the `gcra` module for why), run by
//!   [`InMemoryRateLimiter`] (one process, sharded, bounded memory) and by [`RedisRateLimiter`]
//!   (one atomic Lua script per check, Redis server time, so replicas agree).
//! - [`Throttle`] tracks consecutive failures per key and answers how long the next attempt must
//!   wait, growing as a [`BackoffPolicy`] says ([`InMemoryThrottle`], [`RedisThrottle`]).
//!
//! Errors: every failure is a [`RateLimitError`]. At run time the only one a caller meets is
//! [`RateLimitError::Unavailable`] (Redis down, slow or answering nonsense); the recommended policy
//! is to fail open, with a warning and the `outcome="unavailable"` metric, because refusing all
//! traffic when the limiter's store is down turns a Redis outage into a full outage. See
//! `docs/rate-limiting.md`.
//!
//! Metrics: `keel_ratelimit_decisions_total{backend="memory"|"redis", outcome="allowed"|"denied"|
//! "unavailable"}`.

mod clock;
mod decision;
mod error;
mod gcra;
mod key;
mod memory;
mod metrics;
mod quota;
mod redis_backend;
mod settings;
mod store;
mod throttle;

use async_trait::async_trait;

pub use clock::{Clock, TokioClock};
pub use decision::Decision;
pub use error::RateLimitError;
pub use key::opaque_key;
pub use memory::{InMemoryOptions, InMemoryRateLimiter};
pub use quota::Quota;
pub use redis_backend::{RedisOptions, RedisRateLimiter, RedisThrottle};
pub use settings::{Backend, BackoffSettings, RateLimitSettings};
pub use throttle::{Attempt, BackoffPolicy, InMemoryThrottle, Throttle};

/// Decides whether a key may make one more request under a quota, and counts it if so.
///
/// Implementations must be safe to share between all request handlers (`Arc<dyn RateLimiter>`).
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request for `key` under `quota` if the budget allows it.
    ///
    /// A denied request does not consume budget. `Err` means the limiter could not decide (only
    /// [`RateLimitError::Unavailable`] for the shipped backends); the caller chooses to fail open
    /// or closed.
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError>;

    /// Performs [`RateLimiter::check`] at once, counting the request as `check` does, when this
    /// limiter can answer without waiting (an in-process store); `None` when it cannot, having
    /// counted nothing (the caller then awaits `check`). After `Some`, do not also call `check`:
    /// the request would be counted twice. For hot paths: `check`'s future is boxed, one
    /// allocation per call that a store without I/O does not need.
    fn check_now(&self, key: &str, quota: Quota) -> Option<Result<Decision, RateLimitError>> {
        let _ = (key, quota);
        None
    }
}
