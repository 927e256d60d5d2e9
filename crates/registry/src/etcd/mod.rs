//! The `etcd` backend: every instance is a key under a lease that its process keeps alive.
//!
//! Layout: `<prefix><service>/<id>` → the [`ServiceInstance`] as JSON. Registering grants a lease
//! of `registry.etcd.lease_ttl_secs`, writes the key under it and starts a keeper task renewing it
//! every third of its TTL; a process that dies stops renewing, so etcd deletes its keys when the
//! lease expires, and watchers see the instance go. Deregistering stops the keeper, revokes the
//! lease and deletes the key. Discovering reads the service's prefix; watching reads it once and
//! then follows an etcd watch from the next revision (see [`follow`]).

mod api;
mod follow;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use keel_config::RegistryConfig;
use tokio::task::AbortHandle;

use self::api::{EtcdApi, Lease};
use self::wire::KeyValue;
use crate::remote::{Tasks, Watches, in_order, lock};
use crate::{InstanceWatch, Registration, RegistryError, ServiceInstance, ServiceRegistry};

/// Service discovery in etcd v3, through its JSON gateway (plain `http://` or `https://` with
/// the system's roots; client certificates and etcd users are not supported).
///
/// Dropping the registry stops its keepers and watches: its instances then expire after their
/// lease TTL, as if the process had died. Deregister them first on a graceful shutdown.
pub struct EtcdRegistry {
    api: EtcdApi,
    prefix: String,
    lease_ttl_secs: u64,
    /// The keeper of each instance registered through this registry, by (service, id).
    keepers: Mutex<HashMap<(String, String), Keeper>>,
    /// Serialises registrations and deregistrations, so that two of one instance at once cannot
    /// leave its key under a lease the other revokes.
    writing: tokio::sync::Mutex<()>,
    tasks: Tasks,
    watches: Watches,
}

/// A registration's keeper task and its current lease (renewed under a new id if the old one
/// expired, e.g. after etcd was unreachable for longer than the TTL).
struct Keeper {
    lease: Arc<AtomicI64>,
    task: AbortHandle,
}

impl std::fmt::Debug for EtcdRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdRegistry")
            .field("prefix", &self.prefix)
            .field("lease_ttl_secs", &self.lease_ttl_secs)
            .field("registered", &lock(&self.keepers).len())
            .field("watched", &crate::remote::followed(&self.watches))
            .finish_non_exhaustive()
    }
}

impl EtcdRegistry {
    /// A registry over the etcd members `config.etcd.endpoints`, with `config.etcd`'s prefix and
    /// lease TTL. Connects lazily: an unreachable etcd fails the first call, not this one.
    pub fn from_config(config: &RegistryConfig) -> Result<Self, RegistryError> {
        let etcd = &config.etcd;
        if !etcd.prefix.ends_with('/') || etcd.prefix.len() < 2 || etcd.lease_ttl_secs == 0 {
            return Err(RegistryError::InvalidConfig {
                key: "registry.etcd".to_owned(),
                reason: "needs a prefix ending with `/` and a positive lease_ttl_secs".to_owned(),
            });
        }
        Ok(Self {
            api: EtcdApi::new(
                &etcd.endpoints,
                Duration::from_millis(config.request_timeout_ms.max(1)),
            )?,
            prefix: etcd.prefix.clone(),
            lease_ttl_secs: etcd.lease_ttl_secs,
            keepers: Mutex::new(HashMap::new()),
            writing: tokio::sync::Mutex::new(()),
            tasks: Tasks::default(),
            watches: Watches::new(),
        })
    }

    fn service_prefix(&self, service: &str) -> String {
        format!("{}{service}/", self.prefix)
    }
}

/// Grants a lease and writes `key` = `value` under it; revokes the lease if the write fails.
async fn write(api: &EtcdApi, ttl_secs: u64, key: &[u8], value: &[u8]) -> Result<Lease, RegistryError> {
    let lease = api.grant(ttl_secs).await?;
    if let Err(error) = api.put(key, value, lease.id).await {
        let _ = api.revoke(lease.id).await;
        return Err(error);
    }
    Ok(lease)
}

#[async_trait]
impl ServiceRegistry for EtcdRegistry {
    fn name(&self) -> &'static str {
        "etcd"
    }

    async fn register(&self, instance: ServiceInstance) -> Result<Registration, RegistryError> {
        let instance = instance.checked()?;
        let key = format!("{}{}", self.service_prefix(&instance.service), instance.id).into_bytes();
        let value =
            serde_json::to_vec(&instance).expect("an instance (strings, numbers, string maps) serialises");
        let _writing = self.writing.lock().await;
        let lease = write(&self.api, self.lease_ttl_secs, &key, &value).await?;
        let current = Arc::new(AtomicI64::new(lease.id));
        let keeper = KeepAlive {
            api: self.api.clone(),
            ttl_secs: self.lease_ttl_secs,
            lease: Arc::clone(&current),
            key,
            value,
            service: instance.service.clone(),
            instance: instance.id.clone(),
        };
        let task = self.tasks.spawn(keeper.run(lease.ttl));
        let registration = Registration {
            service: instance.service.clone(),
            instance_id: instance.id.clone(),
        };
        let previous = lock(&self.keepers).insert(
            (instance.service.clone(), instance.id.clone()),
            Keeper { lease: current, task },
        );
        if let Some(previous) = previous {
            // The key now lives under the new lease; the old one holds nothing and can go.
            previous.task.abort();
            let _ = self.api.revoke(previous.lease.load(Ordering::Relaxed)).await;
        }
        tracing::info!(
            service = %instance.service,
            instance = %instance.id,
            host = %instance.host,
            lease = lease.id,
            ttl_secs = lease.ttl.as_secs(),
            "instance registered in etcd"
        );
        Ok(registration)
    }

    async fn deregister(&self, service: &str, instance_id: &str) -> Result<(), RegistryError> {
        let _writing = self.writing.lock().await;
        let keeper = lock(&self.keepers).remove(&(service.to_owned(), instance_id.to_owned()));
        if let Some(keeper) = keeper {
            keeper.task.abort();
            self.api.revoke(keeper.lease.load(Ordering::Relaxed)).await?;
        }
        // Also covers an instance registered by another process, or one whose lease is unknown.
        let key = format!("{}{instance_id}", self.service_prefix(service));
        self.api.delete(key.as_bytes()).await?;
        tracing::info!(service, instance = instance_id, "instance deregistered from etcd");
        Ok(())
    }

    async fn discover(&self, service: &str) -> Result<Vec<ServiceInstance>, RegistryError> {
        let (kvs, _) = self
            .api
            .range_prefix(self.service_prefix(service).as_bytes())
            .await?;
        Ok(in_order(decode_all(service, kvs).into_values().collect()))
    }

    async fn watch(&self, service: &str) -> Result<InstanceWatch, RegistryError> {
        if let Some(watch) = self.watches.subscribe(service) {
            return Ok(watch);
        }
        let prefix = self.service_prefix(service).into_bytes();
        let (kvs, revision) = self.api.range_prefix(&prefix).await?;
        let state = decode_all(service, kvs);
        let initial = state.values().cloned().collect();
        let follower = follow::Follower {
            api: self.api.clone(),
            service: service.to_owned(),
            prefix,
        };
        Ok(self.watches.start(service, initial, move |sender| {
            follower.run(sender, state, revision)
        }))
    }
}

/// The instances of `service` among `kvs`, by key. A value that is not a valid instance of that
/// service (written by something else, or under a longer service name sharing the prefix) is
/// skipped, with a warning when it is malformed.
fn decode_all(service: &str, kvs: Vec<KeyValue>) -> BTreeMap<Vec<u8>, ServiceInstance> {
    kvs.into_iter()
        .filter_map(|kv| decode(service, &kv.value).map(|instance| (kv.key, instance)))
        .collect()
}

fn decode(service: &str, value: &[u8]) -> Option<ServiceInstance> {
    match serde_json::from_slice::<ServiceInstance>(value) {
        Ok(instance) if instance.service != service => None,
        Ok(instance) => match instance.problem() {
            None => Some(instance),
            Some(problem) => {
                tracing::warn!(service, instance = %instance.id, %problem, "invalid instance in etcd skipped");
                None
            }
        },
        Err(error) => {
            tracing::warn!(service, %error, "malformed instance in etcd skipped");
            None
        }
    }
}

/// What a keeper task needs to renew a lease, and to write the instance again under a new lease
/// when the old one expired anyway.
struct KeepAlive {
    api: EtcdApi,
    ttl_secs: u64,
    lease: Arc<AtomicI64>,
    key: Vec<u8>,
    value: Vec<u8>,
    service: String,
    instance: String,
}

impl KeepAlive {
    /// Renews the lease every third of its TTL, sooner after a failure, until aborted.
    async fn run(self, ttl: Duration) {
        let (service, instance) = (&self.service, &self.instance);
        let mut pause = ttl / 3;
        loop {
            tokio::time::sleep(pause).await;
            let lease = self.lease.load(Ordering::Relaxed);
            match self.api.keep_alive(lease).await {
                Ok(Some(ttl)) => pause = ttl / 3,
                Ok(None) => {
                    tracing::warn!(%service, %instance, lease, "etcd lease expired; registering again");
                    match write(&self.api, self.ttl_secs, &self.key, &self.value).await {
                        Ok(renewed) => {
                            self.lease.store(renewed.id, Ordering::Relaxed);
                            pause = renewed.ttl / 3;
                        }
                        Err(error) => {
                            tracing::warn!(%service, %instance, %error, "cannot register again in etcd");
                            pause = ttl / 6;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%service, %instance, lease, %error, "cannot renew etcd lease");
                    pause = ttl / 6;
                }
            }
        }
    }
}
