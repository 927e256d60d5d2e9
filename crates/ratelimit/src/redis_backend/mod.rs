//! The Redis backends: state shared by every gateway (or auth) replica through one Redis.
//!
//! Why Redis, and how it stays safe to depend on:
//! - Each operation is one Lua script run atomically by Redis (`EVALSHA`, loaded again on
//!   `NOSCRIPT` by `redis::Script`), reading Redis's own clock (`TIME`), so replicas with skewed
//!   clocks still share one budget exactly.
//! - Keys live under a configurable prefix and carry a `PEXPIRE`, so idle keys vanish by themselves.
//! - The connection is a `ConnectionManager` (one multiplexed connection, reconnected in the
//!   background after a failure), created lazily: a process starts even while Redis is down.
//! - Every call runs under a short timeout (50 ms by default). Redis down, slow or erroring gives
//!   [`RateLimitError::Unavailable`] within that time; it never hangs a request.

mod limiter;
mod throttle;

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::RateLimitError;

pub use limiter::RedisRateLimiter;
pub use throttle::RedisThrottle;

/// How long a first connection (or a reconnection) attempt may take. Calls still give up after
/// [`RedisOptions::timeout`]; a slower connection attempt goes on in the background.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Reconnection attempts per failure before the next call starts a new round.
const CONNECT_RETRIES: usize = 2;
/// The longest pause between reconnection attempts, so a recovered Redis is used again soon.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Where a Redis backend keeps its keys and how long a call may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Prepended to every key (default `keel:ratelimit:`); distinct per limiter or throttle that
    /// must not share state, and per test.
    pub key_prefix: String,
    /// The most one call may take, connecting included (default 50 ms).
    pub timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            key_prefix: "keel:ratelimit:".to_owned(),
            timeout: Duration::from_millis(50),
        }
    }
}

impl RedisOptions {
    /// The Redis key for `key`.
    pub(crate) fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.key_prefix.len() + key.len());
        full.push_str(&self.key_prefix);
        full.push_str(key);
        full
    }
}

/// A connection manager for `url` that connects on first use. Must be called inside a Tokio
/// runtime (the manager spawns its reconnection task).
pub(crate) fn lazy_connection(url: &str, timeout: Duration) -> Result<ConnectionManager, RateLimitError> {
    let client =
        redis::Client::open(url).map_err(|e| RateLimitError::InvalidConfig(format!("redis url: {e}")))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(CONNECT_RETRIES)
        .set_max_delay(MAX_RECONNECT_DELAY);
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| RateLimitError::InvalidConfig(format!("redis connection: {e}")))
}

/// Runs one Redis call under `timeout`, mapping every failure to [`RateLimitError::Unavailable`].
pub(crate) async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, RateLimitError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(RateLimitError::Unavailable(e.to_string())),
        Err(_) => Err(RateLimitError::Unavailable(format!(
            "no answer from redis within {timeout:?}"
        ))),
    }
}

/// A non-negative integer from a script's reply; scripts never return negatives.
pub(crate) fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
