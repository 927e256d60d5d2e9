//! One instance as the balancer sees it: where it is, what the caller attached to it, and its
//! passive health (requests in flight, consecutive failures, ejection).
//!
//! Why a module of its own: this is the state that outlives a change of the instance set (an
//! instance that stays keeps its record) and that every pick and every outcome touches from many
//! threads at once. It is all atomics, so a pick never waits for a lock here; the ejection rule is
//! written as compare-and-swap steps so that concurrent failures of one instance eject it once.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Ejection;

/// An instance of the current set, shared by the set and by the picks of it.
pub(crate) struct Member<T> {
    /// The instance's id in the registry.
    pub(crate) id: Box<str>,
    /// `host:port` of the balancer's port.
    pub(crate) endpoint: Box<str>,
    /// What the caller made for the instance (a channel, or nothing).
    pub(crate) payload: T,
    /// Load and passive health.
    pub(crate) health: Health,
}

impl<T> Member<T> {
    /// A member with a clean record.
    pub(crate) fn new(id: &str, endpoint: String, payload: T) -> Self {
        Self {
            id: id.into(),
            endpoint: endpoint.into_boxed_str(),
            payload,
            health: Health::default(),
        }
    }
}

impl<T> fmt::Debug for Member<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

/// Time since a balancer's epoch in nanoseconds, read from the (tokio) clock at most once per
/// pick, and only when an ejection has to be checked.
#[derive(Debug)]
pub(crate) struct LazyNow {
    epoch: Instant,
    now: Option<u64>,
}

impl LazyNow {
    /// Time since `epoch`, not read yet.
    pub(crate) fn new(epoch: Instant) -> Self {
        Self { epoch, now: None }
    }

    /// Nanoseconds since the epoch, read on first use.
    pub(crate) fn get(&mut self) -> u64 {
        let epoch = self.epoch;
        *self
            .now
            .get_or_insert_with(|| nanos(Instant::now().saturating_duration_since(epoch)))
    }
}

/// `duration` in nanoseconds, saturated (u64 nanoseconds last 584 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A member's load and passive health.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Picks of this member not dropped yet.
    in_flight: AtomicUsize,
    /// The balancer's pick sequence number of the latest pick, plus one; 0 when never picked.
    last_pick: AtomicU64,
    /// Failures since the latest success or ejection.
    failures: AtomicU32,
    /// Ejections since the latest success.
    ejections: AtomicU32,
    /// When the current ejection ends, in nanoseconds since the balancer's epoch; 0 when the
    /// member is not ejected. A past value is cleared by the next pick that sees it.
    ejected_until: AtomicU64,
}

impl Health {
    /// Requests in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The sequence number of the latest pick (0: never picked).
    pub(crate) fn last_pick(&self) -> u64 {
        self.last_pick.load(Ordering::Relaxed)
    }

    /// A pick numbered `sequence` starts.
    pub(crate) fn begin(&self, sequence: u64) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.last_pick
            .store(sequence.saturating_add(1), Ordering::Relaxed);
    }

    /// A pick ends.
    pub(crate) fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether an ejection mark is set (it may have expired): a cheap test that lets a pick skip
    /// reading the clock.
    pub(crate) fn is_marked(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) != 0
    }

    /// Whether the member may be picked now; clears an expired ejection.
    pub(crate) fn is_available(&self, now: &mut LazyNow) -> bool {
        let until = self.ejected_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if now.get() < until {
            return false;
        }
        // Back in. A failed exchange means another thread already cleared it or ejected it anew;
        // either way this pick's answer stands.
        let _ = self
            .ejected_until
            .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Relaxed);
        true
    }

    /// A request to the member got an answer: the failure count and the doubling start over.
    /// A running ejection still runs its time (the answer may belong to a request sent before it).
    pub(crate) fn record_success(&self) {
        // Loads first: a success is the common case and should not write a shared cache line.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.ejections.load(Ordering::Relaxed) != 0 {
            self.ejections.store(0, Ordering::Relaxed);
        }
    }

    /// A request to the member failed at `now` (nanoseconds since the epoch). Returns how long
    /// the member is ejected for when this failure ejects it; `None` when it does not (below the
    /// threshold, ejection off, or already ejected, so concurrent failures eject once).
    pub(crate) fn record_failure(&self, rule: &Ejection, now: u64) -> Option<Duration> {
        if !rule.is_on() || ejected_at(self.ejected_until.load(Ordering::Acquire), now) {
            return None;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if failures < rule.failures {
            return None;
        }
        let time = rule.duration(self.ejections.load(Ordering::Relaxed));
        let end = now.saturating_add(nanos(time)).max(1);
        self.ejected_until
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |until| {
                (!ejected_at(until, now)).then_some(end)
            })
            .ok()?;
        self.failures.store(0, Ordering::Relaxed);
        self.ejections.fetch_add(1, Ordering::Relaxed);
        Some(time)
    }
}

/// Whether an ejection ending at `until` (0: none) is running at `now`.
fn ejected_at(until: u64, now: u64) -> bool {
    until != 0 && now < until
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BalancerConfig;

    const SECOND: u64 = 1_000_000_000;

    fn rule(failures: u32) -> Ejection {
        Ejection {
            failures,
            ..Ejection::from_config(&BalancerConfig::default())
        }
    }

    #[test]
    fn a_failure_while_ejected_neither_counts_nor_extends_the_ejection() {
        let health = Health::default();
        assert_eq!(
            health.record_failure(&rule(1), SECOND),
            Some(Duration::from_secs(10))
        );
        assert_eq!(health.record_failure(&rule(1), 2 * SECOND), None);
        assert_eq!(health.ejected_until.load(Ordering::Relaxed), 11 * SECOND);
        // The next one after it ended is the second ejection: twice as long.
        assert_eq!(
            health.record_failure(&rule(1), 11 * SECOND),
            Some(Duration::from_secs(20))
        );
    }

    #[test]
    fn only_consecutive_failures_reach_the_threshold() {
        let health = Health::default();
        assert_eq!(health.record_failure(&rule(3), 0), None);
        assert_eq!(health.record_failure(&rule(3), 0), None);
        health.record_success();
        assert_eq!(health.record_failure(&rule(3), 0), None);
        assert_eq!(health.record_failure(&rule(3), 0), None);
        assert!(health.record_failure(&rule(3), 0).is_some());
    }

    #[test]
    fn in_flight_counts_begun_picks_until_they_end() {
        let health = Health::default();
        health.begin(0);
        health.begin(7);
        assert_eq!((health.in_flight(), health.last_pick()), (2, 8));
        health.end();
        assert_eq!(health.in_flight(), 1);
    }
}
