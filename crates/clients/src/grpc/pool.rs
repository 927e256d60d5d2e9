//! Discovery and balancing: which instance of a peer service the next call goes to.
//!
//! The pool watches the registry for the service's healthy instances and keeps one lazily
//! connecting channel per instance's `grpc` port. Every call reads the watch's *current* set first
//! (a pointer comparison when nothing changed), so an instance deregistered or found
//! unhealthy is never picked again, not even by the call right after the change; channels of
//! instances that stay are reused. Calls are spread round robin over the set.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use keel_config::GrpcConfig;
use keel_registry::{InstanceWatch, Instances, ServiceInstance, ServiceRegistry};
use tokio::sync::OnceCell;

use crate::ServiceError;

/// A channel to one instance, with the client layer (deadline, request id, tracing, metrics).
pub(crate) type Conn = keel_grpc::ClientService<tonic::transport::Channel>;

/// The instances of one service and the channels to them.
pub(crate) struct Pool {
    service: &'static str,
    registry: Arc<dyn ServiceRegistry>,
    grpc: GrpcConfig,
    watch: OnceCell<InstanceWatch>,
    members: Mutex<Members>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// The set the channels were built from, and the channels.
#[derive(Default)]
struct Members {
    built_from: Option<Instances>,
    channels: Arc<[Member]>,
}

struct Member {
    id: String,
    endpoint: String,
    channel: Conn,
}

impl Pool {
    /// A pool for `service`; nothing is asked of the registry until the first call.
    pub(crate) fn new(service: &'static str, registry: Arc<dyn ServiceRegistry>, grpc: &GrpcConfig) -> Self {
        Self {
            service,
            registry,
            grpc: grpc.clone(),
            watch: OnceCell::new(),
            members: Mutex::new(Members::default()),
            next: AtomicUsize::new(0),
        }
    }

    /// A channel to the next healthy instance; `Unavailable("<service>: no healthy instance")` at
    /// once when there is none.
    pub(crate) async fn pick(&self) -> Result<Conn, ServiceError> {
        let current = self.current().await?;
        let channels = {
            let mut members = self.lock();
            if !members
                .built_from
                .as_ref()
                .is_some_and(|built| Arc::ptr_eq(built, &current))
            {
                let channels = self.rebuild(&members.channels, &current);
                *members = Members {
                    built_from: Some(current),
                    channels,
                };
            }
            Arc::clone(&members.channels)
        };
        if channels.is_empty() {
            return Err(ServiceError::Unavailable(format!(
                "{}: no healthy instance",
                self.service
            )));
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % channels.len();
        Ok(channels[index].channel.clone())
    }

    /// The registry's current healthy set, subscribing on first use.
    async fn current(&self) -> Result<Instances, ServiceError> {
        let watch = self
            .watch
            .get_or_try_init(|| self.registry.watch(self.service))
            .await
            .map_err(|error| {
                tracing::warn!(service = self.service, %error, "cannot watch the service registry");
                ServiceError::Unavailable(format!("{}: service registry unavailable", self.service))
            })?;
        Ok(Arc::clone(&watch.borrow()))
    }

    /// Channels for `instances`, reusing those of `old` whose instance and address are unchanged.
    fn rebuild(&self, old: &[Member], instances: &[ServiceInstance]) -> Arc<[Member]> {
        let mut channels = Vec::with_capacity(instances.len());
        for instance in instances {
            let Some(endpoint) = instance.endpoint(ServiceInstance::GRPC) else {
                tracing::debug!(service = self.service, instance = %instance.id, "instance has no grpc port");
                continue;
            };
            if let Some(kept) = old.iter().find(|m| m.id == instance.id && m.endpoint == endpoint) {
                channels.push(Member {
                    id: kept.id.clone(),
                    endpoint,
                    channel: kept.channel.clone(),
                });
                continue;
            }
            match keel_grpc::connect_lazy(&format!("http://{endpoint}"), &self.grpc) {
                Ok(channel) => channels.push(Member {
                    id: instance.id.clone(),
                    endpoint,
                    channel,
                }),
                Err(error) => {
                    tracing::warn!(service = self.service, instance = %instance.id, %error, "instance skipped");
                }
            }
        }
        tracing::debug!(
            service = self.service,
            instances = channels.len(),
            "instances changed"
        );
        channels.into()
    }

    /// The members, even after a panic elsewhere: a rebuild replaces them whole.
    fn lock(&self) -> MutexGuard<'_, Members> {
        self.members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
