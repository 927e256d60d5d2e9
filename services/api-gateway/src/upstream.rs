//! Upstreams: a routed service's instances, kept current by the registry, and the choice of one
//! per request.
//!
//! Why a module of its own: it is the gateway's side of `keel-balancer`. Each upstream holds a
//! [`Balancer`] over the [`InstanceWatch`](keel_registry::InstanceWatch) of its service and the
//! instances' `http` port: the registry pushes every change of the healthy set into the watch, the
//! balancer reads the current set on every pick and never asks the registry, so an instance is
//! gone from the very next pick once the registry has published its deregistration. Instances are
//! chosen by power of two choices on requests in flight, and one the proxy could not connect to is
//! ejected for a while (see the balancer crate).

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use keel_balancer::{Balancer, BalancerConfig, Pick};
use keel_registry::{ServiceInstance, ServiceRegistry};

use crate::GatewayError;

/// One routed service: the balancer over its healthy instances' `http` ports.
#[derive(Debug)]
pub(crate) struct Upstream {
    balancer: Balancer<Target>,
}

/// What the proxy sends to one instance with, made once per instance rather than per request.
#[derive(Debug)]
pub(crate) struct Target {
    /// Its `host:port`, shared by the answers that return a connection to its pool.
    pub(crate) authority: Arc<str>,
    /// The `Host` field for it; `None` when `host:port` is not a valid field value (requests to
    /// it then fail as a bad target).
    pub(crate) host: Option<HeaderValue>,
}

impl Target {
    fn new(authority: &str) -> Self {
        Self {
            authority: Arc::from(authority),
            host: HeaderValue::from_str(authority).ok(),
        }
    }
}

impl Upstream {
    /// The service's registry name.
    pub(crate) fn service(&self) -> &str {
        self.balancer.service()
    }

    /// Whether a healthy instance with an `http` port exists now.
    pub(crate) fn is_available(&self) -> bool {
        self.balancer.instance_count() > 0
    }

    /// The instance the next request goes to, counted as in flight until the [`Pick`] is dropped;
    /// `None` when no healthy instance has an `http` port. Report a refused connection with
    /// [`Pick::failed`] and a response with [`Pick::succeeded`].
    pub(crate) fn pick_instance(&self) -> Option<Pick<Target>> {
        self.balancer.pick()
    }
}

/// Makes the upstream of each routed service, watching each service once however many routes
/// name it.
pub(crate) struct Watcher<'a> {
    registry: &'a dyn ServiceRegistry,
    balancing: &'a BalancerConfig,
    known: HashMap<String, Arc<Upstream>>,
}

impl<'a> Watcher<'a> {
    /// A watcher asking `registry`, balancing as `balancing` says (`gateway.balancing`).
    #[cfg(test)]
    pub(crate) fn new(registry: &'a dyn ServiceRegistry, balancing: &'a BalancerConfig) -> Self {
        Self::with_known(registry, balancing, HashMap::new())
    }

    /// A watcher that starts from the upstreams an earlier one made (`known`, by service), so a
    /// reload keeps each service's watch and what its balancer learnt.
    pub(crate) fn with_known(
        registry: &'a dyn ServiceRegistry,
        balancing: &'a BalancerConfig,
        known: HashMap<String, Arc<Upstream>>,
    ) -> Self {
        Self {
            registry,
            balancing,
            known,
        }
    }

    /// The upstreams made so far, by service.
    pub(crate) fn into_known(self) -> HashMap<String, Arc<Upstream>> {
        self.known
    }

    /// The upstream of `service`, watched on first request.
    pub(crate) async fn upstream(&mut self, service: &str) -> Result<Arc<Upstream>, GatewayError> {
        if let Some(known) = self.known.get(service) {
            return Ok(Arc::clone(known));
        }
        let instances = self
            .registry
            .watch(service)
            .await
            .map_err(|source| GatewayError::Registry {
                service: service.to_owned(),
                source,
            })?;
        let balancer = Balancer::builder(service, instances, ServiceInstance::HTTP)
            .config(self.balancing)
            .build_with(|_, authority| Some(Target::new(authority)));
        let upstream = Arc::new(Upstream { balancer });
        self.known.insert(service.to_owned(), Arc::clone(&upstream));
        Ok(upstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_registry::{RegistryError, StaticRegistry};

    /// The endpoint of a pick, released at once.
    fn endpoint(upstream: &Upstream) -> Option<String> {
        upstream.pick_instance().map(|pick| pick.endpoint().to_owned())
    }

    fn instance(id: &str, http: Option<u16>) -> ServiceInstance {
        let instance = ServiceInstance::new("identity", id, "127.0.0.1").with_port("grpc", 9000);
        match http {
            Some(port) => instance.with_port("http", port),
            None => instance,
        }
    }

    #[tokio::test]
    async fn picks_rotate_over_instances_with_an_http_port_and_follow_the_registry()
    -> Result<(), RegistryError> {
        let registry = StaticRegistry::new();
        let balancing = BalancerConfig::default();
        let mut watcher = Watcher::new(&registry, &balancing);
        let watched = |e: GatewayError| RegistryError::Unavailable {
            backend: "test",
            reason: e.to_string(),
        };
        let upstream = watcher.upstream("identity").await.map_err(watched)?;
        let again = watcher.upstream("identity").await.map_err(watched)?;
        assert!(Arc::ptr_eq(&upstream, &again), "one watch per service");
        assert_eq!(endpoint(&upstream), None);
        assert!(!upstream.is_available());

        let _ = registry.register(instance("a", Some(8001))).await?;
        let _ = registry.register(instance("grpc-only", None)).await?;
        let _ = registry.register(instance("b", Some(8002))).await?;
        assert!(upstream.is_available());
        let picks: Vec<_> = (0..6).filter_map(|_| endpoint(&upstream)).collect();
        assert_eq!(picks.len(), 6);
        assert!(
            picks
                .iter()
                .all(|p| p == "127.0.0.1:8001" || p == "127.0.0.1:8002"),
            "{picks:?}"
        );
        assert!(picks.iter().any(|p| p == "127.0.0.1:8002"), "{picks:?}");

        registry.deregister("identity", "b").await?;
        assert!((0..6).all(|_| endpoint(&upstream).as_deref() == Some("127.0.0.1:8001")));
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_reported_unreachable_is_skipped_until_its_ejection_ends() -> Result<(), RegistryError>
    {
        let registry = StaticRegistry::new();
        let _ = registry.register(instance("a", Some(8001))).await?;
        let _ = registry.register(instance("b", Some(8002))).await?;
        let balancing = BalancerConfig::default();
        let mut watcher = Watcher::new(&registry, &balancing);
        let upstream = watcher
            .upstream("identity")
            .await
            .map_err(|e| RegistryError::Unavailable {
                backend: "test",
                reason: e.to_string(),
            })?;
        let refused = upstream.pick_instance().map(|pick| {
            pick.failed();
            pick.endpoint().to_owned()
        });
        assert!(refused.is_some());
        assert!((0..10).all(|_| endpoint(&upstream) != refused));
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        assert!((0..2).any(|_| endpoint(&upstream) == refused));
        Ok(())
    }
}
