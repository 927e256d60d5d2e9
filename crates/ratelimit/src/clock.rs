//! The time source of the in-memory backends, injectable so tests control time.
//!
//! Only differences between two readings matter (GCRA compares arrival times), so the clock is
//! monotonic and counted from an arbitrary origin. The default, [`TokioClock`], reads Tokio's clock:
//! under `#[tokio::test(start_paused = true)]` tests move it with `tokio::time::advance`, and in
//! production it is the monotonic system clock.

use std::time::Duration;

/// A monotonic time source.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Time elapsed since this clock's fixed origin; never decreases.
    fn now(&self) -> Duration;
}

/// Tokio's monotonic clock (`tokio::time::Instant`), so a paused test runtime controls it.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock reading in whole microseconds, the unit both backends compute in.
pub(crate) fn micros(clock: &dyn Clock) -> u64 {
    u64::try_from(clock.now().as_micros()).unwrap_or(u64::MAX)
}
