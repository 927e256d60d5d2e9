//! The failed-login throttle: growing delays per account and per client address.
//!
//! Why it exists: argon2 makes each guess expensive, but not expensive enough to stop credential
//! stuffing (many accounts, few guesses each) or a slow guesser of one account. After a few free
//! failures, every further failed login for the same e-mail address, or from the same address,
//! doubles the wait before the next attempt is even checked (429 with `Retry-After`, audited as
//! `auth.login.throttled`). A successful login forgets the account's failures, so legitimate users
//! who mistype once or twice are never slowed; the per-address schedule allows many more failures
//! than the per-account one, because many users may share one address (NAT).
//!
//! Once an account has failed, the count of each further attempt is taken when it begins, not
//! when it has failed: checking the delay and counting the attempt are one atomic step of the
//! store (`Throttle::try_attempt`), so a burst of simultaneous guesses cannot all pass a check
//! made before any of them failed (argon2 takes milliseconds). An account with no failure is not
//! counted in advance, so users who get their password right are never slowed, however many log
//! in at once. A successful login forgets the count, and a correct password for an unverified
//! address does too. The address's failures are counted after a failure, because a success there
//! must not clear them.
//!
//! Keys are the SHA-256 of the lower-cased address (no e-mail addresses in Redis) and the client
//! IP. The throttle's state lives where `ratelimit.backend` says: in memory, or in Redis so every
//! auth replica counts the same failures. When Redis cannot be reached, logins go ahead
//! unthrottled (fail open: availability of login matters more than a lost delay), with a warning
//! and `keel_auth_login_throttle_unavailable_total`.

use std::sync::Arc;
use std::time::Duration;

use keel_ratelimit::{Attempt, BackoffSettings, RateLimitError, RateLimitSettings, Throttle};
use serde::Deserialize;

use crate::AuthError;

/// The `auth.login_throttle` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginThrottleSettings {
    /// Whether failed logins are throttled at all.
    pub(crate) enabled: bool,
    /// Failures per e-mail address (whether or not the account exists).
    pub(crate) account: BackoffSettings,
    /// Failures per client IP address.
    pub(crate) ip: BackoffSettings,
}

impl Default for LoginThrottleSettings {
    /// On; per account 5 free failures, then 1 s doubling to 60 s; per IP 20 free failures, then
    /// the same; both forgotten 15 minutes after the last failure (`config/default.yaml`).
    fn default() -> Self {
        let schedule = |free_failures| BackoffSettings {
            free_failures,
            base_delay_ms: 1_000,
            max_delay_ms: 60_000,
            forget_after_secs: 900,
        };
        Self {
            enabled: true,
            account: schedule(5),
            ip: schedule(20),
        }
    }
}

/// Per-account and per-IP failure throttles. Cheap to share.
#[derive(Clone)]
pub(crate) struct LoginThrottle {
    /// `None` when disabled.
    throttles: Option<(Arc<dyn Throttle>, Arc<dyn Throttle>)>,
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("enabled", &self.throttles.is_some())
            .finish()
    }
}

impl LoginThrottle {
    /// The throttle `settings` describe, its state where `ratelimit` says.
    pub(crate) fn new(
        settings: &LoginThrottleSettings,
        ratelimit: &RateLimitSettings,
    ) -> Result<Self, AuthError> {
        if !settings.enabled {
            return Ok(Self { throttles: None });
        }
        let invalid = |key: &str, error: RateLimitError| AuthError::Settings {
            key: key.to_owned(),
            message: error.to_string(),
        };
        let account_key = "auth.login_throttle.account";
        let ip_key = "auth.login_throttle.ip";
        let account_policy = settings
            .account
            .policy(account_key)
            .map_err(|e| invalid(account_key, e))?;
        let ip_policy = settings.ip.policy(ip_key).map_err(|e| invalid(ip_key, e))?;
        let account = ratelimit
            .throttle("auth-login-account", account_policy)
            .map_err(|e| invalid("ratelimit", e))?;
        let ip = ratelimit
            .throttle("auth-login-ip", ip_policy)
            .map_err(|e| invalid("ratelimit", e))?;
        Ok(Self {
            throttles: Some((account, ip)),
        })
    }

    /// Whether a login for `email` from `ip` may be checked now ([`Attempt::wait`] is zero), and
    /// whether the attempt already counts against the account ([`Attempt::Counted`], until
    /// [`LoginThrottle::succeeded`]); otherwise how long it must still wait.
    pub(crate) async fn begin(&self, email: &str, ip: Option<&str>) -> Attempt {
        let Some((account, by_ip)) = &self.throttles else {
            return Attempt::Clear;
        };
        let ip_wait = match ip {
            Some(ip) => fail_open(by_ip.delay(ip).await),
            None => Duration::ZERO,
        };
        if !ip_wait.is_zero() {
            return Attempt::Wait(ip_wait);
        }
        fail_open(account.try_attempt(&account_key(email)).await)
    }

    /// Counts a failed login for `email` from `ip`; `attempt` is what [`LoginThrottle::begin`]
    /// answered (a counted attempt is not counted twice).
    pub(crate) async fn failed(&self, email: &str, attempt: Attempt, ip: Option<&str>) {
        let Some((account, by_ip)) = &self.throttles else {
            return;
        };
        if attempt != Attempt::Counted {
            fail_open(account.record_failure(&account_key(email)).await);
        }
        if let Some(ip) = ip {
            fail_open(by_ip.record_failure(ip).await);
        }
    }

    /// Takes back the account's count of an attempt [`LoginThrottle::begin`] counted
    /// ([`Attempt::Counted`]) whose password could not be checked (identity unreachable): our
    /// failure must not cost the user a delay.
    pub(crate) async fn unchecked(&self, email: &str, attempt: Attempt) {
        if let (Some((account, _)), Attempt::Counted) = (&self.throttles, attempt) {
            fail_open(account.release_attempt(&account_key(email)).await);
        }
    }

    /// Forgets the failures of `email` after a successful login (or a correct password for an
    /// address not yet verified). The address's failures stay:
    /// one valid account must not clear an address that is guessing at others.
    pub(crate) async fn succeeded(&self, email: &str) {
        if let Some((account, _)) = &self.throttles {
            fail_open(account.record_success(&account_key(email)).await);
        }
    }
}

/// The throttle key of an e-mail address: hex SHA-256 of its trimmed, lower-cased form.
fn account_key(email: &str) -> String {
    keel_ratelimit::opaque_key(&email.trim().to_lowercase())
}

/// The value, or its default when the throttle's store could not answer (logged and counted).
fn fail_open<T: Default>(outcome: Result<T, RateLimitError>) -> T {
    outcome.unwrap_or_else(|error| {
        metrics::counter!("keel_auth_login_throttle_unavailable_total").increment(1);
        tracing::warn!(%error, "login throttle unavailable; the attempt is not throttled");
        T::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(account_free: u32, ip_free: u32) -> LoginThrottle {
        let schedule = |free_failures| BackoffSettings {
            free_failures,
            base_delay_ms: 1_000,
            max_delay_ms: 4_000,
            forget_after_secs: 60,
        };
        let settings = LoginThrottleSettings {
            enabled: true,
            account: schedule(account_free),
            ip: schedule(ip_free),
        };
        LoginThrottle::new(&settings, &RateLimitSettings::default()).expect("throttle")
    }

    /// A failed login for `email` from `ip`: its attempt, then its failure.
    async fn fail(throttle: &LoginThrottle, email: &str, ip: Option<&str>) -> Duration {
        let attempt = throttle.begin(email, ip).await;
        if attempt.wait().is_zero() {
            throttle.failed(email, attempt, ip).await;
        }
        attempt.wait()
    }

    #[tokio::test(start_paused = true)]
    async fn failures_past_the_free_ones_make_the_next_attempt_wait_and_success_resets() {
        let throttle = throttle(2, 100);
        for email in ["Ann@Example.com", "ann@example.com ", "ann@example.com"] {
            assert_eq!(fail(&throttle, email, Some("10.0.0.1")).await, Duration::ZERO);
        }
        assert_eq!(
            throttle.begin("ANN@example.com", Some("10.0.0.2")).await,
            Attempt::Wait(Duration::from_secs(1)),
            "the account is throttled whatever the address"
        );
        assert_eq!(
            throttle.begin("bob@example.com", Some("10.0.0.1")).await,
            Attempt::Clear
        );
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(fail(&throttle, "ann@example.com", None).await, Duration::ZERO);
        assert_eq!(
            throttle.begin("ann@example.com", None).await,
            Attempt::Wait(Duration::from_secs(2))
        );
        throttle.succeeded("ann@example.com").await;
        assert_eq!(throttle.begin("ann@example.com", None).await, Attempt::Clear);
    }

    /// Begins 50 logins for Ann at once, from 50 addresses; returns how many may be checked.
    async fn burst(throttle: &Arc<LoginThrottle>) -> usize {
        let guesses: Vec<_> = (0..50)
            .map(|n| {
                let throttle = Arc::clone(throttle);
                tokio::spawn(async move {
                    throttle
                        .begin("ann@example.com", Some(&format!("10.0.0.{n}")))
                        .await
                })
            })
            .collect();
        let mut checked = 0;
        for guess in guesses {
            if guess.await.expect("the task ran").wait().is_zero() {
                checked += 1;
            }
        }
        checked
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_failure_a_burst_of_simultaneous_guesses_gets_only_the_free_ones() {
        let throttle = Arc::new(throttle(5, 1_000));
        // Right passwords at once: nothing counted, nobody slowed.
        assert_eq!(burst(&throttle).await, 50);
        // One wrong password: then of 50 simultaneous guesses only the other free ones are checked.
        fail(&throttle, "ann@example.com", Some("10.1.1.1")).await;
        assert_eq!(burst(&throttle).await, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_whose_password_could_not_be_checked_is_taken_back() {
        let throttle = throttle(1, 100);
        fail(&throttle, "ann@example.com", None).await;
        // The first attempt past the free one is counted when it begins...
        let attempt = throttle.begin("ann@example.com", None).await;
        assert_eq!(attempt, Attempt::Counted);
        // ...and identity is down: taken back, so Ann does not wait for our outage.
        throttle.unchecked("ann@example.com", attempt).await;
        assert_eq!(throttle.begin("ann@example.com", None).await, Attempt::Counted);
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_guessing_many_accounts_is_throttled_by_address() {
        let throttle = throttle(100, 3);
        for n in 0..4 {
            let email = format!("user{n}@example.com");
            assert_eq!(fail(&throttle, &email, Some("10.9.9.9")).await, Duration::ZERO);
        }
        assert_eq!(
            throttle.begin("someone-else@example.com", Some("10.9.9.9")).await,
            Attempt::Wait(Duration::from_secs(1))
        );
        assert_eq!(
            throttle.begin("someone-else@example.com", Some("10.0.0.1")).await,
            Attempt::Clear
        );
    }

    #[tokio::test]
    async fn a_disabled_throttle_never_waits() {
        let settings = LoginThrottleSettings {
            enabled: false,
            ..LoginThrottleSettings::default()
        };
        let throttle = LoginThrottle::new(&settings, &RateLimitSettings::default()).expect("throttle");
        for _ in 0..50 {
            assert_eq!(
                fail(&throttle, "ann@example.com", Some("10.0.0.1")).await,
                Duration::ZERO
            );
        }
    }

    #[test]
    fn account_keys_do_not_contain_the_address_and_ignore_case_and_spaces() {
        let key = account_key(" Ann@Example.com ");
        assert_eq!(key, account_key("ann@example.com"));
        assert!(!key.contains("ann"));
        assert_eq!(key.len(), 64);
    }
}
