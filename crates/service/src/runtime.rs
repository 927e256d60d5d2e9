//! What the services of one process share: the event bus, the clients of their peers (authz behind
//! the permission cache) and the access-token verifier.

use std::sync::Arc;
use std::time::Duration;

use keel_authn::{AuthServiceJwks, JwtSettings, TokenVerifier};
use keel_clients::{CachedAuthzClient, ServiceClients};
use keel_events::{Event, EventBus, topics};
use keel_kernel::KernelHandle;
use uuid::Uuid;

/// Why the shared runtime could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A setting is missing or invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// Subscribing to the event bus failed.
    #[error("event bus: {0}")]
    Events(#[from] keel_events::EventError),
}

/// The parts every service of a process receives.
#[derive(Clone)]
pub struct SharedRuntime {
    /// The bus the process's services publish to (through their outboxes) and subscribe on.
    pub events: Arc<dyn EventBus>,
    /// Clients of every core service, found through the kernel's registry; `authz` answers from
    /// the permission cache.
    pub clients: ServiceClients,
    /// Verifies access tokens locally against the auth service's JWKS (cached).
    pub verifier: Arc<TokenVerifier>,
    permissions: Arc<CachedAuthzClient>,
}

impl std::fmt::Debug for SharedRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRuntime").finish_non_exhaustive()
    }
}

/// Default lifetime of a cached permission set when `authz.cache_ttl_secs` is absent. Events
/// invalidate entries at once; the lifetime only bounds staleness when an event is missed (for
/// example with the in-process bus across separately deployed services).
const DEFAULT_PERMISSION_TTL: Duration = Duration::from_secs(60);

impl SharedRuntime {
    /// Connects the clients through the kernel's registry and builds the verifier from the `jwt`
    /// section.
    pub fn new(kernel: &KernelHandle, events: Arc<dyn EventBus>) -> Result<Self, RuntimeError> {
        let config = kernel.config();
        let jwt = JwtSettings::from_config(config).map_err(|e| RuntimeError::Config(e.to_string()))?;
        let ttl = config
            .section::<u64>("authz.cache_ttl_secs")
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_PERMISSION_TTL);
        if ttl > CachedAuthzClient::MAX_TTL {
            return Err(RuntimeError::Config(format!(
                "authz.cache_ttl_secs must be at most {}, not {}",
                CachedAuthzClient::MAX_TTL.as_secs(),
                ttl.as_secs()
            )));
        }
        let mut clients = ServiceClients::connect(kernel.registry().clone(), &config.kernel().grpc);
        let permissions = Arc::new(CachedAuthzClient::new(clients.authz.clone(), ttl));
        clients.authz = permissions.clone();
        let verifier = Arc::new(TokenVerifier::new(
            Arc::new(AuthServiceJwks(clients.auth.clone())),
            jwt,
        ));
        Ok(Self {
            events,
            clients,
            verifier,
            permissions,
        })
    }

    /// Keeps the permission cache true: every role or permission change (and a user's deletion)
    /// evicts what it affects before the next request is checked.
    pub async fn spawn_permission_invalidation(&self, kernel: &KernelHandle) -> Result<(), RuntimeError> {
        for pattern in ["platform.role.*", "platform.permission.*", topics::USER_DELETED] {
            let mut subscription = self.events.subscribe(pattern).await?;
            let permissions = self.permissions.clone();
            let shutdown = kernel.shutdown_token();
            kernel.spawn(&format!("permission-cache:{pattern}"), async move {
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        event = subscription.next() => match event {
                            Some(event) => invalidate(&permissions, &event),
                            None => break,
                        },
                    }
                }
                Ok::<(), std::convert::Infallible>(())
            });
        }
        Ok(())
    }
}

/// Assignments name a user: evict that user. Grants, revocations and role changes reach every
/// holder of the role: evict everyone.
fn invalidate(permissions: &CachedAuthzClient, event: &Event) {
    let user = event
        .payload
        .get("user_id")
        .and_then(|v| v.as_str())
        .and_then(|v| Uuid::parse_str(v).ok());
    match user {
        Some(user_id)
            if event.topic != topics::PERMISSION_GRANTED && event.topic != topics::PERMISSION_REVOKED =>
        {
            permissions.invalidate_user(user_id);
        }
        _ => permissions.invalidate_all(),
    }
}
