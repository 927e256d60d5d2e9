//! GCRA, the generic cell rate algorithm: the one rate-limiting rule both backends run.
//!
//! Why GCRA rather than a sliding-window counter:
//! - One number per key, the theoretical arrival time (TAT): the moment the key's budget would be
//!   empty again if requests kept arriving at exactly the allowed rate. In Redis that is one short
//!   string with a TTL, updated by one tiny script; in memory one `u64`.
//! - Smooth and exact: the budget refills continuously (one request every `period / limit`), so
//!   there is no burst of twice the limit at a window boundary (fixed windows) and no weighted
//!   estimate of the previous window (sliding-window counters), while a fresh key may still burst
//!   up to `limit` at once.
//! - Everything the headers need falls out of the TAT: remaining = how many intervals fit before
//!   the window is full, reset = TAT − now, retry-after = when the next interval fits.
//! - Idle keys expire by themselves: once now ≥ TAT the stored value means the same as no value,
//!   so Redis's `PEXPIRE` and the in-memory sweep may drop it.
//!
//! With `I = period / limit` (the emission interval) and `W = limit × I` (the window), a request at
//! `now` computes `tat = max(stored, now)` and `new = tat + I`; it is allowed iff
//! `new − W ≤ now`, and then `new` is stored. `redis_backend/gcra.lua` is a line-by-line copy of
//! [`check`]; all times are microseconds.

use crate::{Decision, Quota};

/// One GCRA step: the decision, and the TAT to store if the request was allowed (`None`: keep the
/// stored value, denied requests consume nothing).
pub(crate) fn check(stored_tat: Option<u64>, now: u64, quota: &Quota) -> (Decision, Option<u64>) {
    let interval = quota.interval_us();
    let window = quota.window_us();
    let tat = stored_tat.map_or(now, |stored| stored.max(now));
    let new_tat = tat.saturating_add(interval);
    let allow_at = new_tat.saturating_sub(window);
    if now < allow_at {
        let decision = Decision::from_micros(false, quota.limit(), 0, tat - now, allow_at - now);
        return (decision, None);
    }
    let used = new_tat - now;
    let remaining = (window - used) / interval;
    let decision = Decision::from_micros(true, quota.limit(), remaining, used, 0);
    (decision, Some(new_tat))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Runs `count` checks at `now`, threading the TAT, and returns the decisions.
    fn burst(tat: &mut Option<u64>, now: u64, quota: &Quota, count: usize) -> Vec<Decision> {
        (0..count)
            .map(|_| {
                let (decision, new_tat) = check(*tat, now, quota);
                if new_tat.is_some() {
                    *tat = new_tat;
                }
                decision
            })
            .collect()
    }

    #[test]
    fn a_fresh_key_bursts_up_to_the_limit_with_remaining_counting_down() {
        let quota = Quota::new(5, Duration::from_secs(10)).unwrap();
        let mut tat = None;
        let decisions = burst(&mut tat, 1_000, &quota, 6);
        let remaining: Vec<u32> = decisions.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0, 0]);
        assert!(decisions[..5].iter().all(|d| d.allowed));
        let denied = decisions[5];
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after, Some(Duration::from_secs(2)));
        assert_eq!(denied.reset_after, Duration::from_secs(10));
    }

    #[test]
    fn the_budget_refills_one_request_per_interval() {
        let quota = Quota::new(5, Duration::from_secs(10)).unwrap();
        let mut tat = None;
        burst(&mut tat, 0, &quota, 5);
        let early = check(tat, 1_999_999, &quota).0;
        assert!(!early.allowed);
        assert_eq!(early.retry_after, Some(Duration::from_micros(1)));
        let on_time = burst(&mut tat, 2_000_000, &quota, 2);
        assert!(on_time[0].allowed);
        assert_eq!(on_time[0].remaining, 0);
        assert!(!on_time[1].allowed);
        let full = check(tat, 100_000_000, &quota).0;
        assert_eq!(full.remaining, 4);
    }

    #[test]
    fn a_denied_request_does_not_consume_budget() {
        let quota = Quota::new(1, Duration::from_secs(1)).unwrap();
        let (_, tat) = check(None, 0, &quota);
        for now in [100, 200_000, 999_999] {
            let (decision, new_tat) = check(tat, now, &quota);
            assert!(!decision.allowed);
            assert_eq!(new_tat, None);
        }
        assert!(check(tat, 1_000_000, &quota).0.allowed);
    }
}
