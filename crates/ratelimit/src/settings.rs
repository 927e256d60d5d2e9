//! The `ratelimit` configuration section, and the limiters and throttles it builds.
//!
//! Why it exists: the gateway (rate limits), auth (failed-login throttle) and identity (reset
//! requests) all keep counters, and a deployment decides once where counters live: in each
//! process's memory (one instance; the embedded default) or in Redis (replicas share one budget).
//! Each user reads the same section and asks it for what it needs, so the choice is made in one
//! place and the Redis connection is one per process.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{
    BackoffPolicy, InMemoryOptions, InMemoryRateLimiter, InMemoryThrottle, RateLimitError, RateLimiter,
    RedisOptions, RedisRateLimiter, RedisThrottle, Throttle,
};

/// Where counters live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// This process's memory: budgets are per instance.
    Memory,
    /// Redis at `ratelimit.redis_url`: every instance shares one budget.
    Redis,
}

/// The `ratelimit` section.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `memory` (default) or `redis`.
    pub backend: Backend,
    /// For `redis`: `redis://[user:password@]host:port/db`. A secret (it may hold a password).
    #[serde(default)]
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Longest one Redis call may take before the decision is made without it (milliseconds).
    pub timeout_ms: u64,
    /// Most keys one in-memory limiter or throttle keeps.
    pub max_keys: usize,
}

impl std::fmt::Debug for RateLimitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitSettings")
            .field("backend", &self.backend)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<redacted>"))
            .field("key_prefix", &self.key_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_keys", &self.max_keys)
            .finish()
    }
}

impl Default for RateLimitSettings {
    /// In memory, 100,000 keys; for Redis a 50 ms timeout and keys under `keel:ratelimit:`.
    fn default() -> Self {
        Self {
            backend: Backend::Memory,
            redis_url: None,
            key_prefix: "keel:ratelimit:".to_owned(),
            timeout_ms: 50,
            max_keys: 100_000,
        }
    }
}

impl RateLimitSettings {
    /// A rate limiter on the configured backend; `name` separates its keys from other users' of
    /// the same Redis (e.g. `gateway`). Fails when `redis` is chosen without a usable URL, or
    /// a value is out of range. For Redis, call inside a Tokio runtime.
    pub fn limiter(&self, name: &str) -> Result<Arc<dyn RateLimiter>, RateLimitError> {
        self.validate()?;
        match self.backend {
            Backend::Memory => Ok(Arc::new(InMemoryRateLimiter::new(self.memory_options()))),
            Backend::Redis => Ok(Arc::new(RedisRateLimiter::open(
                self.redis_url()?,
                self.redis_options(name),
            )?)),
        }
    }

    /// A failure throttle with `policy` on the configured backend; `name` separates its keys
    /// (e.g. `auth-login`).
    pub fn throttle(&self, name: &str, policy: BackoffPolicy) -> Result<Arc<dyn Throttle>, RateLimitError> {
        self.validate()?;
        match self.backend {
            Backend::Memory => Ok(Arc::new(InMemoryThrottle::new(policy, self.memory_options()))),
            Backend::Redis => Ok(Arc::new(RedisThrottle::open(
                self.redis_url()?,
                policy,
                self.redis_options(name),
            )?)),
        }
    }

    /// Checks the values types cannot: a positive timeout and key cap, a Redis URL for `redis`.
    pub fn validate(&self) -> Result<(), RateLimitError> {
        let invalid = |message: &str| Err(RateLimitError::InvalidConfig(message.to_owned()));
        if self.timeout_ms == 0 {
            return invalid("ratelimit.timeout_ms must be greater than 0");
        }
        if self.max_keys == 0 {
            return invalid("ratelimit.max_keys must be greater than 0");
        }
        if self.backend == Backend::Redis {
            self.redis_url()?;
        }
        Ok(())
    }

    fn redis_url(&self) -> Result<&str, RateLimitError> {
        match &self.redis_url {
            Some(url) if !url.expose_secret().trim().is_empty() => Ok(url.expose_secret()),
            _ => Err(RateLimitError::InvalidConfig(
                "ratelimit.redis_url must be set when ratelimit.backend is redis".to_owned(),
            )),
        }
    }

    fn memory_options(&self) -> InMemoryOptions {
        InMemoryOptions {
            max_keys: self.max_keys,
            ..InMemoryOptions::default()
        }
    }

    fn redis_options(&self, name: &str) -> RedisOptions {
        RedisOptions {
            key_prefix: format!("{}{name}:", self.key_prefix),
            timeout: Duration::from_millis(self.timeout_ms),
        }
    }
}

/// A [`BackoffPolicy`] as configuration writes it (whole milliseconds and seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffSettings {
    /// Consecutive failures that cost nothing.
    pub free_failures: u32,
    /// Delay after the first failure past the free ones, doubling after each further one.
    pub base_delay_ms: u64,
    /// Longest delay.
    pub max_delay_ms: u64,
    /// Failures are forgotten this long after the last one.
    pub forget_after_secs: u64,
}

impl BackoffSettings {
    /// The policy these settings describe; fails when a duration is zero or the base exceeds the
    /// maximum, naming the field under `key` (e.g. `auth.login_throttle.account`).
    pub fn policy(&self, key: &str) -> Result<BackoffPolicy, RateLimitError> {
        if self.base_delay_ms == 0 || self.max_delay_ms < self.base_delay_ms || self.forget_after_secs == 0 {
            return Err(RateLimitError::InvalidConfig(format!(
                "{key}: base_delay_ms must be > 0 and <= max_delay_ms, forget_after_secs > 0"
            )));
        }
        Ok(BackoffPolicy {
            free_failures: self.free_failures,
            base_delay: Duration::from_millis(self.base_delay_ms),
            max_delay: Duration::from_millis(self.max_delay_ms),
            forget_after: Duration::from_secs(self.forget_after_secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_without_a_url_is_refused_naming_the_key() {
        let settings = RateLimitSettings {
            backend: Backend::Redis,
            ..RateLimitSettings::default()
        };
        let error = settings
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("ratelimit.redis_url"), "{error}");
    }

    #[test]
    fn the_debug_form_hides_the_redis_url() {
        let settings = RateLimitSettings {
            backend: Backend::Redis,
            redis_url: Some(SecretString::from("redis://:hunter2@cache:6379")),
            ..RateLimitSettings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn backoff_settings_become_a_policy_or_a_named_error() {
        let settings = BackoffSettings {
            free_failures: 5,
            base_delay_ms: 500,
            max_delay_ms: 8_000,
            forget_after_secs: 600,
        };
        let policy = settings.policy("auth.login_throttle.account").expect("valid");
        assert_eq!(policy.delay_after(5), Duration::ZERO);
        assert_eq!(policy.delay_after(6), Duration::from_millis(500));
        assert_eq!(policy.delay_after(20), Duration::from_secs(8));
        let broken = BackoffSettings {
            max_delay_ms: 100,
            ..settings
        };
        let error = broken
            .policy("auth.login_throttle.ip")
            .err()
            .map(|e| e.to_string());
        assert!(error.unwrap_or_default().contains("auth.login_throttle.ip"));
    }
}
