//! Growing delays after consecutive failures, against credential stuffing and password guessing.
//!
//! Why it exists: a rate limit per IP does not stop an attacker spreading guesses for one account
//! over many IPs, nor one IP trying many accounts slowly. The auth service keeps a throttle per
//! account and per IP: the first few failures cost nothing (users mistype), then each further
//! failure doubles the wait before the next attempt, up to a cap; a success resets the key, and
//! failures are forgotten after a quiet period. A legitimate user who logs in successfully is
//! never slowed.
//!
//! [`Throttle::delay`] is the time the next attempt must still wait, counted from the last failure
//! (zero when it may go ahead): the caller answers 429 with `Retry-After`, or makes the attempt
//! wait. [`BackoffPolicy`] is the one place the schedule is defined; both backends store only the
//! failure count and the time of the last failure.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{Clock, TokioClock, micros};
use crate::store::{Expiring, ShardedStore, Write};
use crate::{InMemoryOptions, RateLimitError};

/// Records failures per key and says how long the next attempt must wait.
#[async_trait]
pub trait Throttle: Send + Sync {
    /// Counts one more consecutive failure for `key`; returns the delay the next attempt now
    /// faces, from this moment.
    async fn record_failure(&self, key: &str) -> Result<Duration, RateLimitError>;
    /// Forgets `key`'s failures (a successful attempt).
    async fn record_success(&self, key: &str) -> Result<(), RateLimitError>;
    /// How long the next attempt for `key` must still wait; zero if it may go ahead now.
    async fn delay(&self, key: &str) -> Result<Duration, RateLimitError>;
    /// Decides an attempt for `key` in one atomic step (see [`Attempt`]): a key with no failures
    /// goes ahead uncounted ([`Attempt::Clear`]: nothing slows users who get it right, however
    /// many log in at once); a key with failures whose delay has passed goes ahead *counted as a
    /// failure already* ([`Attempt::Counted`]; a success forgets it), so once a key has failed,
    /// a burst of concurrent attempts cannot all pass a check made before any of them failed;
    /// otherwise it must wait ([`Attempt::Wait`]) and nothing is counted.
    async fn try_attempt(&self, key: &str) -> Result<Attempt, RateLimitError>;
    /// Takes back one attempt that [`Throttle::try_attempt`] counted ([`Attempt::Counted`]) but
    /// that was never checked (the checker failed, e.g. a dependency was down): a failure of ours
    /// must not cost the user a delay. The time of the last failure stays.
    async fn release_attempt(&self, key: &str) -> Result<(), RateLimitError>;
}

/// What [`Throttle::try_attempt`] decided about one attempt. The default, [`Attempt::Clear`], is
/// what a caller that fails open goes on with when the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attempt {
    /// The key has no failures: go ahead; nothing was counted, so count a failure with
    /// [`Throttle::record_failure`] if the attempt fails.
    #[default]
    Clear,
    /// The key has failures and its delay has passed: go ahead; the attempt already counts as a
    /// failure ([`Throttle::record_success`] forgets it if it succeeds).
    Counted,
    /// The key must still wait this long; nothing was counted.
    Wait(Duration),
}

impl Attempt {
    /// How long the attempt must wait: zero when it may go ahead.
    pub fn wait(self) -> Duration {
        match self {
            Self::Wait(wait) => wait,
            Self::Clear | Self::Counted => Duration::ZERO,
        }
    }
}

/// The delay schedule: none for the first `free_failures`, then `base_delay` doubling with each
/// further failure up to `max_delay`; failures are forgotten `forget_after` the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Consecutive failures that cost no delay (default 3).
    pub free_failures: u32,
    /// The delay after the first failure past the free ones (default 1 s).
    pub base_delay: Duration,
    /// The longest delay (default 30 s).
    pub max_delay: Duration,
    /// A key's failures are forgotten this long after its last failure (default 15 min).
    pub forget_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            free_failures: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            forget_after: Duration::from_secs(15 * 60),
        }
    }
}

impl BackoffPolicy {
    /// The delay after `failures` consecutive failures: 0, 0, 0, 1 s, 2 s, 4 s, … 30 s by default.
    pub fn delay_after(&self, failures: u32) -> Duration {
        let Some(doublings) = failures.checked_sub(self.free_failures.saturating_add(1)) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// What is left of the delay after `failures`, `elapsed` after the last failure.
    pub(crate) fn remaining(&self, failures: u32, elapsed: Duration) -> Duration {
        self.delay_after(failures).saturating_sub(elapsed)
    }

    /// `forget_after` in microseconds (at least 1).
    pub(crate) fn forget_after_us(&self) -> u64 {
        u64::try_from(self.forget_after.as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// A key's consecutive failures and when the last one happened (microseconds, store clock).
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: u64,
    forget_at: u64,
}

impl Expiring for Failures {
    fn expires_at(&self) -> u64 {
        self.forget_at
    }
}

/// A [`Throttle`] in this process's memory.
#[derive(Debug)]
pub struct InMemoryThrottle {
    store: ShardedStore<Failures>,
    policy: BackoffPolicy,
    clock: Arc<dyn Clock>,
}

impl InMemoryThrottle {
    /// A throttle with this schedule and these bounds, on Tokio's clock.
    pub fn new(policy: BackoffPolicy, options: InMemoryOptions) -> Self {
        Self {
            store: ShardedStore::new(options.max_keys, options.sweep_every_us()),
            policy,
            clock: Arc::new(TokioClock::new()),
        }
    }

    /// The same throttle reading time from `clock` (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

#[async_trait]
impl Throttle for InMemoryThrottle {
    async fn record_failure(&self, key: &str) -> Result<Duration, RateLimitError> {
        let now = micros(self.clock.as_ref());
        let forget_after = self.policy.forget_after_us();
        let count = self.store.update(key, now, |stored| {
            let count = stored.map_or(0, |f| f.count).saturating_add(1);
            let forget_at = now.saturating_add(forget_after);
            let failures = Failures {
                count,
                last: now,
                forget_at,
            };
            (Write::Set(failures), count)
        });
        Ok(self.policy.delay_after(count))
    }

    async fn record_success(&self, key: &str) -> Result<(), RateLimitError> {
        let now = micros(self.clock.as_ref());
        self.store.update(key, now, |_| (Write::Remove, ()));
        Ok(())
    }

    async fn try_attempt(&self, key: &str) -> Result<Attempt, RateLimitError> {
        let now = micros(self.clock.as_ref());
        let forget_after = self.policy.forget_after_us();
        let attempt = self.store.update(key, now, |stored| {
            let Some(failures) = stored.filter(|f| f.count > 0) else {
                return (Write::Keep, Attempt::Clear);
            };
            let elapsed = Duration::from_micros(now.saturating_sub(failures.last));
            let remaining = self.policy.remaining(failures.count, elapsed);
            if !remaining.is_zero() {
                return (Write::Keep, Attempt::Wait(remaining));
            }
            let counted = Failures {
                count: failures.count.saturating_add(1),
                last: now,
                forget_at: now.saturating_add(forget_after),
            };
            (Write::Set(counted), Attempt::Counted)
        });
        Ok(attempt)
    }

    async fn release_attempt(&self, key: &str) -> Result<(), RateLimitError> {
        let now = micros(self.clock.as_ref());
        self.store.update(key, now, |stored| match stored {
            Some(failures) if failures.count > 1 => (
                Write::Set(Failures {
                    count: failures.count - 1,
                    ..*failures
                }),
                (),
            ),
            Some(_) => (Write::Remove, ()),
            None => (Write::Keep, ()),
        });
        Ok(())
    }

    async fn delay(&self, key: &str) -> Result<Duration, RateLimitError> {
        let now = micros(self.clock.as_ref());
        let state = self
            .store
            .update(key, now, |stored| (Write::Keep, stored.copied()));
        Ok(state.map_or(Duration::ZERO, |f| {
            let elapsed = Duration::from_micros(now.saturating_sub(f.last));
            self.policy.remaining(f.count, elapsed)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_is_three_free_failures_then_doubling_to_thirty_seconds() {
        let policy = BackoffPolicy::default();
        let secs: Vec<u64> = (0..=10).map(|n| policy.delay_after(n).as_secs()).collect();
        assert_eq!(secs, [0, 0, 0, 0, 1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(policy.delay_after(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn the_remaining_delay_shrinks_with_time_since_the_last_failure() {
        let policy = BackoffPolicy::default();
        assert_eq!(
            policy.remaining(5, Duration::from_millis(500)),
            Duration::from_millis(1500)
        );
        assert_eq!(policy.remaining(5, Duration::from_secs(3)), Duration::ZERO);
    }
}
