//! The Keel auth service: login, sessions (refresh-token families), access-token signing keys.
//!
//! Why this crate exists: authentication is one service (DESIGN §3) that every other trusts, so
//! the rules that keep tokens safe live here once:
//!
//! - **Login** asks identity to check the credentials (`VerifyCredentials`); an unknown e-mail and
//!   a wrong password answer the same 401. Each login starts its own session.
//! - **Access tokens** are EdDSA JWTs (`keel_authn::AccessClaims`: `iss`, `aud`, `sub`, `jti`,
//!   `iat`, `nbf`, `exp`, `sid`; header `kid`), 15 minutes by default, verified locally by every
//!   service against the JWKS this service publishes.
//! - **Refresh tokens** are opaque, stored as SHA-256 hashes, rotated on every use; presenting a
//!   used one ends its whole session (RFC 9700 §4.14), with an optional grace window for retries.
//! - **Signing keys** are Ed25519, generated and kept in the auth store (or supplied by
//!   configuration), rotated every `auth.key_rotation_days`, published until their last token
//!   expired.
//!
//! The service has the shape every core service has: [`AuthService::build`] reads the `auth` and
//! `jwt` sections, opens and migrates the store, registers its readiness check;
//! [`AuthService::router`] is the REST face (DESIGN §9), [`AuthService::grpc_service`] the gRPC
//! face (`keel.auth.v1.AuthService`), and [`AuthService::start_background`] starts the outbox
//! relay (audit records), the user-event follower and the clean-up. See `docs/services/auth.md`.
//!
//! Errors: every failure is an [`AuthError`], mapped once to `ServiceError`, problem+json and
//! `tonic::Status`.

mod audit;
mod background;
mod clock;
mod engine;
mod error;
mod grpc;
mod keys;
mod login;
mod openapi;
mod refresh;
mod rest;
mod sessions;
mod settings;
mod store;
mod throttle;
mod tokens;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keel_authn::{JwksSource, JwtSettings, PermissionGuard, TokenVerifier};
use keel_clients::ServiceClients;
use keel_db::{Database, ServiceDatabase};
use keel_events::{EventBus, OutboxRelay, Subscription, topics};
use keel_kernel::KernelHandle;
use keel_proto::auth::v1::auth_service_server::AuthServiceServer;

pub use clock::{Clock, SystemClock};
pub use error::AuthError;
pub use grpc::GrpcAuth;

use background::LocalJwks;
use engine::Engine;
use keys::{KeyPolicy, KeyRing, SigningKey};
use settings::AuthSettings;
use store::Migrator;

/// The store (and registry) name of the service.
const SERVICE: &str = "auth";
/// Least time between two reads of the own key store caused by an unknown `kid` (the store is
/// local, so this can be much shorter than a remote verifier's).
const LOCAL_JWKS_REFRESH: Duration = Duration::from_secs(1);

/// What the auth service needs from its host.
#[derive(Clone)]
pub struct AuthDeps {
    /// Peer clients: identity checks credentials, authz answers the admin route's permission
    /// check, audit receives the outbox's records.
    pub clients: ServiceClients,
    /// The event bus: user events are followed on it.
    pub events: Arc<dyn EventBus>,
    /// The time (the system clock outside tests).
    pub clock: Arc<dyn Clock>,
}

impl AuthDeps {
    /// Dependencies with the system clock.
    pub fn new(clients: ServiceClients, events: Arc<dyn EventBus>) -> Self {
        Self {
            clients,
            events,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for AuthDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthDeps").finish_non_exhaustive()
    }
}

/// The auth service, built and ready to be served.
pub struct AuthService {
    engine: Arc<Engine>,
    verifier: Arc<TokenVerifier>,
    jwks: Arc<dyn JwksSource>,
    guard: PermissionGuard,
    db: ServiceDatabase,
    /// Taken by `start_background`.
    relay: Mutex<Option<OutboxRelay>>,
    /// Subscribed at build, so no user event published after `build` is missed; taken by
    /// `start_background`.
    user_events: Mutex<Option<Subscription>>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// Reads the `auth` and `jwt` sections, opens and migrates the auth store, registers its
    /// readiness check, makes sure a signing key is active, and subscribes to user events.
    pub async fn build(kernel: &KernelHandle, deps: AuthDeps) -> Result<Self, AuthError> {
        let config = kernel.config();
        let settings = AuthSettings::load(config)?;
        let jwt: JwtSettings = config.section("jwt")?;
        let configured = settings
            .signing_private_key()
            .map(|pem| SigningKey::from_pem(pem).map_err(|error| AuthError::ConfiguredKey(error.to_string())))
            .transpose()?;
        let db = Database::connect(&config.kernel().database, SERVICE).await?;
        db.migrate::<Migrator>().await?;
        kernel.health().register(Arc::new(db.readiness_check()));
        let policy = KeyPolicy {
            rotation: settings.rotation(),
            token_lifetime: settings.access_ttl() + Duration::from_secs(jwt.leeway_secs),
        };
        let keys =
            Arc::new(KeyRing::open(db.connection().clone(), deps.clock.clone(), policy, configured).await?);
        let jwks: Arc<dyn JwksSource> = Arc::new(LocalJwks(keys.clone()));
        let verifier = Arc::new(
            TokenVerifier::new(jwks.clone(), jwt.clone()).with_min_refresh_interval(LOCAL_JWKS_REFRESH),
        );
        let relay = OutboxRelay::new(
            db.connection().clone(),
            SERVICE,
            deps.events.clone(),
            deps.clients.audit.clone(),
        );
        let user_events = deps.events.subscribe(topics::ALL_USER).await?;
        let ratelimit: keel_ratelimit::RateLimitSettings = kernel.config().section("ratelimit")?;
        let throttle = throttle::LoginThrottle::new(settings.login_throttle(), &ratelimit)?;
        let engine = Arc::new(Engine {
            db: db.connection().clone(),
            keys,
            settings,
            jwt,
            identity: deps.clients.identity.clone(),
            clock: deps.clock,
            relay: relay.waker(),
            verifier: verifier.clone(),
            throttle,
        });
        Ok(Self {
            engine,
            verifier,
            jwks,
            guard: PermissionGuard::new(deps.clients.authz.clone()),
            db,
            relay: Mutex::new(Some(relay)),
            user_events: Mutex::new(Some(user_events)),
        })
    }

    /// The REST routes of DESIGN §9 (`/api/v1/auth/…`, `/.well-known/jwks.json`,
    /// `DELETE /api/v1/users/{id}/sessions`) and their OpenAPI document
    /// (`/api/v1/auth/openapi.json`), state applied, without ops routes or the stack.
    pub fn router(&self) -> axum::Router {
        let routes = rest::router(
            rest::RestState {
                engine: self.engine.clone(),
                verifier: self.verifier.clone(),
            },
            self.guard.clone(),
        );
        let auditor =
            keel_service::MutationAuditor::new(self.engine.db.clone(), SERVICE, self.engine.relay.clone());
        keel_service::audit_unaudited_mutations(routes, auditor)
    }

    /// The tonic service to add to the gRPC server.
    pub fn grpc_service(&self) -> AuthServiceServer<GrpcAuth> {
        AuthServiceServer::new(GrpcAuth::new(self.engine.clone()))
    }

    /// Starts the outbox relay (audit records to the audit service), the follower of
    /// `platform.user.deleted` / `platform.user.password_changed`, and the hourly clean-up of
    /// expired sessions, on `kernel.spawn`. A second call starts nothing.
    pub fn start_background(&self, kernel: &KernelHandle) {
        if let Some(relay) = self.relay.lock().unwrap_or_else(PoisonError::into_inner).take() {
            kernel.spawn("auth-outbox-relay", relay.run(kernel.shutdown_token()));
        }
        if let Some(events) = self
            .user_events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            kernel.spawn(
                "auth-user-events",
                background::follow_user_events(self.engine.clone(), events, kernel.shutdown_token()),
            );
            kernel.spawn(
                "auth-prune",
                background::prune_periodically(self.engine.clone(), kernel.shutdown_token()),
            );
        }
    }

    /// A token verifier over this service's own keys (no network), for a host that wants to
    /// verify tokens in-process.
    pub fn verifier(&self) -> Arc<TokenVerifier> {
        self.verifier.clone()
    }

    /// The JWKS of this service's key store as a `keel_authn::JwksSource` (in-process).
    pub fn jwks_source(&self) -> Arc<dyn JwksSource> {
        self.jwks.clone()
    }

    /// The auth store.
    pub fn database(&self) -> &ServiceDatabase {
        &self.db
    }
}
