//! Rate limits at the edge: per user and per client address, by route class.
//!
//! Why a module of its own: the limits are policy (plan 6.6: 100 requests a minute per user, 1000
//! per address, stricter classes for sensitive routes), configured once under
//! `gateway.rate_limits` and applied to every request before it is proxied. The counting itself
//! is `keel-ratelimit`'s: in this process's memory, or in Redis so that every gateway replica
//! draws on one budget (`ratelimit.backend`).
//!
//! Each request is counted once against its address (`ip:<class>:<address>`), before anything
//! else is checked, and, once the caller has authenticated, once against its user
//! (`user:<class>:<id>`); the stricter decision wins and sets `X-RateLimit-Limit`, `-Remaining`
//! and `-Reset` on the answer, whatever it is: refusals (404, 401, 403, 413, 431) count and carry
//! them too, so a flood of bad tokens or unknown paths is limited like any other traffic. A
//! denied request is answered 429 problem+json with `Retry-After` and never reaches an upstream
//! (nor, when the address's budget is spent, the token check). When
//! the counters cannot be reached (Redis down), requests go through without headers (fail open:
//! a rate limiter must not take the platform down with it), logged at most once a minute and
//! counted in `keel_gateway_rate_limit_unavailable_total`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keel_ratelimit::{Decision, Quota, RateLimiter};
use keel_telemetry::metrics::KeptCounter;
use serde::Deserialize;
use uuid::Uuid;

/// The decisions of every class, by class and outcome (`allowed`, `denied`).
const DECISIONS: &str = "keel_gateway_rate_limit_decisions_total";

/// The class a route without `rate_limit_class` belongs to.
pub(crate) const DEFAULT_CLASS: &str = "default";

/// The `gateway.rate_limits` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Whether requests are rate limited at all.
    pub enabled: bool,
    /// Quotas by class name; `default` applies to routes that name no class and must exist.
    pub classes: BTreeMap<String, RateClassConfig>,
}

/// The quotas of one class: what one user and what one client address may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateClassConfig {
    /// Requests one authenticated user may make, e.g. `100/minute`.
    pub per_user: Quota,
    /// Requests one client address may make, e.g. `1000/minute`.
    pub per_ip: Quota,
}

impl Default for RateLimitConfig {
    /// On, with the `default` class at 100 a minute per user and 1000 a minute per address.
    fn default() -> Self {
        let minute = std::time::Duration::from_secs(60);
        let class = RateClassConfig {
            per_user: Quota::new(100, minute).expect("100 a minute is a valid quota"),
            per_ip: Quota::new(1_000, minute).expect("1000 a minute is a valid quota"),
        };
        Self {
            enabled: true,
            classes: BTreeMap::from([(DEFAULT_CLASS.to_owned(), class)]),
        }
    }
}

impl RateLimitConfig {
    /// Whether a class of this name is configured.
    pub(crate) fn has_class(&self, name: &str) -> bool {
        self.classes.contains_key(name)
    }

    /// The problems of the section, each naming its key.
    pub(crate) fn problems(&self) -> Vec<String> {
        if self.has_class(DEFAULT_CLASS) {
            Vec::new()
        } else {
            vec![format!(
                "gateway.rate_limits.classes must define the `{DEFAULT_CLASS}` class"
            )]
        }
    }
}

/// One class, resolved for a route: its name (the metric label and key part), quotas and the
/// series of its decisions (`keel_gateway_rate_limit_decisions_total{class, outcome}`).
#[derive(Debug)]
pub(crate) struct RateClass {
    name: Box<str>,
    quotas: RateClassConfig,
    allowed: KeptCounter,
    denied: KeptCounter,
}

impl RateClass {
    fn new(name: &str, quotas: RateClassConfig) -> Self {
        let counter = |outcome| KeptCounter::new(DECISIONS, &[("class", name), ("outcome", outcome)]);
        Self {
            name: name.into(),
            quotas,
            allowed: counter("allowed"),
            denied: counter("denied"),
        }
    }
}

/// The limiter and the classes every route shares.
pub(crate) struct RateLimits {
    limiter: Option<Arc<dyn RateLimiter>>,
    classes: BTreeMap<String, Arc<RateClass>>,
    /// When the last "counters unavailable" warning was logged (seconds since the Unix epoch).
    last_warning: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("enabled", &self.limiter.is_some())
            .field("classes", &self.classes.keys())
            .finish()
    }
}

impl RateLimits {
    /// Limits as `config` says, counted by `limiter`; `None` turns them off.
    pub(crate) fn new(config: &RateLimitConfig, limiter: Option<Arc<dyn RateLimiter>>) -> Self {
        let classes = config
            .classes
            .iter()
            .map(|(name, quotas)| (name.clone(), Arc::new(RateClass::new(name, *quotas))))
            .collect();
        Self {
            limiter: limiter.filter(|_| config.enabled),
            classes,
            last_warning: AtomicU64::new(0),
        }
    }

    /// Limits that never limit.
    #[cfg(test)]
    fn off() -> Self {
        Self::new(&RateLimitConfig::default(), None)
    }

    /// The class called `name`, or `default`.
    pub(crate) fn class(&self, name: Option<&str>) -> Option<Arc<RateClass>> {
        self.classes
            .get(name.unwrap_or(DEFAULT_CLASS))
            .or_else(|| self.classes.get(DEFAULT_CLASS))
            .cloned()
    }

    /// The `default` class, which requests no route takes count against (`None` only for a
    /// section that failed validation).
    pub(crate) fn default_class(&self) -> Option<&RateClass> {
        self.classes.get(DEFAULT_CLASS).map(Arc::as_ref)
    }

    /// Counts one request of `class` against the budget of its client address `ip`: the
    /// decision, or `None` when limits are off, the address is unknown or the counters cannot be
    /// reached. Every request a route takes is counted here first, before any other check, so
    /// that refused requests draw on the budget too ([`Self::settle`] records the outcome).
    pub(crate) async fn check_address(&self, class: &RateClass, ip: Option<IpAddr>) -> Option<Decision> {
        let limiter = self.limiter.as_ref()?;
        let ip = ip?;
        let mut key = String::with_capacity(class.name.len() + 20);
        key.push_str("ip:");
        key.push_str(&class.name);
        key.push(':');
        crate::client_address::push_ip(&mut key, ip);
        self.counted(decide(limiter.as_ref(), &key, class.quotas.per_ip).await)
    }

    /// Counts the request against its authenticated `user`'s budget too (none for an anonymous
    /// one): the stricter of that decision and the address's, `by_address`.
    pub(crate) async fn check_user(
        &self,
        class: &RateClass,
        user: Option<Uuid>,
        by_address: Option<Decision>,
    ) -> Option<Decision> {
        let by_user = match (self.limiter.as_ref(), user) {
            (Some(limiter), Some(user)) => {
                let mut key = String::with_capacity(class.name.len() + 42);
                key.push_str("user:");
                key.push_str(&class.name);
                key.push(':');
                key.push_str(user.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()));
                self.counted(decide(limiter.as_ref(), &key, class.quotas.per_user).await)
            }
            _ => None,
        };
        match (by_address, by_user) {
            (Some(address), Some(user)) => Some(address.stricter(user)),
            (one, other) => one.or(other),
        }
    }

    /// Records, once per request of `class`, what the limits decided for it (nothing when they
    /// decided nothing) in `keel_gateway_rate_limit_decisions_total`.
    pub(crate) fn settle(&self, class: &RateClass, decision: Option<&Decision>) {
        match decision {
            Some(decision) if decision.allowed => class.allowed.increment(),
            Some(_) => class.denied.increment(),
            None => {}
        }
    }

    /// The decision, or `None` after logging (at most once a minute) and counting a failure.
    fn counted(&self, outcome: Result<Decision, keel_ratelimit::RateLimitError>) -> Option<Decision> {
        match outcome {
            Ok(decision) => Some(decision),
            Err(error) => {
                metrics::counter!("keel_gateway_rate_limit_unavailable_total").increment(1);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |elapsed| elapsed.as_secs());
                let last = self.last_warning.load(Ordering::Relaxed);
                if now >= last + 60
                    && self
                        .last_warning
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(%error, "rate-limit counters unavailable; requests pass unlimited");
                }
                None
            }
        }
    }
}

/// `limiter`'s decision for `key` under `quota`: at once when it can answer at once, without the
/// boxed future of an asynchronous check.
async fn decide(
    limiter: &dyn RateLimiter,
    key: &str,
    quota: Quota,
) -> Result<Decision, keel_ratelimit::RateLimitError> {
    match limiter.check_now(key, quota) {
        Some(decision) => decision,
        None => limiter.check(key, quota).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_ratelimit::InMemoryRateLimiter;

    /// The checks of one request as the proxy makes them (`Proxy::admit`): the address, then,
    /// unless that refused, the user; recorded once.
    async fn check(
        limits: &RateLimits,
        class: &RateClass,
        ip: Option<IpAddr>,
        user: Option<Uuid>,
    ) -> Option<Decision> {
        let by_address = limits.check_address(class, ip).await;
        let decision = match by_address {
            Some(refused) if !refused.allowed => Some(refused),
            _ => limits.check_user(class, user, by_address).await,
        };
        limits.settle(class, decision.as_ref());
        decision
    }

    fn limits(per_user: &str, per_ip: &str) -> RateLimits {
        let class = RateClassConfig {
            per_user: per_user.parse().expect("quota"),
            per_ip: per_ip.parse().expect("quota"),
        };
        let config = RateLimitConfig {
            enabled: true,
            classes: BTreeMap::from([(DEFAULT_CLASS.to_owned(), class)]),
        };
        RateLimits::new(&config, Some(Arc::new(InMemoryRateLimiter::default())))
    }

    #[tokio::test]
    async fn the_stricter_of_the_user_and_address_budgets_decides() {
        let limits = limits("2/minute", "5/minute");
        let class = limits.class(None).expect("default class");
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        let user = Some(Uuid::now_v7());
        let first = check(&limits, &class, ip, user).await.expect("decision");
        assert!(first.allowed);
        assert_eq!(
            (first.limit, first.remaining),
            (2, 1),
            "the user budget is the smaller"
        );
        assert!(check(&limits, &class, ip, user).await.is_some_and(|d| d.allowed));
        let third = check(&limits, &class, ip, user).await.expect("decision");
        assert!(!third.allowed, "the user's budget is spent");
        // Every request arriving from the address counted against it (3 of 5), the refused one too.
        let anonymous = check(&limits, &class, ip, None).await.expect("decision");
        assert!(anonymous.allowed);
        assert_eq!((anonymous.limit, anonymous.remaining), (5, 1));
    }

    #[tokio::test]
    async fn disabled_limits_decide_nothing_and_unknown_classes_fall_back_to_default() {
        let off = RateLimits::off();
        let class = off.class(Some("no-such-class")).expect("falls back to default");
        assert_eq!(&*class.name, DEFAULT_CLASS);
        assert!(
            check(&off, &class, Some(IpAddr::from([127, 0, 0, 1])), None)
                .await
                .is_none()
        );
    }

    #[tokio::test]
    async fn decisions_are_counted_per_class_and_outcome() {
        let handle = keel_telemetry::metrics::install();
        let class = RateClassConfig {
            per_user: "100/minute".parse().expect("quota"),
            per_ip: "2/minute".parse().expect("quota"),
        };
        let config = RateLimitConfig {
            enabled: true,
            classes: BTreeMap::from([
                (DEFAULT_CLASS.to_owned(), class),
                ("counted-class".to_owned(), class),
            ]),
        };
        let limits = RateLimits::new(&config, Some(Arc::new(InMemoryRateLimiter::default())));
        let counted = limits.class(Some("counted-class")).expect("class");
        let ip = Some(IpAddr::from([10, 0, 0, 9]));
        for _ in 0..3 {
            check(&limits, &counted, ip, None).await;
        }
        let rendered = handle.render();
        for expected in [
            r#"keel_gateway_rate_limit_decisions_total{class="counted-class",outcome="allowed"} 2"#,
            r#"keel_gateway_rate_limit_decisions_total{class="counted-class",outcome="denied"} 1"#,
        ] {
            assert!(rendered.contains(expected), "{expected} in {rendered}");
        }
    }

    #[test]
    fn a_section_without_the_default_class_is_refused() {
        let config = RateLimitConfig {
            enabled: true,
            classes: BTreeMap::new(),
        };
        assert!(config.problems()[0].contains("`default` class"));
    }
}
