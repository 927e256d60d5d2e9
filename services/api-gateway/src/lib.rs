//! The API gateway: Keel's single public entry, a path-prefix reverse proxy in front of the
//! services' REST listeners.
//!
//! Why this crate exists: clients see one origin (`http://127.0.0.1:8080` by default) and the
//! public REST surface of DESIGN §9, while each core service listens on its own port, maybe on
//! another host, maybe in several copies. The gateway maps each path to a service by the
//! configured routes, finds that service's healthy instances through the service registry, and
//! forwards the request with bodies streamed both ways. Before anything goes upstream it applies
//! the route's policy: header limits (431), body limit (413), and authentication at the edge: the
//! bearer token verified locally against the auth service's keys (401), a required permission
//! checked with authz (403). The verified caller reaches the upstream as `X-User-Id`. The
//! all-in-one `platform` process mounts it on its public port; the `api-gateway` binary runs it
//! alone.
//!
//! - [`GatewayConfig`] is the `gateway` configuration section: routes (prefix → service, optional
//!   prefix strip, timeout, [`AuthPolicy`], permission and body limit), limits and upstream
//!   connection settings, validated before use.
//! - [`EdgeAuth`] is what the gateway authenticates with: a `keel_authn::TokenVerifier` and an
//!   authz client.
//! - [`Gateway::new`] watches every routed service in the registry; [`Gateway::router`] is the
//!   axum router to serve (behind `keel_http::Stack::without_body_limit`: the gateway limits bodies
//!   per route itself); [`Gateway::readiness_check`] says whether every routed service has an
//!   instance; [`GatewayConfig::connection_limits`] are the server's limits.
//!
//! Route syntax and matching are described in `docs/gateway.md` and the `routes` module: a prefix
//! is literal segments or `*` for one segment (`/api/v1/users/*/roles`), and the most specific
//! match wins. Modules' routes come from their manifests (`gateway.modules`, `keel_module`): each
//! exact in method and path, sent to the module host. Header handling (hop-by-hop, `X-Forwarded-*`, request id, `traceparent`, internal
//! identity headers) is in the `headers` module; WebSocket (HTTP/1.1 `Upgrade`) tunnels in the
//! `upgrade` module.
//!
//! ```no_run
//! # async fn run(config: keel_config::Config, registry: std::sync::Arc<dyn keel_registry::ServiceRegistry>,
//! #     auth: keel_gateway::EdgeAuth) -> Result<(), Box<dyn std::error::Error>> {
//! use keel_gateway::{Gateway, GatewayConfig};
//!
//! let limiter = keel_gateway::configured_rate_limiter(&config)?;
//! let gateway = Gateway::new(GatewayConfig::from_config(&config)?, registry, auth, Some(limiter)).await?;
//! // Ops routes are static paths, so they win over the gateway's catch-all; the keel-http
//! // Stack then wraps everything.
//! let app = axum::Router::new()
//!     .route("/healthz", axum::routing::get(|| async { "ok" }))
//!     .merge(gateway.router());
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::routing::any;
use keel_health::HealthCheck;
use keel_registry::ServiceRegistry;

mod client_address;
mod config;
mod connector;
mod edge;
mod error;
mod fast_path;
mod headers;
mod limits;
mod metrics;
mod policy;
mod pool;
mod proxy;
mod rate_limit;
mod routes;
mod token_cache;
mod upgrade;
mod upstream;

pub use config::{GatewayConfig, ModuleRoutesConfig, RouteConfig, UpstreamConfig};
pub use edge::EdgeAuth;
pub use error::GatewayError;
pub use policy::AuthPolicy;
pub use rate_limit::{RateClassConfig, RateLimitConfig};

use proxy::{Proxy, Route, Routing};
use routes::RouteTable;
use upstream::Watcher;

/// A built gateway: its routes, the registry watches that keep their upstreams current, the edge
/// authentication and pooled HTTP/1.1 clients (one per serving thread). Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    proxy: Arc<Proxy>,
    reload: Arc<Reloader>,
    /// The configuration it was built with (what a front needs of it cannot be reloaded).
    settings: Arc<GatewayConfig>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// What a reload needs besides the new configuration: where services are found, the limiter, and
/// the upstreams already watched (kept across reloads).
struct Reloader {
    registry: Arc<dyn ServiceRegistry>,
    limiter: Option<Arc<dyn keel_ratelimit::RateLimiter>>,
    upstreams: tokio::sync::Mutex<HashMap<String, Arc<upstream::Upstream>>>,
    /// Modules given in code at construction ([`GatewayConfig::with_module`]): part of the
    /// process, not of its files, so a reload from the files keeps them.
    code_modules: Vec<keel_module::Manifest>,
}

impl Gateway {
    /// Validates `config`, watches each routed service in `registry`, authenticates with `auth`
    /// (its token cache sized by `gateway.token_cache_entries`) and counts requests against
    /// `gateway.rate_limits` with `limiter` (`None`: no rate limits; see
    /// [`configured_rate_limiter`] for the configured one).
    ///
    /// Async because watching a service may ask a remote registry. A service with no instance yet
    /// is not an error: its requests answer 503 until one registers, and the watch picks it up
    /// without a restart.
    pub async fn new(
        config: GatewayConfig,
        registry: Arc<dyn ServiceRegistry>,
        auth: EdgeAuth,
        limiter: Option<Arc<dyn keel_ratelimit::RateLimiter>>,
    ) -> Result<Self, GatewayError> {
        let reload = Arc::new(Reloader {
            registry,
            limiter,
            upstreams: tokio::sync::Mutex::new(HashMap::new()),
            code_modules: config.modules.given().to_vec(),
        });
        let routing = reload.routing(&config).await?;
        metrics::describe();
        let auth = auth.with_token_cache(config.token_cache_entries);
        Ok(Self {
            proxy: Arc::new(Proxy::new(routing, auth, &config)),
            reload,
            settings: Arc::new(config),
        })
    }

    /// Replaces the routes, their access policies, limits and rate-limit classes with those of
    /// `config`, for every request that arrives after it returns; requests in flight finish with
    /// the routing they started with, and no connection is dropped. Services routed before keep
    /// their registry watch and balancer state. An invalid `config` changes nothing and says why.
    ///
    /// What a reload does not change (it needs a restart): the upstream connection pool settings
    /// (`gateway.upstream.*` except `timeout_ms`), the token cache size, and the balancing of
    /// services already routed.
    pub async fn reload(&self, config: &GatewayConfig) -> Result<(), GatewayError> {
        let routing = self.reload.routing(config).await?;
        self.proxy.replace_routing(routing);
        tracing::info!(routes = config.routes.len(), "gateway routes reloaded");
        Ok(())
    }

    /// The router that proxies every path: `/` and `/{*path}`, any method.
    ///
    /// These are routes, not a fallback, on purpose: `keel_http::Stack::apply` installs its own
    /// 404 fallback, which would replace a fallback of ours. Merge static routes (`/healthz`,
    /// `/ready`, `/metrics`) into it or it into them; static paths win over the catch-all. Paths
    /// no configured route matches are answered 404 problem+json by the gateway itself.
    pub fn router(&self) -> Router {
        let handler = any(proxy::serve).with_state(Arc::clone(&self.proxy));
        Router::new()
            .route("/", handler.clone())
            .route("/{*path}", handler)
    }

    /// The HTTP/1.1 fast path to serve in front of [`Gateway::router`]
    /// (`keel_http::HttpServer::with_front`), or `None` when `gateway.fast_path` is off or CORS
    /// is configured (`http.cors.allowed_origins`). `http` is
    /// the server's configuration (request timeout, security headers, CORS), and `reserved_paths`
    /// the exact paths the served router answers itself (`/healthz`, `/ready`, `/metrics`): their
    /// requests are left to the router.
    ///
    /// Plain HTTP/1.1 requests (no body, no upgrade) are then
    /// parsed, forwarded and answered by the gateway itself, with the same checks, headers,
    /// metrics and problems as through the router; at the first other request a connection is
    /// handed to the router's stack for good. Call within a Tokio runtime (its upstream pools
    /// start their idle sweep).
    pub fn http1_front(
        &self,
        http: &keel_config::HttpConfig,
        reserved_paths: &[&str],
    ) -> Option<Arc<dyn keel_http::ConnectionFront>> {
        // With CORS configured the stack's CORS layer acts on every response (`Vary`, the allow
        // headers, `OPTIONS` answered): all of it stays with the stack.
        let cors = !http.cors.allowed_origins.is_empty();
        (self.settings.fast_path && !cors).then(|| {
            let reserved = reserved_paths.iter().map(|path| (*path).to_owned()).collect();
            let front = fast_path::FastPath::new(Arc::clone(&self.proxy), &self.settings, http, reserved);
            Arc::new(front) as Arc<dyn keel_http::ConnectionFront>
        })
    }

    /// A readiness check (`gateway-upstreams`) that fails while a routed service has no healthy
    /// instance, naming those services. For the process's `/ready`.
    pub fn readiness_check(&self) -> Arc<dyn HealthCheck> {
        Arc::new(UpstreamsReady {
            proxy: Arc::clone(&self.proxy),
        })
    }
}

impl Reloader {
    /// The routing `config` describes, validated, with its services watched. A `config` without
    /// modules given in code (one read from the files) gets those given at construction.
    async fn routing(&self, config: &GatewayConfig) -> Result<Routing, GatewayError> {
        let config = match config.modules.given().is_empty() && !self.code_modules.is_empty() {
            true => Cow::Owned(
                self.code_modules
                    .iter()
                    .cloned()
                    .fold(config.clone(), GatewayConfig::with_module),
            ),
            false => Cow::Borrowed(config),
        };
        let config = config.as_ref();
        let table = config.route_table()?;
        let limits = rate_limit::RateLimits::new(&config.rate_limits, self.limiter.clone());
        let mut known = self.upstreams.lock().await;
        let mut watcher = Watcher::with_known(
            self.registry.as_ref(),
            &config.balancing,
            std::mem::take(&mut *known),
        );
        let mut routes = Vec::new();
        let mut failure = None;
        for (pattern, route) in table.into_entries() {
            match watcher.upstream(&route.service).await {
                Ok(upstream) => {
                    let class = limits.class(route.rate_limit_class.as_deref());
                    routes.push((pattern, Route::new(route, upstream, config, class)));
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        *known = watcher.into_known();
        match failure {
            Some(error) => Err(error),
            None => Ok(Routing::new(
                RouteTable::from_entries(routes),
                limits,
                config.trusted_proxies()?,
                config,
            )),
        }
    }
}

/// Reloads `gateway`'s routes from the configuration files and environment (`ConfigLoader::
/// from_process`) each time the process receives SIGHUP, until `shutdown`. A configuration that
/// does not load or validate is logged and leaves the routes as they were. Spawn it beside the
/// server (`kernel.spawn`); it fails only when the signal handler cannot be installed.
pub async fn reload_on_hangup(
    gateway: Gateway,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), std::io::Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            received = hangups.recv() => {
                if received.is_none() {
                    return Ok(());
                }
            }
        }
        // Reading the files (configuration and module manifests) blocks: off the runtime's
        // workers.
        let loaded = tokio::task::spawn_blocking(|| {
            let config = keel_config::ConfigLoader::from_process().load()?;
            GatewayConfig::from_config(&config)
        })
        .await;
        let reloaded = match loaded {
            Ok(Ok(routes)) => gateway.reload(&routes).await,
            Ok(Err(error)) => Err(error),
            Err(join) => {
                tracing::error!(error = %join, "SIGHUP: reading the configuration failed");
                continue;
            }
        };
        if let Err(error) = reloaded {
            tracing::error!(%error, "SIGHUP: the gateway configuration was not reloaded; the routes stay as they were");
        }
    }
}

/// The rate limiter the `ratelimit` section of `config` describes (memory or Redis), for
/// [`Gateway::new`]; its keys live under `<ratelimit.key_prefix>gateway:`. For Redis, call inside
/// a Tokio runtime.
pub fn configured_rate_limiter(
    config: &keel_config::Config,
) -> Result<Arc<dyn keel_ratelimit::RateLimiter>, GatewayError> {
    let settings: keel_ratelimit::RateLimitSettings = config.section("ratelimit")?;
    Ok(settings.limiter("gateway")?)
}

/// See [`Gateway::readiness_check`].
struct UpstreamsReady {
    proxy: Arc<Proxy>,
}

#[async_trait]
impl HealthCheck for UpstreamsReady {
    fn name(&self) -> &str {
        "gateway-upstreams"
    }

    async fn check(&self) -> Result<(), String> {
        match self.proxy.unavailable_services() {
            missing if missing.is_empty() => Ok(()),
            missing => Err(format!("no healthy instance of: {}", missing.join(", "))),
        }
    }
}
