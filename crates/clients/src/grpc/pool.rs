//! Discovery and balancing: which instance of a peer service the next call goes to.
//!
//! The pool watches the registry for the service's healthy instances on first use and hands the
//! watch to a `keel-balancer` [`Balancer`] over the instances' `grpc` ports, which keeps one lazily
//! connecting channel per instance. Every call's pick reads the watch's *current* set (a pointer
//! comparison when nothing changed), so an instance deregistered or found unhealthy is never picked
//! again, not even by the call right after the change; channels of instances that stay are reused.
//! Calls go by power of two choices on calls in flight, and an instance the caller could not reach
//! is ejected for a while (passive health).

use std::sync::Arc;

use keel_balancer::{Balancer, Pick};
use keel_config::GrpcConfig;
use keel_registry::{ServiceInstance, ServiceRegistry};
use tokio::sync::OnceCell;

use crate::ServiceError;

/// A channel to one instance, with the client layer (deadline, request id, tracing, metrics).
pub(crate) type Conn = keel_grpc::ClientService<tonic::transport::Channel>;

/// The instances of one service and the channels to them.
pub(crate) struct Pool {
    service: &'static str,
    registry: Arc<dyn ServiceRegistry>,
    grpc: GrpcConfig,
    balancer: OnceCell<Balancer<Conn>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool for `service`; nothing is asked of the registry until the first call.
    pub(crate) fn new(service: &'static str, registry: Arc<dyn ServiceRegistry>, grpc: &GrpcConfig) -> Self {
        Self {
            service,
            registry,
            grpc: grpc.clone(),
            balancer: OnceCell::new(),
        }
    }

    /// The instance the next call goes to, with its channel (`pick.payload()`), counted as in
    /// flight until dropped; `Unavailable("<service>: no healthy instance")` at once when there is
    /// none.
    pub(crate) async fn pick(&self) -> Result<Pick<Conn>, ServiceError> {
        let balancer = self
            .balancer
            .get_or_try_init(|| self.balancer())
            .await
            .map_err(|error| {
                tracing::warn!(service = self.service, %error, "cannot watch the service registry");
                ServiceError::Unavailable(format!("{}: service registry unavailable", self.service))
            })?;
        balancer
            .pick()
            .ok_or_else(|| ServiceError::Unavailable(format!("{}: no healthy instance", self.service)))
    }

    /// The balancer over the registry's watch of the service, subscribing now.
    async fn balancer(&self) -> Result<Balancer<Conn>, keel_registry::RegistryError> {
        let watch = self.registry.watch(self.service).await?;
        let (service, grpc) = (self.service, self.grpc.clone());
        // `GrpcConfig` has no balancing settings yet: the balancer's defaults (power of two
        // choices, eject for 10 s after an unreachable instance).
        let balancer = Balancer::builder(service, watch, ServiceInstance::GRPC).build_with(
            move |instance: &ServiceInstance, endpoint: &str| match keel_grpc::connect_lazy(
                &format!("http://{endpoint}"),
                &grpc,
            ) {
                Ok(channel) => Some(channel),
                Err(error) => {
                    tracing::warn!(service, instance = %instance.id, %error, "instance skipped");
                    None
                }
            },
        );
        Ok(balancer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_registry::StaticRegistry;

    fn instance(id: &str, port: u16) -> ServiceInstance {
        ServiceInstance::new("identity", id, "127.0.0.1").with_port(ServiceInstance::GRPC, port)
    }

    #[tokio::test]
    async fn an_instance_reported_unreachable_is_skipped_while_another_is_registered() -> anyhow::Result<()> {
        let registry = Arc::new(StaticRegistry::new());
        let _ = registry.register(instance("a", 1)).await?;
        let _ = registry.register(instance("b", 2)).await?;
        let grpc = GrpcConfig {
            default_deadline_ms: 1_000,
            max_deadline_ms: 1_000,
            connect_timeout_ms: 100,
        };
        let pool = Pool::new(
            "identity",
            Arc::clone(&registry) as Arc<dyn ServiceRegistry>,
            &grpc,
        );

        let first = pool.pick().await?;
        let (ejected, other) = match first.instance_id() {
            "a" => ("a", "b"),
            _ => ("b", "a"),
        };
        first.failed();
        drop(first);
        for _ in 0..10 {
            assert_eq!(pool.pick().await?.instance_id(), other);
        }

        // Alone, the ejected instance is tried rather than nothing; gone, nothing is.
        registry.deregister("identity", other).await?;
        assert_eq!(pool.pick().await?.instance_id(), ejected);
        registry.deregister("identity", ejected).await?;
        let outcome = pool.pick().await.map(|pick| pick.instance_id().to_owned());
        assert_eq!(
            outcome,
            Err(ServiceError::Unavailable("identity: no healthy instance".into()))
        );
        Ok(())
    }
}
