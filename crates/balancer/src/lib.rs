//! Client-side load balancing over a service's healthy instances.
//!
//! Why this crate exists: the gateway (towards the services' REST ports) and the gRPC clients of
//! `keel-clients` (towards their peers' gRPC ports) both choose, for every request, one instance of
//! a service from the registry's healthy set. They must choose the same way, react to the registry
//! at once, and stop sending to an instance that fails before the registry notices. One
//! [`Balancer`] per service and port does that for both.
//!
//! - **The set**: the balancer holds the service's [`InstanceWatch`](keel_registry::InstanceWatch)
//!   and reads the current set on *every* pick (a pointer comparison when nothing changed), so an
//!   instance the registry has removed is never picked again, not even by the pick right after the
//!   change. What the balancer knows of each instance (requests in flight, failures, ejection) is
//!   kept while the instance stays in the set with the same address and dropped when it leaves:
//!   an instance that comes back starts with a clean record.
//! - **The choice** ([`Strategy`]): power of two choices by default (two distinct random
//!   candidates, the one with fewer requests in flight wins, a tie goes to the one picked less
//!   recently), or round robin. The in-flight count is a guard: [`Balancer::pick`] returns a
//!   [`Pick`] that counts until it is dropped.
//! - **Passive health**: the caller reports an instance it could not reach with
//!   [`Pick::failed`] and an answer with [`Pick::succeeded`]. After
//!   [`BalancerConfig::failures_to_eject`] consecutive failures (1 by default) the instance is
//!   ejected for [`BalancerConfig::ejection_ms`] (10 s), twice as long at each further ejection
//!   without a success between, up to [`BalancerConfig::max_ejection_ms`] (60 s). Ejected
//!   instances are skipped while another one can be picked; when *every* instance is ejected the
//!   pick is made among all of them rather than failing (the registry still lists them as healthy,
//!   and refusing everything would turn a partial outage into a total one; the callers' deadlines
//!   and circuit breakers bound the cost). Ejections are counted in
//!   `keel_balancer_ejections_total{service}`.
//! - **Injectable time and randomness**: ejections run on [`tokio::time::Instant`], so a test with
//!   a paused clock controls them; candidates come from a [`Random`] the builder can replace.
//!
//! ```
//! use keel_balancer::{Balancer, BalancerConfig, Strategy};
//! use keel_registry::{ServiceInstance, ServiceRegistry, StaticRegistry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), keel_registry::RegistryError> {
//! let registry = StaticRegistry::new();
//! for (id, port) in [("audit-1", 9084), ("audit-2", 9085)] {
//!     let instance = ServiceInstance::new("audit", id, "127.0.0.1").with_port("grpc", port);
//!     let _ = registry.register(instance).await?;
//! }
//! let balancer = Balancer::builder("audit", registry.watch("audit").await?, ServiceInstance::GRPC)
//!     .config(&BalancerConfig { strategy: Strategy::RoundRobin, ..BalancerConfig::default() })
//!     .build();
//!
//! let pick = balancer.pick().expect("two instances are registered");
//! assert_eq!(pick.endpoint(), "127.0.0.1:9084");
//! pick.failed(); // could not connect: audit-1 is ejected for 10 s
//! drop(pick);
//! assert!((0..4).all(|_| balancer.pick().is_some_and(|p| p.instance_id() == "audit-2")));
//! # Ok(())
//! # }
//! ```

mod balancer;
mod choose;
mod config;
mod member;
mod pick;
mod random;

pub use balancer::{Balancer, BalancerBuilder};
pub use config::{BalancerConfig, Strategy};
pub use pick::Pick;
pub use random::{Random, ThreadRandom};

#[cfg(test)]
mod tests;
