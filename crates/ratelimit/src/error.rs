//! The one error type of this crate, and when each variant happens.
//!
//! [`RateLimitError::InvalidQuota`] and [`RateLimitError::InvalidConfig`] come from building things
//! (parsing a quota from configuration, opening a Redis URL) and belong at start-up.
//! [`RateLimitError::Unavailable`] is the only run-time failure: the store could not answer in
//! time. Callers decide what an undecided request gets; the gateway fails open (see the crate doc).

/// Why a quota could not be built or a decision could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitError {
    /// A quota that cannot be enforced: zero requests, a period under a millisecond, more requests
    /// than microseconds in the period, or a string that does not parse (`"100/minute"`).
    #[error("invalid rate-limit quota: {0}")]
    InvalidQuota(String),
    /// A backend configuration that cannot work, e.g. a Redis URL that does not parse.
    #[error("invalid rate-limit configuration: {0}")]
    InvalidConfig(String),
    /// The shared store (Redis) did not answer in time, refused the connection, or answered with
    /// an error or an unexpected reply. The request was neither counted nor refused.
    #[error("rate-limit store unavailable: {0}")]
    Unavailable(String),
}
