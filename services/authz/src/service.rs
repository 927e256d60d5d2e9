//! The authz service as a host sees it: build, REST router, gRPC service, background work.
//!
//! Why this module exists: the all-in-one `platform` process and the `authz-service` binary host
//! the service the same way (contracts: `build`, `router`, `grpc_service`, `start_background`);
//! everything they need goes through [`AuthzService`], and everything the service needs from them
//! arrives in [`AuthzDeps`].

use std::sync::{Arc, Mutex};

use keel_authn::{PermissionGuard, TokenVerifier};
use keel_clients::{AuthzClient, Origin, Permission, Role, RoleSelector, ServiceClients};
use keel_db::Database;
use keel_events::{EventBus, OutboxRelay};
use keel_kernel::KernelHandle;
use keel_proto::authz::v1::authz_service_server::{self, AuthzServiceServer};
use uuid::Uuid;

use crate::catalogue::{CORE_PERMISSIONS, PLATFORM_MODULE};
use crate::engine::{Authz, SeedReport};
use crate::grpc::GrpcAuthz;
use crate::local::LocalAuthzClient;
use crate::rest::{self, RestState};
use crate::settings::AuthzSettings;
use crate::store::migration::Migrator;
use crate::subscriptions::{self, Subscriptions};
use crate::{AuthzError, SERVICE_NAME};

/// What the authz service needs from the process hosting it.
#[derive(Clone)]
pub struct AuthzDeps {
    /// Clients of the peer services: `identity` (does a user exist, before roles are assigned to
    /// it over REST) and `audit` (where the outbox relay delivers audit records).
    pub clients: ServiceClients,
    /// The event bus: the outbox relay publishes on it; user and role events are read from it.
    pub events: Arc<dyn EventBus>,
    /// Verifies the access tokens of REST requests.
    pub verifier: Arc<TokenVerifier>,
}

impl std::fmt::Debug for AuthzDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzDeps").finish_non_exhaustive()
    }
}

/// The authz service: the permission catalogue, roles, grants and assignments of one store.
pub struct AuthzService {
    engine: Arc<Authz>,
    settings: AuthzSettings,
    deps: AuthzDeps,
    /// Taken by the first [`AuthzService::start_background`].
    background: Mutex<Option<(OutboxRelay, Subscriptions)>>,
}

impl std::fmt::Debug for AuthzService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthzService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AuthzService {
    /// Reads the `authz` section, opens and migrates the `authz` store, registers its readiness
    /// check, registers the core permissions in the catalogue and subscribes to the user and role
    /// events it reacts to (so none published after `build` returns is missed).
    pub async fn build(kernel: &KernelHandle, deps: AuthzDeps) -> Result<Self, AuthzError> {
        let settings = AuthzSettings::from_config(kernel.config())?;
        let db = Database::connect(&kernel.config().kernel().database, SERVICE_NAME).await?;
        db.migrate::<Migrator>().await?;
        kernel.health().register(Arc::new(db.readiness_check()));
        let relay = OutboxRelay::new(
            db.connection().clone(),
            SERVICE_NAME,
            deps.events.clone(),
            deps.clients.audit.clone(),
        );
        let engine = Arc::new(Authz::new(
            db.connection().clone(),
            settings.cache_ttl(),
            relay.waker(),
        ));
        let core: Vec<Permission> = CORE_PERMISSIONS
            .iter()
            .map(|(name, description)| Permission {
                name: (*name).to_owned(),
                description: (*description).to_owned(),
                module: PLATFORM_MODULE.to_owned(),
            })
            .collect();
        engine.register_permissions(&core).await?;
        let subscriptions = subscriptions::subscribe(deps.events.as_ref()).await?;
        Ok(Self {
            engine,
            settings,
            deps,
            background: Mutex::new(Some((relay, subscriptions))),
        })
    }

    /// The REST routes of DESIGN §9 and plan story 2.4 (`/api/v1/roles…`,
    /// `/api/v1/users/{id}/roles…`, `/api/v1/users/{id}/permissions`, `/api/v1/permissions`),
    /// without ops routes or the middleware stack.
    pub fn router(&self) -> axum::Router {
        let routes = rest::router(RestState {
            engine: self.engine.clone(),
            verifier: self.deps.verifier.clone(),
            guard: PermissionGuard::new(self.local_client()),
            identity: self.deps.clients.identity.clone(),
        });
        keel_service::audit_unaudited_mutations(routes, self.engine.mutation_auditor())
    }

    /// The tonic service implementing `keel.authz.v1.AuthzService`.
    pub fn grpc_service(&self) -> AuthzServiceServer<impl authz_service_server::AuthzService> {
        AuthzServiceServer::new(GrpcAuthz::new(self.engine.clone()))
    }

    /// Spawns the outbox relay, the default-role handler (`platform.user.created` → assign
    /// `authz.default_roles`; `platform.user.deleted` → remove the user's assignments) and the
    /// cache invalidation by role and permission events. Only the first call starts anything.
    pub fn start_background(&self, kernel: &KernelHandle) {
        let taken = self.background.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some((relay, subscriptions)) = taken else {
            tracing::warn!("authz background work was already started");
            return;
        };
        kernel.spawn("authz-outbox-relay", relay.run(kernel.shutdown_token()));
        subscriptions::spawn(
            kernel,
            subscriptions,
            self.engine.clone(),
            self.settings.default_role_names(),
        );
    }

    /// An [`AuthzClient`] answering from this service in-process, with no network hop: authz's own
    /// routes check permissions with it, and the all-in-one process may hand it to its peers.
    pub fn local_client(&self) -> Arc<dyn AuthzClient> {
        Arc::new(LocalAuthzClient::new(self.engine.clone()))
    }

    /// Creates the system roles `admin`, `user` and `guest` when missing and grants them what they
    /// lack (see `docs/services/authz.md`). Idempotent; `platformctl seed` and development
    /// auto-seeding call it.
    pub async fn seed_roles(&self) -> Result<SeedReport, AuthzError> {
        self.engine.seed_roles().await
    }

    /// Assigns roles by name to a user (the seeded admin); returns the user's roles. Unknown names
    /// are a validation error naming `role_names[i]`. Recorded with no acting user.
    pub async fn assign_roles_by_name(&self, user_id: Uuid, names: &[&str]) -> Result<Vec<Role>, AuthzError> {
        let selector = RoleSelector {
            ids: Vec::new(),
            names: names.iter().map(|name| (*name).to_owned()).collect(),
        };
        self.engine
            .assign_roles(user_id, &selector, &Origin::default())
            .await
    }
}
