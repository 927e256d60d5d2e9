//! GCRA in Redis: one budget per key shared by every replica that points at the same Redis.

use std::sync::Arc;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use super::{RedisOptions, bounded, lazy_connection, non_negative};
use crate::{Decision, Quota, RateLimitError, RateLimiter, metrics};

/// The GCRA step as a Redis script (see the `gcra` module).
const GCRA_SCRIPT: &str = include_str!("gcra.lua");

/// GCRA rate limiting in Redis, so several processes share one budget per key.
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    script: Arc<Script>,
    options: RedisOptions,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RedisRateLimiter {
    /// A limiter on the Redis at `url` (`redis://host:port/db`), connecting on first use so the
    /// process starts while Redis is down. Fails only for a URL that does not parse. Call inside
    /// a Tokio runtime.
    pub fn open(url: &str, options: RedisOptions) -> Result<Self, RateLimitError> {
        let connection = lazy_connection(url, options.timeout)?;
        Ok(Self::new(connection, options))
    }

    /// A limiter on an existing connection (e.g. one shared with a [`crate::RedisThrottle`]).
    pub fn new(connection: ConnectionManager, options: RedisOptions) -> Self {
        Self {
            connection,
            script: Arc::new(Script::new(GCRA_SCRIPT)),
            options,
        }
    }

    async fn run(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.options.key(key))
            .arg(quota.interval_us())
            .arg(quota.limit());
        let (allowed, remaining, reset_us, retry_us): (i64, i64, i64, i64) =
            bounded(self.options.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok(Decision::from_micros(
            allowed == 1,
            quota.limit(),
            non_negative(remaining),
            non_negative(reset_us),
            non_negative(retry_us),
        ))
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, quota: Quota) -> Result<Decision, RateLimitError> {
        let outcome = self.run(key, quota).await;
        metrics::record(metrics::Backend::Redis, &outcome);
        outcome
    }
}
