//! The failure throttle: delays grow after the free failures, shrink with time, reset on success;
//! in memory on a paused clock, and on a real Redis.

use std::time::Duration;

use keel_ratelimit::{
    Attempt, BackoffPolicy, InMemoryOptions, InMemoryThrottle, RateLimitError, RedisOptions, RedisThrottle,
    Throttle,
};

const NO_HANG: Duration = Duration::from_secs(10);

/// Records `count` failures and returns the delay each one announced.
async fn fail(throttle: &dyn Throttle, key: &str, count: usize) -> Vec<Duration> {
    let mut delays = Vec::new();
    for _ in 0..count {
        delays.push(
            throttle
                .record_failure(key)
                .await
                .expect("the failure is recorded"),
        );
    }
    delays
}

fn secs(delays: &[Duration]) -> Vec<u64> {
    delays.iter().map(Duration::as_secs).collect()
}

#[tokio::test(start_paused = true)]
async fn in_memory_delays_grow_after_three_failures_and_reset_on_success() {
    let throttle = InMemoryThrottle::new(BackoffPolicy::default(), InMemoryOptions::default());
    assert_eq!(throttle.delay("account:a").await.unwrap(), Duration::ZERO);
    let delays = fail(&throttle, "account:a", 10).await;
    assert_eq!(secs(&delays), [0, 0, 0, 1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(
        throttle.delay("account:a").await.unwrap(),
        Duration::from_secs(30)
    );
    assert_eq!(
        throttle.delay("account:b").await.unwrap(),
        Duration::ZERO,
        "keys are independent"
    );

    throttle.record_success("account:a").await.unwrap();
    assert_eq!(throttle.delay("account:a").await.unwrap(), Duration::ZERO);
    assert_eq!(secs(&fail(&throttle, "account:a", 4).await), [0, 0, 0, 1]);
}

#[tokio::test(start_paused = true)]
async fn in_memory_delay_counts_down_from_the_last_failure_and_failures_are_forgotten() {
    let policy = BackoffPolicy {
        forget_after: Duration::from_secs(600),
        ..BackoffPolicy::default()
    };
    let throttle = InMemoryThrottle::new(policy, InMemoryOptions::default());
    fail(&throttle, "ip:192.0.2.1", 6).await;
    assert_eq!(
        throttle.delay("ip:192.0.2.1").await.unwrap(),
        Duration::from_secs(4)
    );
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(
        throttle.delay("ip:192.0.2.1").await.unwrap(),
        Duration::from_secs(1)
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(throttle.delay("ip:192.0.2.1").await.unwrap(), Duration::ZERO);

    tokio::time::advance(Duration::from_secs(600)).await;
    let after_quiet = fail(&throttle, "ip:192.0.2.1", 4).await;
    assert_eq!(secs(&after_quiet), [0, 0, 0, 1], "the count started over");
}

#[tokio::test]
async fn redis_delays_grow_count_down_and_reset_on_success() {
    let Some(url) = keel_testkit::server_url("REDIS_URL") else {
        return;
    };
    let options = RedisOptions {
        key_prefix: format!("{}:", keel_testkit::unique_name("throttle")),
        timeout: Duration::from_secs(2),
    };
    let policy = BackoffPolicy {
        forget_after: Duration::from_secs(60),
        ..BackoffPolicy::default()
    };
    let throttle = RedisThrottle::open(&url, policy, options.clone()).unwrap();
    let replica = RedisThrottle::open(&url, policy, options).unwrap();

    assert_eq!(throttle.delay("account:a").await.unwrap(), Duration::ZERO);
    let delays = fail(&throttle, "account:a", 6).await;
    assert_eq!(secs(&delays), [0, 0, 0, 1, 2, 4]);
    let seen_elsewhere = replica.delay("account:a").await.unwrap();
    assert!(
        seen_elsewhere > Duration::from_secs(3) && seen_elsewhere <= Duration::from_secs(4),
        "another replica sees the same failures: {seen_elsewhere:?}"
    );
    assert_eq!(replica.delay("account:b").await.unwrap(), Duration::ZERO);

    replica.record_success("account:a").await.unwrap();
    assert_eq!(throttle.delay("account:a").await.unwrap(), Duration::ZERO);
    assert_eq!(secs(&fail(&throttle, "account:a", 4).await), [0, 0, 0, 1]);
    throttle.record_success("account:a").await.unwrap();
}

#[tokio::test]
async fn a_redis_throttle_that_cannot_reach_redis_gives_unavailable_without_hanging() {
    let throttle = RedisThrottle::open(
        "redis://127.0.0.1:1",
        BackoffPolicy::default(),
        RedisOptions::default(),
    )
    .unwrap();
    let failure = tokio::time::timeout(NO_HANG, throttle.record_failure("account:a"))
        .await
        .expect("returns");
    assert!(matches!(failure, Err(RateLimitError::Unavailable(_))));
    let delay = tokio::time::timeout(NO_HANG, throttle.delay("account:a"))
        .await
        .expect("returns");
    assert!(matches!(delay, Err(RateLimitError::Unavailable(_))));
}

/// Runs 100 attempts on `key` at once and returns how many were let through.
async fn burst_of_attempts(throttle: std::sync::Arc<dyn Throttle>, key: &str) -> usize {
    let attempts = (0..100).map(|_| {
        let throttle = std::sync::Arc::clone(&throttle);
        let key = key.to_owned();
        tokio::spawn(async move { throttle.try_attempt(&key).await.expect("the attempt is checked") })
    });
    let mut passed = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        if attempt.await.expect("the task ran").wait().is_zero() {
            passed += 1;
        }
    }
    passed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_once_a_key_has_failed_a_burst_of_attempts_gets_only_the_free_ones() {
    let throttle: std::sync::Arc<dyn Throttle> = std::sync::Arc::new(InMemoryThrottle::new(
        BackoffPolicy::default(),
        InMemoryOptions::default(),
    ));
    // No failure yet: nothing is counted and nothing waits, however many go at once.
    assert_eq!(
        burst_of_attempts(std::sync::Arc::clone(&throttle), "account:a").await,
        100
    );
    assert_eq!(throttle.delay("account:a").await.unwrap(), Duration::ZERO);
    // One failure: of 100 simultaneous attempts only the rest of the free ones go ahead (three
    // free failures: this one and two more, plus the first past them), each counted at once.
    throttle.record_failure("account:a").await.unwrap();
    assert_eq!(
        burst_of_attempts(std::sync::Arc::clone(&throttle), "account:a").await,
        3
    );
    let next = throttle.try_attempt("account:a").await.unwrap();
    assert!(
        matches!(next, Attempt::Wait(wait) if wait > Duration::ZERO && wait <= Duration::from_secs(1)),
        "{next:?}"
    );
    // A success forgets the attempts counted in advance.
    throttle.record_success("account:a").await.unwrap();
    assert_eq!(throttle.try_attempt("account:a").await.unwrap(), Attempt::Clear);
}

#[tokio::test(start_paused = true)]
async fn in_memory_a_counted_attempt_counts_like_a_failure_and_waits_like_delay() {
    let throttle = InMemoryThrottle::new(BackoffPolicy::default(), InMemoryOptions::default());
    assert_eq!(throttle.try_attempt("ip:a").await.unwrap(), Attempt::Clear);
    throttle.record_failure("ip:a").await.unwrap();
    for _ in 0..3 {
        assert_eq!(throttle.try_attempt("ip:a").await.unwrap(), Attempt::Counted);
    }
    assert_eq!(throttle.delay("ip:a").await.unwrap(), Duration::from_secs(1));
    assert_eq!(
        throttle.try_attempt("ip:a").await.unwrap(),
        Attempt::Wait(Duration::from_secs(1))
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(throttle.try_attempt("ip:a").await.unwrap(), Attempt::Counted);
    assert_eq!(throttle.delay("ip:a").await.unwrap(), Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_once_a_key_has_failed_a_burst_of_attempts_gets_only_the_free_ones() {
    let Some(url) = keel_testkit::server_url("REDIS_URL") else {
        return;
    };
    let options = RedisOptions {
        key_prefix: format!("{}:", keel_testkit::unique_name("attempts")),
        timeout: Duration::from_secs(2),
    };
    let policy = BackoffPolicy {
        forget_after: Duration::from_secs(60),
        ..BackoffPolicy::default()
    };
    let throttle: std::sync::Arc<dyn Throttle> =
        std::sync::Arc::new(RedisThrottle::open(&url, policy, options.clone()).unwrap());
    assert_eq!(
        burst_of_attempts(std::sync::Arc::clone(&throttle), "account:a").await,
        100
    );
    throttle.record_failure("account:a").await.unwrap();
    assert_eq!(
        burst_of_attempts(std::sync::Arc::clone(&throttle), "account:a").await,
        3
    );
    let replica = RedisThrottle::open(&url, policy, options).unwrap();
    let next = replica.try_attempt("account:a").await.unwrap();
    assert!(
        matches!(next, Attempt::Wait(wait) if wait > Duration::from_millis(500) && wait <= Duration::from_secs(1)),
        "another replica must wait too: {next:?}"
    );
    throttle.record_success("account:a").await.unwrap();
    assert_eq!(replica.try_attempt("account:a").await.unwrap(), Attempt::Clear);

    // An attempt counted but never checked is taken back.
    throttle.record_failure("account:b").await.unwrap();
    assert_eq!(throttle.try_attempt("account:b").await.unwrap(), Attempt::Counted);
    replica.release_attempt("account:b").await.unwrap();
    replica.release_attempt("account:b").await.unwrap();
    assert_eq!(
        throttle.try_attempt("account:b").await.unwrap(),
        Attempt::Clear,
        "nothing left"
    );
    replica.release_attempt("account:never").await.unwrap();
    assert_eq!(
        throttle.try_attempt("account:never").await.unwrap(),
        Attempt::Clear
    );
}

#[tokio::test(start_paused = true)]
async fn in_memory_an_attempt_that_was_never_checked_is_taken_back() {
    let throttle = InMemoryThrottle::new(BackoffPolicy::default(), InMemoryOptions::default());
    fail(&throttle, "account:a", 3).await;
    assert_eq!(throttle.try_attempt("account:a").await.unwrap(), Attempt::Counted);
    assert_eq!(throttle.delay("account:a").await.unwrap(), Duration::from_secs(1));
    throttle.release_attempt("account:a").await.unwrap();
    assert_eq!(
        throttle.delay("account:a").await.unwrap(),
        Duration::ZERO,
        "back to three"
    );
    for _ in 0..3 {
        throttle.release_attempt("account:a").await.unwrap();
    }
    assert_eq!(
        throttle.try_attempt("account:a").await.unwrap(),
        Attempt::Clear,
        "nothing left"
    );
    throttle.release_attempt("account:unknown").await.unwrap();
}
