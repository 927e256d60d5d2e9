//! The gRPC implementations of the client traits.
//!
//! Why this module exists: every caller of a peer service needs the same behaviour around a call,
//! and getting it subtly different in each would make failures hard to reason about. Each client
//! here, for every call:
//!
//! 1. asks its circuit breaker (open → `Unavailable("<service>: circuit open …")` at once);
//! 2. picks a healthy instance of the service from the registry on the instance's `grpc` port, by
//!    power of two choices on calls in flight, skipping instances it recently could not reach
//!    (`keel-balancer`; none → `Unavailable("<service>: no healthy instance")` at once);
//! 3. sends the request with the deadline of [`CallPolicy::deadline`] (as `grpc-timeout`, and
//!    enforced locally), through [`keel_grpc::ClientLayer`] (request id, trace context, metrics);
//! 4. for idempotent methods only, retries a call that failed as unavailable on another pick,
//!    after an exponential, jittered pause, within the same deadline and at most
//!    [`CallPolicy::max_attempts`] times.
//!
//! Methods that must not run twice (login, refresh-token rotation, creations, deletions) are sent
//! once; their caller sees the `Unavailable` and decides.

mod audit;
mod auth;
mod authz;
mod breaker;
mod caller;
mod identity;
mod pool;

use std::sync::Arc;
use std::time::Duration;

use keel_config::GrpcConfig;
use keel_registry::ServiceRegistry;

pub use audit::GrpcAuditClient;
pub use auth::GrpcAuthClient;
pub use authz::GrpcAuthzClient;
pub use identity::GrpcIdentityClient;

use crate::{Page, ServiceClients};

/// How the gRPC clients call: deadline, retries and circuit breaker.
///
/// Build it with [`CallPolicy::from_config`] and adjust fields with struct update syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPolicy {
    /// Time a call may take, retries included (`grpc.default_deadline_ms`).
    pub deadline: Duration,
    /// Attempts of an idempotent call, the first included (3).
    pub max_attempts: u32,
    /// Pause before the first retry, doubled for each further one, before jitter (25 ms).
    pub backoff_base: Duration,
    /// Longest pause between attempts (500 ms).
    pub backoff_max: Duration,
    /// Consecutive transport failures that open a client's circuit (5).
    pub breaker_threshold: u32,
    /// Time an open circuit rejects calls before it lets a probe through (5 s).
    pub breaker_cool_down: Duration,
}

impl CallPolicy {
    /// The defaults, with the deadline from `grpc.default_deadline_ms`.
    pub fn from_config(grpc: &GrpcConfig) -> Self {
        Self {
            deadline: Duration::from_millis(grpc.default_deadline_ms),
            ..Self::default()
        }
    }
}

impl Default for CallPolicy {
    /// The values documented on each field, with a 5 s deadline.
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(5),
            max_attempts: 3,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(500),
            breaker_threshold: 5,
            breaker_cool_down: Duration::from_secs(5),
        }
    }
}

impl ServiceClients {
    /// gRPC clients of the four core services, found in `registry` under `identity`, `auth`,
    /// `authz` and `audit`, with [`CallPolicy::from_config`].
    ///
    /// Nothing is connected yet: each client subscribes to the registry on its first call, so
    /// services may start in any order. `authz` is not cached; wrap it in
    /// [`crate::CachedAuthzClient`] and keep that handle to invalidate it from events.
    pub fn connect(registry: Arc<dyn ServiceRegistry>, grpc: &GrpcConfig) -> Self {
        Self::connect_with(registry, grpc, CallPolicy::from_config(grpc))
    }

    /// As [`ServiceClients::connect`], with an explicit policy.
    pub fn connect_with(registry: Arc<dyn ServiceRegistry>, grpc: &GrpcConfig, policy: CallPolicy) -> Self {
        Self {
            identity: Arc::new(GrpcIdentityClient::new(
                Arc::clone(&registry),
                grpc,
                policy.clone(),
            )),
            auth: Arc::new(GrpcAuthClient::new(Arc::clone(&registry), grpc, policy.clone())),
            authz: Arc::new(GrpcAuthzClient::new(Arc::clone(&registry), grpc, policy.clone())),
            audit: Arc::new(GrpcAuditClient::new(registry, grpc, policy)),
        }
    }
}

/// A page from a message's items and its `next_cursor` (empty on the last page).
fn into_page<T, P>(items: Vec<P>, next_cursor: String) -> Result<Page<T>, crate::ServiceError>
where
    T: TryFrom<P, Error = crate::ServiceError>,
{
    Ok(Page {
        items: items.into_iter().map(T::try_from).collect::<Result<_, _>>()?,
        next_cursor: (!next_cursor.is_empty()).then_some(next_cursor),
    })
}

/// Items of a message, converted.
fn all<T, P>(items: Vec<P>) -> Result<Vec<T>, crate::ServiceError>
where
    T: TryFrom<P, Error = crate::ServiceError>,
{
    items.into_iter().map(T::try_from).collect()
}
