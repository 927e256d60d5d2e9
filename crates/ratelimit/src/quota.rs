//! How many requests a key may make per period, parsed once from configuration.
//!
//! A [`Quota`] is validated when it is built (parse, don't validate), so a check never meets an
//! unenforceable one. Configuration writes quotas as `"<limit>/<period>"`: `"100/minute"`,
//! `"1000/min"`, `"10/second"`, `"5000/hour"`, `"20/day"`, or with a count, `"100/30s"`,
//! `"100/5m"`, `"3/500ms"`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::RateLimitError;

/// The shortest period a quota may have.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// A budget of `limit` requests per `period`, refilled smoothly (one request every
/// `period / limit`), with bursts of up to `limit` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Quota {
    limit: u32,
    period: Duration,
    /// `period / limit` in microseconds (at least 1): the GCRA emission interval.
    interval_us: u64,
}

impl Quota {
    /// A quota of `limit` requests per `period`.
    ///
    /// Fails for a zero limit, a period under 1 ms, or more requests than microseconds in the
    /// period (both backends count in microseconds).
    pub fn new(limit: u32, period: Duration) -> Result<Self, RateLimitError> {
        if limit == 0 {
            return Err(RateLimitError::InvalidQuota(
                "the limit must be at least 1".into(),
            ));
        }
        if period < MIN_PERIOD {
            return Err(RateLimitError::InvalidQuota(format!(
                "the period must be at least {MIN_PERIOD:?}, not {period:?}"
            )));
        }
        let period_us = u64::try_from(period.as_micros())
            .map_err(|_| RateLimitError::InvalidQuota(format!("period {period:?} is too long")))?;
        let interval_us = period_us / u64::from(limit);
        if interval_us == 0 {
            return Err(RateLimitError::InvalidQuota(format!(
                "{limit} requests per {period:?} is more than one per microsecond"
            )));
        }
        Ok(Self {
            limit,
            period,
            interval_us,
        })
    }

    /// Requests allowed per period (also the largest burst).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The period the limit applies to.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The GCRA emission interval: one request's share of the period, in microseconds.
    pub(crate) fn interval_us(&self) -> u64 {
        self.interval_us
    }

    /// The window a full budget spans, in microseconds: `limit` emission intervals (the period,
    /// less the sub-microsecond remainder of dividing it by the limit).
    pub(crate) fn window_us(&self) -> u64 {
        self.interval_us * u64::from(self.limit)
    }
}

impl FromStr for Quota {
    type Err = RateLimitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| {
            RateLimitError::InvalidQuota(format!(
                "{text:?}: {why} (expected e.g. \"100/minute\" or \"100/30s\")"
            ))
        };
        let (limit, period) = text.split_once('/').ok_or_else(|| invalid("no '/'"))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| invalid("the limit is not a whole number"))?;
        let period = parse_period(period.trim()).ok_or_else(|| invalid("unknown period"))?;
        Quota::new(limit, period)
    }
}

/// `minute`, `min`, `m`, `30s`, `500ms`, `2h`, `day`, … as a duration.
fn parse_period(text: &str) -> Option<Duration> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (count, unit) = text.split_at(digits);
    let count: u64 = if count.is_empty() { 1 } else { count.parse().ok()? };
    let unit = match unit.trim() {
        "ms" | "millisecond" | "milliseconds" => Duration::from_millis(1),
        "s" | "sec" | "second" | "seconds" => Duration::from_secs(1),
        "m" | "min" | "minute" | "minutes" => Duration::from_secs(60),
        "h" | "hour" | "hours" => Duration::from_secs(3600),
        "d" | "day" | "days" => Duration::from_secs(86_400),
        _ => return None,
    };
    unit.checked_mul(u32::try_from(count).ok()?)
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.period.as_millis();
        match millis {
            86_400_000 => write!(f, "{}/day", self.limit),
            3_600_000 => write!(f, "{}/hour", self.limit),
            60_000 => write!(f, "{}/minute", self.limit),
            1_000 => write!(f, "{}/second", self.limit),
            _ if millis.is_multiple_of(1000) => write!(f, "{}/{}s", self.limit, millis / 1000),
            _ => write!(f, "{}/{millis}ms", self.limit),
        }
    }
}

impl TryFrom<String> for Quota {
    type Error = RateLimitError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Quota> for String {
    fn from(quota: Quota) -> Self {
        quota.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> (u32, Duration) {
        let quota: Quota = text.parse().unwrap();
        (quota.limit(), quota.period())
    }

    #[test]
    fn config_strings_parse_to_limit_and_period() {
        assert_eq!(parsed("100/minute"), (100, Duration::from_secs(60)));
        assert_eq!(parsed("1000/min"), (1000, Duration::from_secs(60)));
        assert_eq!(parsed(" 10 / second "), (10, Duration::from_secs(1)));
        assert_eq!(parsed("5000/hour"), (5000, Duration::from_secs(3600)));
        assert_eq!(parsed("20/day"), (20, Duration::from_secs(86_400)));
        assert_eq!(parsed("100/30s"), (100, Duration::from_secs(30)));
        assert_eq!(parsed("100/5m"), (100, Duration::from_secs(300)));
        assert_eq!(parsed("3/500ms"), (3, Duration::from_millis(500)));
    }

    #[test]
    fn unenforceable_or_malformed_quotas_are_rejected() {
        for text in [
            "0/minute",
            "100",
            "x/minute",
            "100/fortnight",
            "-1/minute",
            "2000/ms",
            "1/0s",
        ] {
            assert!(
                matches!(text.parse::<Quota>(), Err(RateLimitError::InvalidQuota(_))),
                "{text} should be rejected"
            );
        }
    }

    #[test]
    fn display_round_trips_through_parse() {
        for text in ["100/minute", "7/second", "3/500ms", "100/30s", "20/day"] {
            let quota: Quota = text.parse().unwrap();
            assert_eq!(quota.to_string(), text);
            assert_eq!(quota.to_string().parse::<Quota>().unwrap(), quota);
        }
    }

    #[test]
    fn the_window_is_limit_whole_intervals() {
        let quota = Quota::new(7, Duration::from_secs(60)).unwrap();
        assert_eq!(quota.interval_us(), 8_571_428);
        assert_eq!(quota.window_us(), 7 * 8_571_428);
    }
}
