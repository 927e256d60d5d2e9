//! The failure throttle in Redis, so every auth replica sees the same failures per key.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::{RedisOptions, bounded, lazy_connection, non_negative};
use crate::{Attempt, BackoffPolicy, RateLimitError, Throttle};

/// Counts one failure (see the script).
const FAILURE_SCRIPT: &str = include_str!("throttle_failure.lua");
/// Reads the failure count and the time since the last failure (see the script).
const STATE_SCRIPT: &str = include_str!("throttle_state.lua");
/// Counts an attempt unless the key must still wait, in one step (see the script).
const ATTEMPT_SCRIPT: &str = include_str!("throttle_attempt.lua");
/// Takes back one counted attempt (see the script).
const RELEASE_SCRIPT: &str = include_str!("throttle_release.lua");

/// A [`Throttle`] in Redis. Redis stores the failure count and the time of the last failure
/// (Redis's clock); the delay is computed here from the [`BackoffPolicy`].
#[derive(Clone)]
pub struct RedisThrottle {
    connection: ConnectionManager,
    failure: Arc<Script>,
    state: Arc<Script>,
    attempt: Arc<Script>,
    release: Arc<Script>,
    policy: BackoffPolicy,
    options: RedisOptions,
}

impl std::fmt::Debug for RedisThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisThrottle")
            .field("policy", &self.policy)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RedisThrottle {
    /// A throttle on the Redis at `url`, connecting on first use (see
    /// [`crate::RedisRateLimiter::open`]). Use a key prefix distinct from any limiter's.
    pub fn open(url: &str, policy: BackoffPolicy, options: RedisOptions) -> Result<Self, RateLimitError> {
        let connection = lazy_connection(url, options.timeout)?;
        Ok(Self::new(connection, policy, options))
    }

    /// A throttle on an existing connection.
    pub fn new(connection: ConnectionManager, policy: BackoffPolicy, options: RedisOptions) -> Self {
        Self {
            connection,
            failure: Arc::new(Script::new(FAILURE_SCRIPT)),
            state: Arc::new(Script::new(STATE_SCRIPT)),
            attempt: Arc::new(Script::new(ATTEMPT_SCRIPT)),
            release: Arc::new(Script::new(RELEASE_SCRIPT)),
            policy,
            options,
        }
    }
}

#[async_trait]
impl Throttle for RedisThrottle {
    async fn record_failure(&self, key: &str) -> Result<Duration, RateLimitError> {
        let mut connection = self.connection.clone();
        let forget_after_ms = self.policy.forget_after.as_millis().max(1);
        let mut invocation = self.failure.prepare_invoke();
        invocation
            .key(self.options.key(key))
            .arg(u64::try_from(forget_after_ms).unwrap_or(u64::MAX));
        let count: i64 = bounded(self.options.timeout, invocation.invoke_async(&mut connection)).await?;
        let count = u32::try_from(non_negative(count)).unwrap_or(u32::MAX);
        Ok(self.policy.delay_after(count))
    }

    async fn record_success(&self, key: &str) -> Result<(), RateLimitError> {
        let mut connection = self.connection.clone();
        let key = self.options.key(key);
        let _removed: i64 = bounded(self.options.timeout, connection.del(&key)).await?;
        Ok(())
    }

    async fn try_attempt(&self, key: &str) -> Result<Attempt, RateLimitError> {
        let mut connection = self.connection.clone();
        let micros = |duration: Duration| u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let forget_after_ms = self.policy.forget_after.as_millis().max(1);
        let mut invocation = self.attempt.prepare_invoke();
        invocation
            .key(self.options.key(key))
            .arg(self.policy.free_failures)
            .arg(micros(self.policy.base_delay))
            .arg(micros(self.policy.max_delay))
            .arg(u64::try_from(forget_after_ms).unwrap_or(u64::MAX));
        let answer: i64 = bounded(self.options.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok(match answer {
            ..0 => Attempt::Clear,
            0 => Attempt::Counted,
            wait_us => Attempt::Wait(Duration::from_micros(non_negative(wait_us))),
        })
    }

    async fn release_attempt(&self, key: &str) -> Result<(), RateLimitError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.release.prepare_invoke();
        invocation.key(self.options.key(key));
        let _left: i64 = bounded(self.options.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok(())
    }

    async fn delay(&self, key: &str) -> Result<Duration, RateLimitError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.state.prepare_invoke();
        invocation.key(self.options.key(key));
        let (count, elapsed_us): (i64, i64) =
            bounded(self.options.timeout, invocation.invoke_async(&mut connection)).await?;
        let count = u32::try_from(non_negative(count)).unwrap_or(u32::MAX);
        let elapsed = Duration::from_micros(non_negative(elapsed_us));
        Ok(self.policy.remaining(count, elapsed))
    }
}
