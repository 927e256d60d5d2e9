//! Upstreams: a routed service's instances, kept current by the registry, and the choice of one
//! per request.
//!
//! Why a module of its own: load balancing is the part issue 4 replaces with the registry crate's
//! shared balancers (power of two choices, passive ejection); keeping it behind [`Upstream::pick`]
//! makes that a local change.
//!
//! Each upstream holds the [`InstanceWatch`] of its service. The registry pushes every change of
//! the healthy set into it, so a request reads the current set (an `Arc` clone under a short read
//! lock) and never asks the registry; an instance is gone from the very next pick once the registry
//! has published its deregistration.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use keel_registry::{InstanceWatch, ServiceInstance, ServiceRegistry};

use crate::GatewayError;

/// One routed service: its healthy instances and the round-robin position.
#[derive(Debug)]
pub(crate) struct Upstream {
    service: Arc<str>,
    instances: InstanceWatch,
    next: AtomicUsize,
}

impl Upstream {
    /// The service's registry name.
    pub(crate) fn service(&self) -> &str {
        &self.service
    }

    /// Whether a healthy instance with an `http` port exists now.
    pub(crate) fn is_available(&self) -> bool {
        self.instances
            .borrow()
            .iter()
            .any(|instance| instance.port(ServiceInstance::HTTP).is_some())
    }

    /// The `host:port` of the next instance in round-robin order that has an `http` port; `None`
    /// when no healthy instance has one.
    pub(crate) fn pick(&self) -> Option<String> {
        let instances = Arc::clone(&self.instances.borrow());
        let count = instances.len();
        if count == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count).find_map(|offset| instances[(start + offset) % count].endpoint(ServiceInstance::HTTP))
    }
}

/// Makes the upstream of each routed service, watching each service once however many routes
/// name it.
pub(crate) struct Watcher<'a> {
    registry: &'a dyn ServiceRegistry,
    known: HashMap<String, Arc<Upstream>>,
}

impl<'a> Watcher<'a> {
    /// A watcher asking `registry`.
    pub(crate) fn new(registry: &'a dyn ServiceRegistry) -> Self {
        Self {
            registry,
            known: HashMap::new(),
        }
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
        let upstream = Arc::new(Upstream {
            service: service.into(),
            instances,
            next: AtomicUsize::new(0),
        });
        self.known.insert(service.to_owned(), Arc::clone(&upstream));
        Ok(upstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_registry::{RegistryError, StaticRegistry};

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
        let mut watcher = Watcher::new(&registry);
        let watched = |e: GatewayError| RegistryError::Unavailable {
            backend: "test",
            reason: e.to_string(),
        };
        let upstream = watcher.upstream("identity").await.map_err(watched)?;
        let again = watcher.upstream("identity").await.map_err(watched)?;
        assert!(Arc::ptr_eq(&upstream, &again), "one watch per service");
        assert_eq!(upstream.pick(), None);
        assert!(!upstream.is_available());

        let _ = registry.register(instance("a", Some(8001))).await?;
        let _ = registry.register(instance("grpc-only", None)).await?;
        let _ = registry.register(instance("b", Some(8002))).await?;
        assert!(upstream.is_available());
        let picks: Vec<_> = (0..6).filter_map(|_| upstream.pick()).collect();
        assert_eq!(picks.len(), 6);
        assert!(
            picks
                .iter()
                .all(|p| p == "127.0.0.1:8001" || p == "127.0.0.1:8002"),
            "{picks:?}"
        );
        assert!(picks.iter().any(|p| p == "127.0.0.1:8002"), "{picks:?}");

        registry.deregister("identity", "b").await?;
        assert!((0..6).all(|_| upstream.pick().as_deref() == Some("127.0.0.1:8001")));
        Ok(())
    }
}
