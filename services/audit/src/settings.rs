//! The `audit` configuration section.
//!
//! Why this module exists: the few knobs an operator may turn on the audit service are read and
//! checked in one place, at start-up, so a bad value stops the process with the key's name.

use serde::Deserialize;

use crate::AuditError;

/// The largest verification page: the verifier holds one page in memory at a time, so this bounds
/// its memory.
const MAX_VERIFY_PAGE: u64 = 10_000;
/// The longest interval between background verifications: a year (an instant that far ahead is
/// always representable; `u64::MAX` seconds is not).
const MAX_VERIFY_INTERVAL_SECS: u64 = 365 * 86_400;

/// Settings of the audit service (`audit` in `config/default.yaml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditSettings {
    /// Records read per page while verifying the hash chain (1..=10000).
    pub(crate) verify_page_size: u64,
    /// Seconds between background verifications of the whole chain; 0 turns them off.
    pub(crate) verify_interval_secs: u64,
}

impl AuditSettings {
    /// Reads and checks the `audit` section.
    pub(crate) fn load(config: &keel_config::Config) -> Result<Self, AuditError> {
        let settings: Self = config.section("audit")?;
        if !(1..=MAX_VERIFY_PAGE).contains(&settings.verify_page_size) {
            return Err(AuditError::Settings(format!(
                "audit.verify_page_size must be between 1 and {MAX_VERIFY_PAGE}, not {}",
                settings.verify_page_size
            )));
        }
        if settings.verify_interval_secs > MAX_VERIFY_INTERVAL_SECS {
            return Err(AuditError::Settings(format!(
                "audit.verify_interval_secs must be at most {MAX_VERIFY_INTERVAL_SECS} (a year; 0 turns verification off), not {}",
                settings.verify_interval_secs
            )));
        }
        Ok(settings)
    }
}
