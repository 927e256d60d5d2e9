//! The balancer of one service: the registry's current set, turned into members, and the pick.
//!
//! Why a module of its own: it owns the one piece of shared mutable state outside the members,
//! the member list built from the registry's latest set, and the rule for keeping it current: every
//! pick compares the set it was built from with the watch's current one (a pointer comparison) and
//! rebuilds on a difference, keeping the record of every instance that stayed and dropping the
//! others'. So no pick ever uses a set older than the one the registry published before it, and no
//! background task or polling interval is involved.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use keel_registry::{InstanceWatch, Instances, ServiceInstance};
use tokio::time::Instant;

use crate::choose;
use crate::config::{BalancerConfig, Ejection, Strategy};
use crate::member::{LazyNow, Member};
use crate::pick::{EJECTIONS, Pick};
use crate::random::{Random, ThreadRandom};

/// What a caller makes for a newly seen instance from it and its `host:port`; `None` leaves the
/// instance out.
type Connect<T> = dyn Fn(&ServiceInstance, &str) -> Option<T> + Send + Sync;

/// Chooses an instance of one service for each request or call. See the [crate documentation](crate).
///
/// `T` is what the caller keeps per instance (a gRPC channel, say), made by the function given to
/// [`BalancerBuilder::build_with`] once per instance and reused while the instance stays; `()` for
/// a balancer that only hands out addresses.
pub struct Balancer<T = ()> {
    watch: InstanceWatch,
    port: Box<str>,
    connect: Box<Connect<T>>,
    random: Arc<dyn Random>,
    shared: Arc<Shared>,
    current: RwLock<Arc<Snapshot<T>>>,
}

/// What a balancer's picks share with it, for reporting outcomes.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The service's name, for logs and metrics.
    pub(crate) service: Box<str>,
    /// The ejection rule.
    pub(crate) ejection: Ejection,
    /// The zero of the members' ejection times.
    pub(crate) epoch: Instant,
    strategy: Strategy,
    /// Picks made so far: the round-robin cursor and the members' `last_pick`.
    picks: AtomicU64,
}

/// The members made from one set of the registry.
struct Snapshot<T> {
    source: Instances,
    members: Vec<Arc<Member<T>>>,
}

/// Settings of a [`Balancer`] being built; from [`Balancer::builder`].
pub struct BalancerBuilder {
    service: Box<str>,
    watch: InstanceWatch,
    port: Box<str>,
    config: BalancerConfig,
    random: Arc<dyn Random>,
}

impl Balancer {
    /// Starts a balancer of `service` over `watch` (from
    /// [`ServiceRegistry::watch`](keel_registry::ServiceRegistry::watch)) that hands out each
    /// instance's `port` (e.g. [`ServiceInstance::HTTP`]); instances without that port are never
    /// picked. Default configuration and randomness until changed.
    pub fn builder(service: &str, watch: InstanceWatch, port: &str) -> BalancerBuilder {
        BalancerBuilder {
            service: service.into(),
            watch,
            port: port.into(),
            config: BalancerConfig::default(),
            random: Arc::new(ThreadRandom),
        }
    }
}

impl BalancerBuilder {
    /// Uses `config` (strategy and ejection).
    #[must_use]
    pub fn config(mut self, config: &BalancerConfig) -> Self {
        self.config = config.clone();
        self
    }

    /// Draws power-of-two-choices candidates from `random` instead of a thread-local generator.
    #[must_use]
    pub fn random(mut self, random: Arc<dyn Random>) -> Self {
        self.random = random;
        self
    }

    /// A balancer that hands out addresses only.
    pub fn build(self) -> Balancer {
        self.build_with(|_, _| Some(()))
    }

    /// A balancer whose picks carry what `connect` makes from each instance and its `host:port`
    /// (called on the picking thread when the set changes, once per new instance; keep it cheap
    /// and non-blocking, e.g. a lazily connecting channel). An instance it returns `None` for is
    /// left out, and asked about again at the next change of the set.
    pub fn build_with<T, F>(self, connect: F) -> Balancer<T>
    where
        F: Fn(&ServiceInstance, &str) -> Option<T> + Send + Sync + 'static,
    {
        describe();
        let source = Arc::clone(&self.watch.borrow());
        let shared = Arc::new(Shared {
            service: self.service,
            ejection: Ejection::from_config(&self.config),
            epoch: Instant::now(),
            strategy: self.config.strategy,
            picks: AtomicU64::new(0),
        });
        let mut balancer = Balancer {
            watch: self.watch,
            port: self.port,
            connect: Box::new(connect),
            random: self.random,
            shared,
            current: RwLock::new(Arc::new(Snapshot {
                source: Arc::clone(&source),
                members: Vec::new(),
            })),
        };
        let first = balancer.rebuild(&[], source);
        balancer.current = RwLock::new(Arc::new(first));
        balancer
    }
}

impl<T> Balancer<T> {
    /// The instance the next request goes to, claimed until the returned [`Pick`] is dropped;
    /// `None` when the registry lists no instance with the balancer's port. Cheap: two short read
    /// locks (the watch and the member list), a few atomics and, for power of two choices, two
    /// random numbers; the member list is rebuilt only by the first pick after the set changed.
    pub fn pick(&self) -> Option<Pick<T>> {
        // Locks are taken in one order everywhere: the member list's, then the watch's.
        let cached = self.current.read().unwrap_or_else(PoisonError::into_inner);
        // The cache keeps its source alive, so an equal pointer is the same set, never a new one
        // allocated where a freed one was.
        if Arc::ptr_eq(&cached.source, &self.watch.borrow()) {
            return self.pick_from(&cached.members);
        }
        drop(cached);
        self.pick_from(&self.refresh().members)
    }

    /// Picks one of `members` (the current set's).
    fn pick_from(&self, members: &[Arc<Member<T>>]) -> Option<Pick<T>> {
        let sequence = self.shared.picks.fetch_add(1, Ordering::Relaxed);
        let mut now = LazyNow::new(self.shared.epoch);
        let index = match self.shared.strategy {
            Strategy::PowerOfTwoChoices => choose::power_of_two(members, &*self.random, &mut now),
            Strategy::RoundRobin => choose::round_robin(members, sequence, &mut now),
        }?;
        let member = Arc::clone(&members[index]);
        Some(Pick::new(member, Arc::clone(&self.shared), sequence))
    }

    /// How many instances of the registry's current set can be picked (those with the port, and
    /// that the connect function accepted), ejected ones included.
    pub fn instance_count(&self) -> usize {
        self.snapshot().members.len()
    }

    /// The service this balancer picks instances of.
    pub fn service(&self) -> &str {
        &self.shared.service
    }

    /// The members of the registry's current set.
    fn snapshot(&self) -> Arc<Snapshot<T>> {
        let cached = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
        if Arc::ptr_eq(&cached.source, &self.watch.borrow()) {
            return cached;
        }
        self.refresh()
    }

    /// Rebuilds the members from the watch's latest set unless another pick just did.
    fn refresh(&self) -> Arc<Snapshot<T>> {
        // A panic in the connect function leaves the old, consistent snapshot: carry on with it.
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let latest = Arc::clone(&self.watch.borrow());
        if !Arc::ptr_eq(&current.source, &latest) {
            *current = Arc::new(self.rebuild(&current.members, latest));
        }
        Arc::clone(&current)
    }

    /// Members for `instances`: those of `old` whose id and address are unchanged keep their
    /// record (in flight, failures, ejection) and payload; the others are new.
    fn rebuild(&self, old: &[Arc<Member<T>>], instances: Instances) -> Snapshot<T> {
        let old: HashMap<&str, &Arc<Member<T>>> = old.iter().map(|member| (&*member.id, member)).collect();
        let mut members = Vec::with_capacity(instances.len());
        for instance in instances.iter() {
            let Some(endpoint) = instance.endpoint(&self.port) else {
                continue;
            };
            match old.get(instance.id.as_str()) {
                Some(kept) if *kept.endpoint == *endpoint => members.push(Arc::clone(kept)),
                _ => {
                    if let Some(payload) = (self.connect)(instance, &endpoint) {
                        members.push(Arc::new(Member::new(&instance.id, endpoint, payload)));
                    }
                }
            }
        }
        tracing::debug!(
            service = %self.shared.service,
            port = %self.port,
            instances = members.len(),
            "balancer set changed"
        );
        Snapshot {
            source: instances,
            members,
        }
    }
}

impl<T> fmt::Debug for Balancer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Balancer")
            .field("service", &self.shared.service)
            .field("port", &self.port)
            .field("strategy", &self.shared.strategy)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for BalancerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalancerBuilder")
            .field("service", &self.service)
            .field("port", &self.port)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Registers the help text of the balancer's metric.
pub(crate) fn describe() {
    metrics::describe_counter!(
        EJECTIONS,
        "Instances ejected by a client-side balancer after consecutive failures, by service."
    );
}
