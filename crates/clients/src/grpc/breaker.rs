//! The circuit breaker: stop calling a peer that keeps failing, and try it again now and then.
//!
//! Closed, it lets every call through and counts consecutive transport failures (no connection,
//! connection lost, no answer before the deadline); any answer from the peer, error or not, resets
//! the count. After `threshold` in a row it opens: calls fail at once with `Unavailable` instead of
//! each waiting for a connect timeout, so a dead peer does not pile up requests in its callers.
//! After `cool_down` it lets one probe call through (half-open): an answer closes it, a failure
//! opens it again. A probe that never reports (its caller went away) is replaced by another after
//! `cool_down`, so the breaker cannot stay half-open forever.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::ServiceError;

/// One peer service's breaker.
#[derive(Debug)]
pub(crate) struct Breaker {
    service: &'static str,
    threshold: u32,
    cool_down: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_started: Instant },
}

impl Breaker {
    /// A closed breaker for `service`; `threshold` is at least 1.
    pub(crate) fn new(service: &'static str, threshold: u32, cool_down: Duration) -> Self {
        Self {
            service,
            threshold: threshold.max(1),
            cool_down,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may go out now; `Unavailable("<service>: circuit open …")` when not.
    pub(crate) fn admit(&self) -> Result<(), ServiceError> {
        let now = Instant::now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until } if now < until => Err(self.open_error(until - now)),
            State::Open { .. } => {
                *state = State::HalfOpen { probe_started: now };
                tracing::info!(service = self.service, "circuit half-open: probing");
                Ok(())
            }
            State::HalfOpen { probe_started } if now - probe_started < self.cool_down => {
                Err(self.open_error(self.cool_down - (now - probe_started)))
            }
            State::HalfOpen { .. } => {
                *state = State::HalfOpen { probe_started: now };
                Ok(())
            }
        }
    }

    /// The peer answered.
    pub(crate) fn record_answer(&self) {
        let mut state = self.lock();
        if !matches!(*state, State::Closed { failures: 0 }) {
            if !matches!(*state, State::Closed { .. }) {
                tracing::info!(
                    service = self.service,
                    "circuit closed: the service answers again"
                );
            }
            *state = State::Closed { failures: 0 };
        }
    }

    /// The call failed in transport: no connection, connection lost, or no answer in time.
    pub(crate) fn record_failure(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        let open = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            State::Closed { .. } | State::HalfOpen { .. } => true,
            // Calls already in flight when it opened; the cool-down runs from the opening.
            State::Open { .. } => false,
        };
        if open {
            *state = State::Open {
                until: now + self.cool_down,
            };
            metrics::counter!("keel_client_circuit_opened_total", "service" => self.service).increment(1);
            tracing::warn!(
                service = self.service,
                cool_down_ms = self.cool_down.as_millis(),
                "circuit opened after consecutive transport failures"
            );
        }
    }

    fn open_error(&self, wait: Duration) -> ServiceError {
        ServiceError::Unavailable(format!(
            "{}: circuit open after {} consecutive failures; next attempt in {} ms",
            self.service,
            self.threshold,
            wait.as_millis()
        ))
    }

    /// The state, even after a panic elsewhere: every change leaves it consistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL_DOWN: Duration = Duration::from_secs(10);

    fn is_open(breaker: &Breaker) -> bool {
        match breaker.admit() {
            Ok(()) => false,
            Err(ServiceError::Unavailable(text)) => text.starts_with("audit: circuit open"),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_consecutive_failures_and_an_answer_resets_the_count() {
        let breaker = Breaker::new("audit", 3, COOL_DOWN);
        breaker.record_failure();
        breaker.record_failure();
        breaker.record_answer();
        breaker.record_failure();
        breaker.record_failure();
        assert!(!is_open(&breaker));
        breaker.record_failure();
        assert!(is_open(&breaker));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cool_down_one_probe_goes_out_and_its_answer_closes_the_circuit() {
        let breaker = Breaker::new("audit", 1, COOL_DOWN);
        breaker.record_failure();
        tokio::time::advance(COOL_DOWN).await;
        assert!(!is_open(&breaker), "the probe is admitted");
        assert!(is_open(&breaker), "a second call waits for the probe");
        breaker.record_answer();
        assert!(!is_open(&breaker));
        assert!(!is_open(&breaker));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_the_circuit_for_another_cool_down() {
        let breaker = Breaker::new("audit", 1, COOL_DOWN);
        breaker.record_failure();
        tokio::time::advance(COOL_DOWN).await;
        assert!(!is_open(&breaker));
        breaker.record_failure();
        tokio::time::advance(COOL_DOWN / 2).await;
        assert!(is_open(&breaker));
        tokio::time::advance(COOL_DOWN / 2).await;
        assert!(!is_open(&breaker));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_reports_is_replaced_after_the_cool_down() {
        let breaker = Breaker::new("audit", 1, COOL_DOWN);
        breaker.record_failure();
        tokio::time::advance(COOL_DOWN).await;
        assert!(!is_open(&breaker));
        tokio::time::advance(COOL_DOWN).await;
        assert!(!is_open(&breaker), "a new probe replaces the silent one");
    }
}
