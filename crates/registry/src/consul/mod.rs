//! The `consul` backend: instances are services of the local Consul agent, each with a check.
//!
//! Registering puts the service with an HTTP check of its health endpoint (Consul calls it every
//! `check_interval_secs`) or, for an instance without one, a TTL check that a task of this process
//! passes every third of its TTL. An instance whose check fails leaves `?passing` answers at once,
//! and Consul removes it after `deregister_after_secs` critical. Discovering asks
//! `/v1/health/service/<name>?passing`; watching repeats that as a blocking query (`index` +
//! `wait`), so a change reaches watchers as soon as Consul knows it, without polling.

mod api;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use keel_config::RegistryConfig;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use self::api::{CheckSettings, ConsulApi, HealthEntry, ServiceRegistration};
use crate::remote::{Backoff, Tasks, Watches, in_order, lock, publish};
use crate::{InstanceWatch, Instances, Registration, RegistryError, ServiceInstance, ServiceRegistry};

/// Service discovery through the local Consul agent's HTTP API (`registry.consul`), with the ACL
/// token in `X-Consul-Token` when one is set.
///
/// Dropping the registry stops its TTL-check tasks and watches; its instances with TTL checks then
/// turn critical after one TTL, as if the process had died. Deregister them first on a graceful
/// shutdown.
pub struct ConsulRegistry {
    api: ConsulApi,
    checks: CheckSettings,
    wait: Duration,
    /// The task passing the TTL check of each instance registered with one, by (service, id).
    passers: Mutex<HashMap<(String, String), AbortHandle>>,
    tasks: Tasks,
    watches: Watches,
}

impl std::fmt::Debug for ConsulRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulRegistry")
            .field("checks", &self.checks)
            .field("heartbeats", &lock(&self.passers).len())
            .field("watched", &crate::remote::followed(&self.watches))
            .finish_non_exhaustive()
    }
}

impl ConsulRegistry {
    /// A registry using the agent at `config.consul.address` with `config.consul`'s checks.
    /// Connects lazily: an unreachable agent fails the first call, not this one.
    pub fn from_config(config: &RegistryConfig) -> Result<Self, RegistryError> {
        let consul = &config.consul;
        let timeout = Duration::from_millis(config.request_timeout_ms.max(1));
        Ok(Self {
            api: ConsulApi::new(config, timeout)?,
            checks: CheckSettings {
                interval: Duration::from_secs(consul.check_interval_secs.max(1)),
                timeout: Duration::from_secs(consul.check_timeout_secs.max(1)),
                deregister_after: Duration::from_secs(consul.deregister_after_secs.max(60)),
            },
            wait: Duration::from_secs(consul.wait_secs.clamp(1, 600)),
            passers: Mutex::new(HashMap::new()),
            tasks: Tasks::default(),
            watches: Watches::new(),
        })
    }
}

#[async_trait]
impl ServiceRegistry for ConsulRegistry {
    fn name(&self) -> &'static str {
        "consul"
    }

    async fn register(&self, instance: ServiceInstance) -> Result<Registration, RegistryError> {
        let problem = instance.problem().or_else(|| {
            let reserved = instance.metadata.keys().find(|k| k.starts_with(api::RESERVED))?;
            Some(format!(
                "metadata key `{reserved}` uses the prefix `{}` Keel reserves in Consul",
                api::RESERVED
            ))
        });
        if let Some(reason) = problem {
            return Err(RegistryError::InvalidInstance {
                service: instance.service,
                id: instance.id,
                reason,
            });
        }
        let service = api::registration(&instance, self.checks);
        self.api.register(&service).await?;
        let key = (instance.service.clone(), instance.id.clone());
        let passer = service.check.ttl.is_some().then(|| {
            let heartbeat = Heartbeat {
                api: self.api.clone(),
                service,
                every: self.checks.interval / 3,
            };
            self.tasks.spawn(heartbeat.run())
        });
        let previous = {
            let mut passers = lock(&self.passers);
            match passer {
                Some(passer) => passers.insert(key.clone(), passer),
                None => passers.remove(&key),
            }
        };
        if let Some(previous) = previous {
            previous.abort();
        }
        tracing::info!(service = %key.0, instance = %key.1, host = %instance.host, "instance registered in Consul");
        Ok(Registration {
            service: key.0,
            instance_id: key.1,
        })
    }

    async fn deregister(&self, service: &str, instance_id: &str) -> Result<(), RegistryError> {
        if let Some(passer) = lock(&self.passers).remove(&(service.to_owned(), instance_id.to_owned())) {
            passer.abort();
        }
        self.api.deregister(&api::consul_id(service, instance_id)).await?;
        tracing::info!(
            service,
            instance = instance_id,
            "instance deregistered from Consul"
        );
        Ok(())
    }

    async fn discover(&self, service: &str) -> Result<Vec<ServiceInstance>, RegistryError> {
        let (entries, _) = self.api.healthy(service, None).await?;
        Ok(in_order(decode_all(entries)))
    }

    async fn watch(&self, service: &str) -> Result<InstanceWatch, RegistryError> {
        if let Some(watch) = self.watches.subscribe(service) {
            return Ok(watch);
        }
        let (entries, index) = self.api.healthy(service, None).await?;
        let follower = Follower {
            api: self.api.clone(),
            service: service.to_owned(),
            wait: self.wait,
        };
        Ok(self.watches.start(service, decode_all(entries), move |sender| {
            follower.run(sender, index)
        }))
    }
}

fn decode_all(entries: Vec<HealthEntry>) -> Vec<ServiceInstance> {
    entries.into_iter().filter_map(HealthEntry::instance).collect()
}

/// Keeps an instance's TTL check passing; registers the service again when the agent lost it.
struct Heartbeat {
    api: ConsulApi,
    service: ServiceRegistration,
    every: Duration,
}

impl Heartbeat {
    async fn run(self) {
        let (service, instance) = (&self.service.name, &self.service.id);
        let mut ticker = tokio::time::interval(self.every.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // registered passing: the first pass is due one period later
        loop {
            ticker.tick().await;
            match self.api.pass(&self.service.check.check_id).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(%service, %instance, "Consul lost the instance; registering again");
                    if let Err(error) = self.api.register(&self.service).await {
                        tracing::warn!(%service, %instance, %error, "cannot register again in Consul");
                    }
                }
                Err(error) => tracing::warn!(%service, %instance, %error, "cannot pass the Consul TTL check"),
            }
        }
    }
}

/// The task feeding one service's watch channel with blocking queries.
struct Follower {
    api: ConsulApi,
    service: String,
    wait: Duration,
}

impl Follower {
    /// Runs until the registry is dropped (which aborts it), from the answer at `index`.
    async fn run(self, sender: watch::Sender<Instances>, mut index: u64) {
        let service = &self.service;
        let mut backoff = Backoff::new();
        loop {
            match self.api.healthy(service, Some((index, self.wait))).await {
                Ok((entries, next)) => {
                    backoff.reset();
                    // Consul's rules for blocking queries: an index that went backwards (a new
                    // leader, a restored snapshot) means starting over; one must never be 0.
                    index = if next < index { 0 } else { next.max(1) };
                    publish(&sender, decode_all(entries));
                }
                Err(error) => {
                    tracing::warn!(%service, %error, "Consul blocking query failed; asking again");
                    index = 0;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
}
