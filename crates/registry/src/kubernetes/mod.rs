//! The `kubernetes` backend: a Keel service's instances are the ready endpoints of the Kubernetes
//! Service of the same name (or the one `registry.kubernetes.services` maps it to).
//!
//! Kubernetes owns membership: a pod is an endpoint while its readiness probe passes, and leaves
//! the ready set when it fails or the pod goes, within the probe's `periodSeconds ×
//! failureThreshold`. So `register` and `deregister` only check the instance and succeed; nothing
//! is written. Discovering lists the Service's EndpointSlices; watching lists them once and then
//! follows a watch from that resource version, resuming after the server's periodic close and
//! listing again after an error (e.g. 410 Gone). Requests carry the pod's service-account token,
//! which needs `get`, `list` and `watch` on `endpointslices` (`discovery.k8s.io`) in the namespace.

mod api;
mod credentials;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use keel_config::RegistryConfig;
use tokio::sync::watch;

use self::api::{EndpointSlice, KubeApi, WatchEvent};
use self::credentials::Cluster;
pub use self::credentials::PodEnvironment;
use crate::remote::{Backoff, Watches, in_order, publish};
use crate::{InstanceWatch, Instances, Registration, RegistryError, ServiceInstance, ServiceRegistry};

/// Service discovery from Kubernetes EndpointSlices, read with the pod's service account.
pub struct KubernetesRegistry {
    api: KubeApi,
    /// Keel service name → Kubernetes Service name, where they differ.
    names: HashMap<String, String>,
    watches: Watches,
}

impl std::fmt::Debug for KubernetesRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesRegistry")
            .field("namespace", &self.api.namespace())
            .field("names", &self.names)
            .field("watched", &crate::remote::followed(&self.watches))
            .finish_non_exhaustive()
    }
}

impl KubernetesRegistry {
    /// A registry for this pod: `config.kubernetes`, with empty values filled in from the
    /// service account and the environment Kubernetes gives the pod.
    pub fn from_config(config: &RegistryConfig) -> Result<Self, RegistryError> {
        Self::new(config, &PodEnvironment::from_process())
    }

    /// A registry reading the cluster that `config.kubernetes` and `pod` describe. Fails with
    /// [`RegistryError::InvalidConfig`] when neither names an API server.
    pub fn new(config: &RegistryConfig, pod: &PodEnvironment) -> Result<Self, RegistryError> {
        let cluster = Cluster::resolve(config, pod)?;
        let timeout = Duration::from_millis(config.request_timeout_ms.max(1));
        Ok(Self {
            api: KubeApi::new(cluster, timeout)?,
            names: config
                .kubernetes
                .services
                .iter()
                .map(|(keel, kube)| (keel.clone(), kube.clone()))
                .collect(),
            watches: Watches::new(),
        })
    }

    fn kube_name<'a>(&'a self, service: &'a str) -> &'a str {
        self.names.get(service).map_or(service, String::as_str)
    }
}

#[async_trait]
impl ServiceRegistry for KubernetesRegistry {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    /// Checks the instance and succeeds without writing anything: the pod is an endpoint of its
    /// Service through Kubernetes, while its readiness probe passes.
    async fn register(&self, instance: ServiceInstance) -> Result<Registration, RegistryError> {
        let instance = instance.checked()?;
        tracing::debug!(service = %instance.service, instance = %instance.id, "Kubernetes owns membership; nothing to register");
        Ok(Registration {
            service: instance.service,
            instance_id: instance.id,
        })
    }

    /// Succeeds without writing anything: the pod leaves its Service when it stops being ready.
    async fn deregister(&self, _service: &str, _instance_id: &str) -> Result<(), RegistryError> {
        Ok(())
    }

    async fn discover(&self, service: &str) -> Result<Vec<ServiceInstance>, RegistryError> {
        let list = self.api.list(self.kube_name(service)).await?;
        Ok(in_order(api::instances(service, &list.items)))
    }

    async fn watch(&self, service: &str) -> Result<InstanceWatch, RegistryError> {
        if let Some(watch) = self.watches.subscribe(service) {
            return Ok(watch);
        }
        let kube_name = self.kube_name(service).to_owned();
        let list = self.api.list(&kube_name).await?;
        let initial = api::instances(service, &list.items);
        let follower = Follower {
            api: self.api.clone(),
            service: service.to_owned(),
            kube_name,
            slices: by_name(list.items),
            resource_version: list.metadata.resource_version,
        };
        Ok(self
            .watches
            .start(service, initial, move |sender| follower.run(sender)))
    }
}

fn by_name(items: Vec<EndpointSlice>) -> BTreeMap<String, EndpointSlice> {
    items
        .into_iter()
        .map(|slice| (slice.metadata.name.clone(), slice))
        .collect()
}

/// The task feeding one service's watch channel: the Service's slices by name, as of
/// `resource_version`.
struct Follower {
    api: KubeApi,
    service: String,
    kube_name: String,
    slices: BTreeMap<String, EndpointSlice>,
    resource_version: String,
}

impl Follower {
    /// Runs until the registry is dropped (which aborts it).
    async fn run(mut self, sender: watch::Sender<Instances>) {
        let mut backoff = Backoff::new();
        loop {
            let Err(reason) = self.follow(&sender).await else {
                backoff.reset();
                continue; // the server's periodic close: resume from the last version
            };
            let service = &self.service;
            tracing::warn!(%service, %reason, "Kubernetes watch interrupted; listing again");
            loop {
                tokio::time::sleep(backoff.next_delay()).await;
                match self.api.list(&self.kube_name).await {
                    Ok(list) => {
                        self.resource_version = list.metadata.resource_version;
                        self.slices = by_name(list.items);
                        publish(&sender, api::instances(service, self.slices.values()));
                        break;
                    }
                    Err(error) => tracing::warn!(%service, %error, "cannot list EndpointSlices"),
                }
            }
        }
    }

    /// Applies watch events until the stream ends: `Ok` when the server closed it after sending
    /// something (resume from the version reached), `Err` with the reason to list again.
    async fn follow(&mut self, sender: &watch::Sender<Instances>) -> Result<(), String> {
        let mut lines = self
            .api
            .watch(&self.kube_name, &self.resource_version)
            .await
            .map_err(|e| e.to_string())?;
        let mut heard = false;
        loop {
            let Some(event) = lines.next::<WatchEvent>().await? else {
                return if heard {
                    Ok(())
                } else {
                    Err("the watch closed at once".to_owned())
                };
            };
            heard = true;
            if event.kind == "ERROR" {
                return Err(format!("the watch failed: {}", event.object));
            }
            let slice: EndpointSlice = serde_json::from_value(event.object)
                .map_err(|e| format!("a {} event is not an EndpointSlice: {e}", event.kind))?;
            if !slice.metadata.resource_version.is_empty() {
                self.resource_version.clone_from(&slice.metadata.resource_version);
            }
            match event.kind.as_str() {
                "ADDED" | "MODIFIED" => {
                    self.slices.insert(slice.metadata.name.clone(), slice);
                }
                "DELETED" => {
                    self.slices.remove(&slice.metadata.name);
                }
                _ => continue, // BOOKMARK: only the version moved
            }
            publish(sender, api::instances(&self.service, self.slices.values()));
        }
    }
}
