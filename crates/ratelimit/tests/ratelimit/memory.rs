//! The in-memory limiter on a paused clock: budgets, refill, independence, bounded memory.

use std::time::Duration;

use keel_ratelimit::{InMemoryOptions, InMemoryRateLimiter, Quota, RateLimiter};

fn ten_per_minute() -> Quota {
    Quota::new(10, Duration::from_secs(60)).expect("a valid quota")
}

#[tokio::test(start_paused = true)]
async fn the_limit_is_allowed_within_the_period_then_requests_are_denied() {
    let limiter = InMemoryRateLimiter::default();
    let quota = ten_per_minute();
    for expected_remaining in (0..10).rev() {
        let decision = limiter.check("user:1", quota).await.unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.limit, 10);
        assert_eq!(decision.remaining, expected_remaining);
        assert_eq!(decision.retry_after, None);
    }
    let denied = limiter.check("user:1", quota).await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert_eq!(denied.retry_after, Some(Duration::from_secs(6)));
    assert_eq!(denied.retry_after_secs(), Some(6));
    assert_eq!(denied.reset_after_secs(), 60);
}

#[tokio::test(start_paused = true)]
async fn check_now_answers_at_once_and_shares_the_budget_of_check() {
    let limiter = InMemoryRateLimiter::default();
    let quota = ten_per_minute();
    for expected_remaining in (5..10).rev() {
        let decision = limiter.check_now("user:2", quota).expect("in-process").unwrap();
        assert!(decision.allowed);
        assert_eq!(decision.remaining, expected_remaining);
    }
    for expected_remaining in (0..5).rev() {
        let decision = limiter.check("user:2", quota).await.unwrap();
        assert_eq!(decision.remaining, expected_remaining);
    }
    let denied = limiter.check_now("user:2", quota).expect("in-process").unwrap();
    assert!(!denied.allowed);
}

#[tokio::test(start_paused = true)]
async fn the_budget_refills_over_time() {
    let limiter = InMemoryRateLimiter::default();
    let quota = ten_per_minute();
    for _ in 0..10 {
        limiter.check("user:1", quota).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(!limiter.check("user:1", quota).await.unwrap().allowed);
    tokio::time::advance(Duration::from_secs(1)).await;
    let refilled = limiter.check("user:1", quota).await.unwrap();
    assert!(refilled.allowed);
    assert_eq!(refilled.remaining, 0);

    tokio::time::advance(Duration::from_secs(60)).await;
    let full = limiter.check("user:1", quota).await.unwrap();
    assert_eq!(full.remaining, 9, "a full minute later the whole budget is back");
}

#[tokio::test(start_paused = true)]
async fn separate_keys_have_independent_budgets() {
    let limiter = InMemoryRateLimiter::default();
    let quota = ten_per_minute();
    for _ in 0..10 {
        limiter.check("ip:192.0.2.1", quota).await.unwrap();
    }
    assert!(!limiter.check("ip:192.0.2.1", quota).await.unwrap().allowed);
    let other = limiter.check("ip:192.0.2.2", quota).await.unwrap();
    assert!(other.allowed);
    assert_eq!(other.remaining, 9);
}

#[tokio::test(start_paused = true)]
async fn keys_whose_budget_is_full_again_are_swept_away() {
    let limiter = InMemoryRateLimiter::default();
    let quota = ten_per_minute();
    for i in 0..500 {
        limiter.check(&format!("ip:{i}"), quota).await.unwrap();
    }
    assert_eq!(limiter.tracked_keys(), 500);
    tokio::time::advance(Duration::from_secs(5)).await;
    limiter.sweep();
    assert_eq!(limiter.tracked_keys(), 500, "budgets still partly used");
    tokio::time::advance(Duration::from_secs(2)).await;
    limiter.sweep();
    assert_eq!(limiter.tracked_keys(), 0);
}

#[tokio::test(start_paused = true)]
async fn many_distinct_keys_never_grow_memory_past_the_cap() {
    let options = InMemoryOptions {
        max_keys: 256,
        ..InMemoryOptions::default()
    };
    let limiter = InMemoryRateLimiter::new(options);
    let quota = ten_per_minute();
    for i in 0..20_000 {
        let decision = limiter.check(&format!("ip:{i}"), quota).await.unwrap();
        assert!(decision.allowed);
        assert!(limiter.tracked_keys() <= 256);
    }
}
