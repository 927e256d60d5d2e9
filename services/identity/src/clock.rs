//! Where the service reads the time from.
//!
//! Token expiry is a rule about time, and tests must be able to move time forward to check it
//! without sleeping. Everything in this crate that stamps or compares a time asks a [`Clock`].

use chrono::{DateTime, SubsecRound, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock, truncated to microseconds: PostgreSQL keeps microseconds, so a time stored
/// and read back compares equal to the one written, on every backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}
