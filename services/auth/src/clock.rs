//! Where the service reads the time: a port, so tests can move it (key rotation, expiry) without
//! waiting days.

use chrono::{DateTime, Utc};

/// The current time as the service sees it.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
