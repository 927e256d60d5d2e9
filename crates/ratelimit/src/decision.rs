//! The answer to one check, and the response headers it becomes.
//!
//! Both backends compute in microseconds and build a [`Decision`] the same way
//! ([`Decision::from_micros`]), so the headers a client sees do not depend on the backend.
//! Header seconds are rounded up: a client that waits the advertised time is never refused for
//! having come back a fraction of a second early.

use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

/// `X-RateLimit-Limit`: requests allowed per period.
const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: requests still allowed right now.
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-RateLimit-Reset`: seconds until the budget is full again.
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Whether a request may proceed, and what to tell the client about its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The request may proceed (and was counted).
    pub allowed: bool,
    /// Requests allowed per period (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests the key may still make immediately (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// Time until the budget is full again if the key makes no more requests
    /// (`X-RateLimit-Reset`, in seconds rounded up).
    pub reset_after: Duration,
    /// For a denied request, the time until one more request would be allowed (`Retry-After`);
    /// `None` when allowed.
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// The decision both backends report, from their microsecond figures.
    pub(crate) fn from_micros(
        allowed: bool,
        limit: u32,
        remaining: u64,
        reset_after_us: u64,
        retry_after_us: u64,
    ) -> Self {
        Self {
            allowed,
            limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX).min(limit),
            reset_after: Duration::from_micros(reset_after_us),
            retry_after: (!allowed).then(|| Duration::from_micros(retry_after_us)),
        }
    }

    /// `X-RateLimit-Reset`: whole seconds until the budget is full again, rounded up.
    pub fn reset_after_secs(&self) -> u64 {
        ceil_secs(self.reset_after)
    }

    /// `Retry-After` for a denied request: whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|wait| ceil_secs(wait).max(1))
    }

    /// Sets `X-RateLimit-Limit`, `-Remaining` and `-Reset` (replacing earlier values), and
    /// `Retry-After` when denied. An allowed decision leaves an existing `Retry-After` alone: on a
    /// proxied answer it is the upstream's (a 503 or a login throttle's 429), which the client
    /// needs. Combine two decisions with [`Decision::stricter`] before applying.
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        self.for_each_field(|name, value| {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.insert(name.clone(), value);
            }
        });
    }

    /// The header fields [`Decision::apply_headers`] sets, each given to `field` with its value's
    /// bytes, for code that writes a response head itself (no `HeaderValue` is built).
    pub fn for_each_field(&self, mut field: impl FnMut(&HeaderName, &[u8])) {
        let mut digits = itoa::Buffer::new();
        field(&LIMIT, digits.format(self.limit).as_bytes());
        field(&REMAINING, digits.format(self.remaining).as_bytes());
        field(&RESET, digits.format(self.reset_after_secs()).as_bytes());
        if let Some(secs) = self.retry_after_secs() {
            field(&RETRY_AFTER, digits.format(secs).as_bytes());
        }
    }

    /// Whether [`Decision::apply_headers`] replaces a field called `name` (compared without
    /// regard to case): a head written field by field leaves such a field out.
    pub fn replaces(&self, name: &[u8]) -> bool {
        let is = |known: &HeaderName| name.eq_ignore_ascii_case(known.as_str().as_bytes());
        is(&LIMIT) || is(&REMAINING) || is(&RESET) || (self.retry_after.is_some() && is(&RETRY_AFTER))
    }

    /// Of two decisions for one request (e.g. per user and per IP), the one to act on and report:
    /// a denial over an allowance (the longer wait among denials), else the fewer remaining.
    pub fn stricter(self, other: Decision) -> Decision {
        match (self.allowed, other.allowed) {
            (true, false) => other,
            (false, true) => self,
            (false, false) if other.retry_after > self.retry_after => other,
            (true, true) if other.remaining < self.remaining => other,
            _ => self,
        }
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(headers: &HeaderMap, name: &str) -> Option<String> {
        headers.get(name).map(|value| value.to_str().unwrap().to_owned())
    }

    #[test]
    fn the_fields_written_one_by_one_are_the_headers_applied_and_those_they_replace() {
        for decision in [
            Decision::from_micros(true, 100, 99, 600_001, 0),
            Decision::from_micros(false, 5, 0, 2_000_000, 1_500_000),
        ] {
            let mut applied = HeaderMap::new();
            decision.apply_headers(&mut applied);
            let mut written = HeaderMap::new();
            decision.for_each_field(|name, value| {
                assert!(
                    decision.replaces(name.as_str().to_uppercase().as_bytes()),
                    "{name}"
                );
                written.append(name.clone(), HeaderValue::from_bytes(value).unwrap());
            });
            assert_eq!(written, applied);
        }
        let allowed = Decision::from_micros(true, 100, 99, 600_001, 0);
        assert!(
            !allowed.replaces(b"retry-after"),
            "an allowance keeps the upstream's Retry-After"
        );
        assert!(!allowed.replaces(b"x-ratelimit"));
    }

    #[test]
    fn an_allowed_decision_sets_the_three_ratelimit_headers_and_no_retry_after() {
        let decision = Decision::from_micros(true, 100, 99, 600_001, 0);
        let mut headers = HeaderMap::new();
        decision.apply_headers(&mut headers);
        assert_eq!(header(&headers, "x-ratelimit-limit").as_deref(), Some("100"));
        assert_eq!(header(&headers, "x-ratelimit-remaining").as_deref(), Some("99"));
        assert_eq!(header(&headers, "x-ratelimit-reset").as_deref(), Some("1"));
        assert_eq!(header(&headers, "retry-after"), None);
    }

    #[test]
    fn an_allowed_decision_keeps_the_retry_after_an_upstream_sent() {
        let decision = Decision::from_micros(true, 100, 99, 600_001, 0);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from(5u64));
        decision.apply_headers(&mut headers);
        assert_eq!(header(&headers, "retry-after").as_deref(), Some("5"));
        assert_eq!(header(&headers, "x-ratelimit-remaining").as_deref(), Some("99"));
    }

    #[test]
    fn a_denied_decision_rounds_retry_after_up_to_at_least_one_second() {
        let decision = Decision::from_micros(false, 10, 0, 60_000_000, 200_000);
        let mut headers = HeaderMap::new();
        decision.apply_headers(&mut headers);
        assert_eq!(header(&headers, "x-ratelimit-remaining").as_deref(), Some("0"));
        assert_eq!(header(&headers, "x-ratelimit-reset").as_deref(), Some("60"));
        assert_eq!(header(&headers, "retry-after").as_deref(), Some("1"));
        let later = Decision::from_micros(false, 10, 0, 60_000_000, 6_000_001);
        assert_eq!(later.retry_after_secs(), Some(7));
    }

    #[test]
    fn the_stricter_decision_prefers_denial_then_the_longer_wait_then_fewer_remaining() {
        let roomy = Decision::from_micros(true, 1000, 900, 1, 0);
        let tight = Decision::from_micros(true, 100, 3, 1, 0);
        let short_wait = Decision::from_micros(false, 100, 0, 1, 1_000_000);
        let long_wait = Decision::from_micros(false, 100, 0, 1, 9_000_000);
        assert_eq!(roomy.stricter(tight), tight);
        assert_eq!(tight.stricter(roomy), tight);
        assert_eq!(roomy.stricter(short_wait), short_wait);
        assert_eq!(short_wait.stricter(roomy), short_wait);
        assert_eq!(short_wait.stricter(long_wait), long_wait);
        assert_eq!(long_wait.stricter(short_wait), long_wait);
    }
}
