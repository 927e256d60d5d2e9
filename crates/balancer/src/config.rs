//! How a balancer chooses and when it ejects, as a caller's configuration writes it.
//!
//! Why a module of its own: these are the only knobs operators see, so they are plain serde data
//! (milliseconds, snake_case names, unknown fields refused) that a gateway or client configuration
//! section can embed as it is, separate from the machinery that applies them.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the next instance is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each instance in turn, in the registry's order (`round_robin`). Even when every request
    /// costs the same; blind to an instance that is slow or busy.
    RoundRobin,
    /// Two distinct instances at random, the one with fewer requests in flight wins
    /// (`power_of_two_choices`, the default). Steers away from a slow or busy instance at the cost
    /// of two random numbers, and avoids the herding of "always the least loaded". Ties go to the
    /// one picked less recently, so an idle caller alternates evenly.
    #[default]
    PowerOfTwoChoices,
}

/// The balancer's settings: strategy and passive health (ejection of failing instances).
///
/// Every field has a default, so an empty section is valid; build one in code with struct update
/// syntax (`BalancerConfig { strategy: Strategy::RoundRobin, ..BalancerConfig::default() }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalancerConfig {
    /// How the next instance is chosen (`power_of_two_choices`).
    pub strategy: Strategy,
    /// Consecutive failures that eject an instance (1: the callers report only failures that
    /// mean "not reachable", such as a refused connection). A success resets the count. Must not
    /// be 0.
    pub failures_to_eject: NonZeroU32,
    /// How long a first ejection lasts, in milliseconds (10 000). Each further ejection with no
    /// success in between lasts twice as long as the one before. 0 turns ejection off.
    pub ejection_ms: u64,
    /// The longest an ejection lasts, in milliseconds (60 000); a value below `ejection_ms` is
    /// read as `ejection_ms`.
    pub max_ejection_ms: u64,
}

impl Default for BalancerConfig {
    /// The values documented on each field.
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            failures_to_eject: NonZeroU32::MIN,
            ejection_ms: 10_000,
            max_ejection_ms: 60_000,
        }
    }
}

/// The ejection rule of a [`BalancerConfig`], in the form the balancer applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ejection {
    /// Consecutive failures that eject.
    pub(crate) failures: u32,
    /// The first ejection's length; zero when ejection is off.
    pub(crate) base: Duration,
    /// The longest ejection, at least `base`.
    pub(crate) max: Duration,
}

impl Ejection {
    /// The rule `config` describes.
    pub(crate) fn from_config(config: &BalancerConfig) -> Self {
        let base = Duration::from_millis(config.ejection_ms);
        Self {
            failures: config.failures_to_eject.get(),
            base,
            max: Duration::from_millis(config.max_ejection_ms).max(base),
        }
    }

    /// Whether failures eject at all.
    pub(crate) fn is_on(&self) -> bool {
        !self.base.is_zero()
    }

    /// The length of an instance's ejection after `earlier` ejections with no success between:
    /// the base doubled `earlier` times, capped.
    pub(crate) fn duration(&self, earlier: u32) -> Duration {
        let factor = 1_u32.checked_shl(earlier).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_are_snake_case_and_power_of_two_choices_is_the_default() {
        let config: BalancerConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(config, BalancerConfig::default());
        assert_eq!(config.strategy, Strategy::PowerOfTwoChoices);
        let config: BalancerConfig = serde_json::from_str(r#"{"strategy": "round_robin"}"#).unwrap();
        assert_eq!(config.strategy, Strategy::RoundRobin);
        let written = serde_json::to_value(BalancerConfig::default()).unwrap();
        assert_eq!(written["strategy"], "power_of_two_choices");
    }

    #[test]
    fn zero_failures_to_eject_and_unknown_fields_are_refused() {
        assert!(serde_json::from_str::<BalancerConfig>(r#"{"failures_to_eject": 0}"#).is_err());
        assert!(serde_json::from_str::<BalancerConfig>(r#"{"ejection": 5}"#).is_err());
    }

    #[test]
    fn ejections_double_from_the_base_up_to_the_cap() {
        let rule = Ejection::from_config(&BalancerConfig::default());
        let seconds: Vec<u64> = (0..6).map(|n| rule.duration(n).as_secs()).collect();
        assert_eq!(seconds, [10, 20, 40, 60, 60, 60]);
        assert_eq!(rule.duration(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn a_cap_below_the_base_is_the_base_and_zero_turns_ejection_off() {
        let low_cap = BalancerConfig {
            ejection_ms: 5_000,
            max_ejection_ms: 1_000,
            ..BalancerConfig::default()
        };
        let rule = Ejection::from_config(&low_cap);
        assert_eq!(rule.duration(3), Duration::from_secs(5));
        assert!(rule.is_on());
        let off = BalancerConfig {
            ejection_ms: 0,
            ..BalancerConfig::default()
        };
        assert!(!Ejection::from_config(&off).is_on());
    }
}
