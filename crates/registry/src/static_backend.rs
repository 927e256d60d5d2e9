//! The `static` backend: instances from configuration plus those registered in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;
use keel_config::RegistryConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::address::parse_entry;
use crate::health::{HealthCheckSettings, Probe};
use crate::{InstanceWatch, Instances, Registration, RegistryError, ServiceInstance, ServiceRegistry};

/// The embedded default backend: no server, everything in this process's memory.
///
/// It starts with the instances listed in `registry.services` (see the address syntax in
/// [`StaticRegistry::from_config`]) and adds the instances registered through it, which in the
/// all-in-one process are the services the process itself starts. Registering an id that is
/// already known replaces that instance (a restarted service registers again under its id).
///
/// Every instance counts as healthy until a health check says otherwise; health checks run only
/// when started with [`StaticRegistry::spawn_health_checks`].
///
/// Cheap to clone; clones share the same instances. Watchers of a service are told of every change
/// to its healthy set, and only of real changes.
#[derive(Clone, Default)]
pub struct StaticRegistry {
    services: Arc<Services>,
}

type Services = Mutex<HashMap<String, Service>>;

/// One service's instances, in the order they became known, and the channel that publishes the
/// healthy ones.
struct Service {
    instances: Vec<Entry>,
    healthy: watch::Sender<Instances>,
}

struct Entry {
    instance: ServiceInstance,
    healthy: bool,
}

impl Service {
    fn new() -> Self {
        let none: Instances = Arc::new([]);
        Self {
            instances: Vec::new(),
            healthy: watch::Sender::new(none),
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.instances.iter().position(|entry| entry.instance.id == id)
    }

    /// Publishes the healthy instances if they differ from what watchers last saw.
    fn publish(&self) {
        let healthy: Instances = self
            .instances
            .iter()
            .filter(|e| e.healthy)
            .map(|e| e.instance.clone())
            .collect();
        self.healthy.send_if_modified(|current| {
            let changed = **current != *healthy;
            if changed {
                *current = healthy;
            }
            changed
        });
    }
}

impl std::fmt::Debug for StaticRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services = lock(&self.services);
        let mut counts: Vec<_> = services
            .iter()
            .map(|(name, s)| (name.clone(), s.instances.len()))
            .collect();
        counts.sort();
        f.debug_struct("StaticRegistry")
            .field("instances", &counts)
            .finish()
    }
}

impl StaticRegistry {
    /// An empty registry: only in-process registrations.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry holding the instances listed in `config.services` (the `kind` is the caller's
    /// concern; see [`crate::build_registry`]).
    ///
    /// Each entry is one instance: `host:port` for its `http` port, or named ports of one host,
    /// `http=10.0.0.5:8081,grpc=10.0.0.5:9081`; IPv6 hosts in brackets. Its id is the first
    /// `host:port` written. An entry that does not parse is an [`RegistryError::InvalidAddress`]
    /// naming the service and the entry; two entries with the same id are a
    /// [`RegistryError::DuplicateInstance`].
    pub fn from_config(config: &RegistryConfig) -> Result<Self, RegistryError> {
        let mut services = HashMap::new();
        for (name, entries) in &config.services {
            let mut service = Service::new();
            for (index, entry) in entries.iter().enumerate() {
                let instance = parse_entry(name, index, entry)?;
                if service.position(&instance.id).is_some() {
                    return Err(RegistryError::DuplicateInstance {
                        service: name.clone(),
                        id: instance.id,
                    });
                }
                service.instances.push(Entry {
                    instance,
                    healthy: true,
                });
            }
            service.publish();
            services.insert(name.clone(), service);
        }
        Ok(Self {
            services: Arc::new(Mutex::new(services)),
        })
    }

    /// Starts probing every instance (from configuration and registered alike) with `probe`, one
    /// round at once and then every `settings.interval`; the probes of a round run concurrently,
    /// each bounded by `settings.timeout`. An instance whose probe fails leaves the healthy set
    /// (and watchers are told) until a later probe succeeds.
    ///
    /// The task ends by itself once every clone of the registry is dropped; abort the returned
    /// handle to stop it sooner.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`tokio::spawn`] does.
    pub fn spawn_health_checks(
        &self,
        probe: Arc<dyn Probe>,
        settings: HealthCheckSettings,
    ) -> JoinHandle<()> {
        tokio::spawn(check_health(Arc::downgrade(&self.services), probe, settings))
    }
}

/// The map, even if a thread panicked while holding it: every change leaves it consistent.
fn lock(services: &Services) -> MutexGuard<'_, HashMap<String, Service>> {
    services.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl ServiceRegistry for StaticRegistry {
    fn name(&self) -> &'static str {
        "static"
    }

    async fn register(&self, instance: ServiceInstance) -> Result<Registration, RegistryError> {
        let instance = instance.checked()?;
        let registration = Registration {
            service: instance.service.clone(),
            instance_id: instance.id.clone(),
        };
        tracing::info!(
            service = %instance.service,
            instance = %instance.id,
            host = %instance.host,
            "instance registered"
        );
        let mut services = lock(&self.services);
        let service = services
            .entry(instance.service.clone())
            .or_insert_with(Service::new);
        let entry = Entry {
            instance,
            healthy: true,
        };
        match service.position(&entry.instance.id) {
            Some(index) => service.instances[index] = entry,
            None => service.instances.push(entry),
        }
        service.publish();
        Ok(registration)
    }

    async fn deregister(&self, service: &str, instance_id: &str) -> Result<(), RegistryError> {
        let mut services = lock(&self.services);
        if let Some(known) = services.get_mut(service)
            && let Some(index) = known.position(instance_id)
        {
            known.instances.remove(index);
            known.publish();
            tracing::info!(service, instance = instance_id, "instance deregistered");
        }
        Ok(())
    }

    async fn discover(&self, service: &str) -> Result<Vec<ServiceInstance>, RegistryError> {
        let services = lock(&self.services);
        Ok(services
            .get(service)
            .map(|known| known.healthy.borrow().to_vec())
            .unwrap_or_default())
    }

    async fn watch(&self, service: &str) -> Result<InstanceWatch, RegistryError> {
        let mut services = lock(&self.services);
        Ok(services
            .entry(service.to_owned())
            .or_insert_with(Service::new)
            .healthy
            .subscribe())
    }
}

/// The health-check task: probe everything, record the outcomes, wait, repeat, until the registry
/// is gone. The map is not locked, nor kept alive, while probes run.
async fn check_health(services: Weak<Services>, probe: Arc<dyn Probe>, settings: HealthCheckSettings) {
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(targets) = services.upgrade().map(|services| every_instance(&services)) else {
            return;
        };
        let probes = targets.into_iter().map(|instance| {
            let probe = Arc::clone(&probe);
            async move {
                let outcome = match tokio::time::timeout(settings.timeout, probe.probe(&instance)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(format!("no answer within {} ms", settings.timeout.as_millis())),
                };
                (instance, outcome)
            }
        });
        let outcomes = futures_util::future::join_all(probes).await;
        let Some(services) = services.upgrade() else {
            return;
        };
        record(&services, outcomes);
    }
}

fn every_instance(services: &Services) -> Vec<ServiceInstance> {
    lock(services)
        .values()
        .flat_map(|service| service.instances.iter().map(|e| e.instance.clone()))
        .collect()
}

/// Applies probe outcomes to the instances that are still registered as they were probed (one
/// replaced or removed meanwhile is left alone), then tells watchers.
fn record(services: &Services, outcomes: Vec<(ServiceInstance, Result<(), String>)>) {
    let mut services = lock(services);
    for (probed, outcome) in outcomes {
        let Some(service) = services.get_mut(&probed.service) else {
            continue;
        };
        let Some(entry) = service.instances.iter_mut().find(|e| e.instance == probed) else {
            continue;
        };
        let healthy = outcome.is_ok();
        if entry.healthy == healthy {
            continue;
        }
        entry.healthy = healthy;
        match outcome {
            Ok(()) => {
                tracing::info!(service = %probed.service, instance = %probed.id, "instance healthy")
            }
            Err(reason) => {
                let (service, instance) = (&probed.service, &probed.id);
                tracing::warn!(%service, %instance, %reason, "instance unhealthy");
            }
        }
        service.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(port: u16) -> ServiceInstance {
        ServiceInstance::new("audit", "audit-1", "127.0.0.1").with_port(ServiceInstance::HTTP, port)
    }

    #[tokio::test]
    async fn a_probe_outcome_for_an_instance_replaced_meanwhile_is_ignored() -> Result<(), RegistryError> {
        let registry = StaticRegistry::new();
        let _old = registry.register(instance(8084)).await?;
        let probed = every_instance(&registry.services);
        let _new = registry.register(instance(8094)).await?;
        record(
            &registry.services,
            probed
                .into_iter()
                .map(|i| (i, Err("refused".to_owned())))
                .collect(),
        );
        let found = registry.discover("audit").await?;
        assert_eq!(
            found.first().and_then(|i| i.port(ServiceInstance::HTTP)),
            Some(8094)
        );
        Ok(())
    }

    #[tokio::test]
    async fn debug_lists_services_with_their_instance_counts() -> Result<(), RegistryError> {
        let registry = StaticRegistry::new();
        let _registration = registry.register(instance(8084)).await?;
        assert_eq!(
            format!("{registry:?}"),
            r#"StaticRegistry { instances: [("audit", 1)] }"#
        );
        Ok(())
    }
}
