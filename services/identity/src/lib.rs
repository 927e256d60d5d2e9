//! Keel's identity service: users, their credentials, e-mail verification and password reset
//! (DESIGN §3, §9; issue 3 "Identity").
//!
//! Why this crate exists: one service owns the `users` table and everything that proves a user is
//! who they claim (password hashes, verification and reset tokens). Others reach it only through
//! its gRPC API (`keel.identity.v1`, through `keel_clients::IdentityClient`) or its REST routes
//! behind the gateway; no other service reads its store.
//!
//! The shape every core service shares: [`IdentityService::build`] reads the `identity`
//! configuration section, opens and migrates the store, and registers its readiness check;
//! [`IdentityService::router`] gives the REST routes, [`IdentityService::grpc_service`] the tonic
//! service, [`IdentityService::start_background`] spawns the outbox relay and the token purge.
//! The host (a thin binary or the all-in-one `platform`) adds listeners, ops routes and the
//! middleware stack.
//!
//! Inside: `domain` parses values at the edge ([`Email`], [`Password`], [`DisplayName`]);
//! `flows` holds the behaviour, shared by `rest` and `grpc`; `store` the tables and queries;
//! `hashing` argon2id on a bounded blocking pool; `tokens` the one-time tokens; [`Notifier`] the
//! e-mail port with its development implementation [`FileOutboxNotifier`].

mod clock;
mod config;
mod domain;
mod error;
mod flows;
mod grpc;
mod hashing;
mod notifier;
mod rest;
mod store;
mod tokens;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keel_authn::{PermissionGuard, TokenVerifier};
use keel_clients::ServiceClients;
use keel_db::Database;
use keel_events::{EventBus, OutboxRelay};
use keel_kernel::KernelHandle;
use keel_proto::identity::v1::identity_service_server::IdentityServiceServer;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use clock::{Clock, SystemClock};
pub use config::{IdentitySettings, InvalidSetting, PasswordHashSettings, Registration};
pub use domain::{DisplayName, Email, FieldProblem, Password};
pub use error::IdentityError;
pub use flows::LocalIdentityClient;
pub use grpc::IdentityGrpc;
pub use hashing::HashError;
pub use notifier::{EmailMessage, FileOutboxNotifier, Notifier, NotifyError};

use crate::flows::Identity;
use crate::hashing::PasswordHasher;

/// The registry and store name of this service.
pub const SERVICE_NAME: &str = "identity";
/// How often expired tokens are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);
/// How long expired tokens are kept (for support questions) before they are purged.
const EXPIRED_TOKEN_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);
/// How long shutdown waits for e-mails still being sent.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the identity service needs from its host.
pub struct IdentityDeps {
    /// Peer services: `auth` ends sessions on password changes, `authz` answers permission
    /// checks of admin routes and takes a deleted user's roles, `audit` receives the outbox's
    /// audit records.
    pub clients: ServiceClients,
    /// The bus the outbox relay publishes events on.
    pub events: Arc<dyn EventBus>,
    /// Verifies access tokens of authenticated routes.
    pub verifier: Arc<TokenVerifier>,
    /// Sends e-mails; `None` writes `.eml` files into `identity.outbox_dir`.
    pub notifier: Option<Arc<dyn Notifier>>,
    /// The time (tests move it).
    pub clock: Arc<dyn Clock>,
}

impl IdentityDeps {
    /// Dependencies with the file outbox notifier and the system clock.
    pub fn new(clients: ServiceClients, events: Arc<dyn EventBus>, verifier: Arc<TokenVerifier>) -> Self {
        Self {
            clients,
            events,
            verifier,
            notifier: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for IdentityDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityDeps")
            .field("file_outbox", &self.notifier.is_none())
            .finish_non_exhaustive()
    }
}

/// The identity service, built and ready to be hosted.
pub struct IdentityService {
    identity: Arc<Identity>,
    rest: rest::RestState,
    relay: Mutex<Option<OutboxRelay>>,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService").finish_non_exhaustive()
    }
}

impl IdentityService {
    /// Reads the `identity` section, connects the store (`Database::connect(…, "identity")`),
    /// migrates it, registers its readiness check on `kernel.health()`, and prepares the password
    /// hasher (one dummy hash, for the timing of unknown accounts).
    pub async fn build(kernel: &KernelHandle, deps: IdentityDeps) -> Result<Self, IdentityError> {
        let settings: IdentitySettings = kernel
            .config()
            .section(SERVICE_NAME)
            .map_err(|e| IdentityError::Config(e.to_string()))?;
        settings
            .validate()
            .map_err(|e| IdentityError::Config(e.to_string()))?;
        let hasher = PasswordHasher::new(&settings.password_hash).await?;
        let database = Database::connect(&kernel.config().kernel().database, SERVICE_NAME).await?;
        database.migrate::<store::migration::Migrator>().await?;
        kernel.health().register(Arc::new(database.readiness_check()));
        let notifier = match deps.notifier {
            Some(notifier) => notifier,
            None => Arc::new(file_notifier(&settings)?),
        };
        let relay = OutboxRelay::new(
            database.connection().clone(),
            SERVICE_NAME,
            deps.events,
            deps.clients.audit.clone(),
        );
        let registration = settings.registration;
        let ratelimit: keel_ratelimit::RateLimitSettings = kernel
            .config()
            .section("ratelimit")
            .map_err(|e| IdentityError::Config(e.to_string()))?;
        let reset_limiter = ratelimit
            .limiter("identity-reset")
            .map_err(|e| IdentityError::Config(e.to_string()))?;
        let password_change_policy = settings
            .password_change_throttle
            .policy("identity.password_change_throttle")
            .map_err(|e| IdentityError::Config(e.to_string()))?;
        let password_change_throttle = ratelimit
            .throttle("identity-password-change", password_change_policy)
            .map_err(|e| IdentityError::Config(e.to_string()))?;
        let identity = Arc::new(Identity {
            db: database.connection().clone(),
            settings,
            hasher,
            notifier,
            clock: deps.clock,
            auth: deps.clients.auth.clone(),
            authz: deps.clients.authz.clone(),
            waker: relay.waker(),
            reset_limiter,
            password_change_throttle,
            tasks: TaskTracker::new(),
        });
        let rest = rest::RestState {
            identity: identity.clone(),
            verifier: deps.verifier,
            guard: Arc::new(PermissionGuard::new(deps.clients.authz.clone())),
            registration,
        };
        Ok(Self {
            identity,
            rest,
            relay: Mutex::new(Some(relay)),
        })
    }

    /// The REST routes under `/api/v1/users` (DESIGN §9), state applied, without ops routes or
    /// the middleware stack.
    pub fn router(&self) -> axum::Router {
        let auditor = keel_service::MutationAuditor::new(
            self.identity.db.clone(),
            SERVICE_NAME,
            self.identity.waker.clone(),
        );
        keel_service::audit_unaudited_mutations(rest::router(self.rest.clone()), auditor)
    }

    /// The gRPC service `keel.identity.v1.IdentityService`.
    pub fn grpc_service(&self) -> IdentityServiceServer<IdentityGrpc> {
        IdentityServiceServer::new(IdentityGrpc::new(self.identity.clone()))
    }

    /// Creates a user whose address counts as verified (no e-mail is sent), for seeding the
    /// administrator. Returns the user and whether it was created; an existing user with that
    /// address is returned unchanged, password included.
    pub async fn seed_user(
        &self,
        user: keel_clients::NewUser,
    ) -> Result<(keel_clients::User, bool), IdentityError> {
        self.identity.seed_user(user).await
    }

    /// The service as an in-process [`keel_clients::IdentityClient`] (no network hop).
    pub fn client(&self) -> LocalIdentityClient {
        LocalIdentityClient {
            identity: self.identity.clone(),
        }
    }

    /// Spawns the outbox relay and the hourly purge of long-expired tokens on `kernel`; on
    /// shutdown, e-mails still being sent are given a few seconds to finish. Call once.
    pub fn start_background(&self, kernel: &KernelHandle) {
        let relay = self.relay.lock().unwrap_or_else(PoisonError::into_inner).take();
        match relay {
            Some(relay) => kernel.spawn("identity-outbox-relay", relay.run(kernel.shutdown_token())),
            None => tracing::warn!("identity background work was already started"),
        }
        let identity = self.identity.clone();
        kernel.spawn(
            "identity-maintenance",
            maintain(identity, kernel.shutdown_token()),
        );
    }
}

fn file_notifier(settings: &IdentitySettings) -> Result<FileOutboxNotifier, IdentityError> {
    let from = settings
        .mail_from
        .parse()
        .map_err(|_| IdentityError::Config("identity.mail_from is not an e-mail address".to_owned()))?;
    Ok(FileOutboxNotifier::new(settings.outbox_dir.clone(), from))
}

/// Purges long-expired tokens every hour until shutdown, then waits for detached work.
async fn maintain(identity: Arc<Identity>, shutdown: CancellationToken) -> Result<(), IdentityError> {
    let mut interval = tokio::time::interval(PURGE_INTERVAL);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let before = identity.now() - EXPIRED_TOKEN_RETENTION;
                match store::purge_expired_tokens(&identity.db, before).await {
                    Ok(0) => {}
                    Ok(purged) => tracing::info!(purged, "expired tokens purged"),
                    Err(error) => tracing::warn!(%error, "purging expired tokens failed"),
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
    identity.tasks.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, identity.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: e-mails still being sent were abandoned");
    }
    Ok(())
}
