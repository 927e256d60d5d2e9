//! The `gateway` configuration section: which paths go to which service, and how upstreams are
//! reached.
//!
//! Why a module of its own: the section is read by the process that mounts the gateway (the
//! all-in-one `platform`, later the `api-gateway` binary) and validated before any request flows,
//! so a typo in a route is a start-up error naming the route, not a 404 in production.

use std::path::PathBuf;
use std::time::Duration;

use keel_module::{Manifest, ModuleSet};
use serde::Deserialize;

use crate::GatewayError;
use crate::client_address::TrustedProxies;
use crate::policy::AuthPolicy;
use crate::rate_limit::RateLimitConfig;
use crate::routes::RouteTable;

/// Default of [`GatewayConfig::body_limit_bytes`]: 10 MiB.
const DEFAULT_BODY_LIMIT_BYTES: u64 = 10 * 1024 * 1024;
/// Default of [`GatewayConfig::max_headers`].
const DEFAULT_MAX_HEADERS: usize = 100;
/// Default of [`GatewayConfig::max_header_bytes`]: 32 KiB.
const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// Default of [`GatewayConfig::token_cache_entries`].
const DEFAULT_TOKEN_CACHE_ENTRIES: usize = 10_000;

/// The `gateway` section.
///
/// `#[non_exhaustive]`: the gateway grows (authentication, rate-limit classes, CORS); build one in
/// code with [`GatewayConfig::new`], or read it with [`GatewayConfig::from_config`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// How upstream connections are made and how long an upstream may take.
    pub upstream: UpstreamConfig,
    /// Largest request body a route accepts unless it sets its own; larger is 413 (at once for a
    /// declared `Content-Length`, as soon as the count passes the limit for a streamed body).
    #[serde(default = "default_body_limit_bytes")]
    pub body_limit_bytes: u64,
    /// Most header fields a request may have; more is 431.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Largest header section (each field counted as `name: value` plus its line end); larger is
    /// 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Verified access tokens remembered (by SHA-256 digest, until they expire, at most 5 min) so a
    /// token is verified once rather than on every request; 0 verifies every request.
    #[serde(default = "default_token_cache_entries")]
    pub token_cache_entries: usize,
    /// Threads that serve the gateway's connections, each with a single-threaded runtime of its
    /// own (see [`GatewayConfig::serving_threads`]); 0, the default, is one per CPU core.
    #[serde(default)]
    pub worker_threads: usize,
    /// Whether plain HTTP/1.1 requests (no body, no upgrade) are served by the
    /// gateway's own HTTP/1.1 code instead of the general HTTP stack (see
    /// [`crate::Gateway::http1_front`]); default `true`. Same answers either way; off only to
    /// compare or to rule it out.
    #[serde(default = "default_fast_path")]
    pub fast_path: bool,
    /// Proxies in front of the gateway (load balancers) whose `X-Forwarded-For`, `-Proto` and
    /// `-Host` are believed: networks in CIDR notation or single addresses. Empty (the default):
    /// the connection's peer is the client. See `docs/gateway.md`, "Client address".
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Client-side load balancing over each routed service's healthy instances.
    #[serde(default)]
    pub balancing: keel_balancer::BalancerConfig,
    /// Rate limits per user and per client address, by class.
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    /// The modules whose routes (from their `module.yaml`) the gateway serves, and the service
    /// that hosts them.
    #[serde(default)]
    pub modules: ModuleRoutesConfig,
    /// The route table: path prefix → service. Order does not matter; the most specific route
    /// matching a path wins (see the crate documentation).
    pub routes: Vec<RouteConfig>,
}

/// `gateway.modules`: routes declared by modules' manifests, each sent to the module host.
///
/// Every route of a manifest becomes a gateway route for exactly its method and path (`GET
/// /api/v1/blog/posts/:id`; `HEAD` with `GET`), sent unchanged to `host`, with the route's
/// permission checked at the edge like a configured route's `permission`. A module's paths lie
/// under `/api/v<N>/<module>` (the manifest's rule), so they never shadow a configured route or
/// another module's. A path some module route matches with another method answers 405 with
/// `Allow`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ModuleRoutesConfig {
    /// The registry name of the service that hosts the modules (the `platform` process).
    #[serde(default = "default_module_host")]
    pub host: String,
    /// Where the manifests are: `module.yaml` files, module directories, or directories of module
    /// directories (`modules`: every `modules/*/module.yaml`). Read at start-up and on every
    /// reload; a path that does not exist is a configuration error.
    #[serde(default)]
    pub manifests: Vec<PathBuf>,
    /// Manifests given in code ([`GatewayConfig::with_module`]), e.g. by a process that registers
    /// its modules statically.
    #[serde(skip)]
    given: Vec<Manifest>,
    /// The manifests `manifests` held when [`GatewayConfig::from_config`] read them, so routing
    /// does not read files again (on an async runtime); `None`: read them when routing.
    #[serde(skip)]
    read: Option<Vec<Manifest>>,
}

impl Default for ModuleRoutesConfig {
    fn default() -> Self {
        Self {
            host: default_module_host(),
            manifests: Vec::new(),
            given: Vec::new(),
            read: None,
        }
    }
}

impl ModuleRoutesConfig {
    /// The manifests given in code.
    pub(crate) fn given(&self) -> &[Manifest] {
        &self.given
    }

    /// The modules to route: those given in code and those the manifest paths hold, checked as a
    /// set (no module twice, dependencies present and of a matching version, no cycle).
    pub(crate) fn resolve(&self) -> Result<ModuleSet, String> {
        let mut manifests = self.given.clone();
        match &self.read {
            Some(read) => manifests.extend(read.iter().cloned()),
            None => manifests.extend(Manifest::discover(&self.manifests).map_err(|error| error.to_string())?),
        }
        ModuleSet::resolve(manifests, &platform_version()).map_err(|error| error.to_string())
    }
}

/// The platform's version, which modules' `core` dependencies are checked against.
fn platform_version() -> keel_module::Version {
    keel_module::Version::parse(env!("CARGO_PKG_VERSION"))
        .unwrap_or_else(|_| keel_module::Version::new(0, 0, 0))
}

fn default_module_host() -> String {
    "platform".to_owned()
}

/// Connections to the services behind the gateway (HTTP/1.1, pooled keep-alive).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// Longest a TCP connect to an instance may take before the request fails with 502.
    pub connect_timeout_ms: u64,
    /// Longest an upstream may take to answer with its response head (status and headers), for
    /// routes without their own `timeout_ms`; longer is a 504. Streaming the response body after
    /// that is not limited. Keep it below `http.request_timeout_ms`, which answers 503 first.
    pub timeout_ms: u64,
    /// How long an unused keep-alive connection stays in the pool.
    pub pool_idle_timeout_ms: u64,
    /// Most idle keep-alive connections kept per instance.
    pub pool_max_idle_per_host: usize,
    /// A request body whose declared `Content-Length` is at most this many bytes is read whole
    /// before the request goes upstream, and sent with the request head in one write; larger
    /// bodies, and bodies without a declared length, stream. The upstream then sees each small
    /// request complete at once: one that answers before reading the body (a 405 or 401 from
    /// its router) can read it and keep the connection, instead of closing it while the gateway
    /// is still writing the body, which failed such requests with 502. A hyper upstream only
    /// reads what arrived with the head (about 32 KB on loopback), hence the 16 KiB default; at
    /// most 1 MiB. 0 streams every body.
    #[serde(default = "default_buffer_body_bytes")]
    pub buffer_body_bytes: u64,
}

fn default_buffer_body_bytes() -> u64 {
    16 * 1024
}

impl Default for UpstreamConfig {
    /// Connect within 1 s, answer within 10 s, idle connections kept 90 s, up to 64 per instance,
    /// bodies up to 16 KiB read before they are sent (the values of `config/default.yaml`).
    fn default() -> Self {
        Self {
            connect_timeout_ms: 1_000,
            timeout_ms: 10_000,
            pool_idle_timeout_ms: 90_000,
            pool_max_idle_per_host: 64,
            buffer_body_bytes: default_buffer_body_bytes(),
        }
    }
}

impl UpstreamConfig {
    /// `connect_timeout_ms` as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// `timeout_ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// `pool_idle_timeout_ms` as a duration.
    pub fn pool_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.pool_idle_timeout_ms)
    }
}

/// One entry of `gateway.routes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteConfig {
    /// The path prefix, segment by segment: `/api/v1/users`, or with `*` standing for exactly one
    /// segment, `/api/v1/users/*/roles`. Matches the prefix itself and everything below it
    /// (`/api/v1/users/42`), never a longer segment (`/api/v1/usersx`).
    pub prefix: String,
    /// The registry name of the service that serves it, e.g. `identity`.
    pub service: String,
    /// Whether the matched prefix is removed from the path sent upstream (`/api/v1/auth/login`
    /// → `/login` for prefix `/api/v1/auth`). Default false: the services serve the public paths.
    #[serde(default)]
    pub strip_prefix: bool,
    /// This route's upstream timeout in milliseconds, instead of `upstream.timeout_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// How the `Authorization` header is treated; absent: optional (required with a
    /// `permission`).
    #[serde(default)]
    pub auth: Option<AuthPolicy>,
    /// A permission the caller must hold (checked with the authz service, cached), e.g.
    /// `platform.audit.read`; implies a required token. Denied is 403.
    #[serde(default)]
    pub permission: Option<String>,
    /// This route's body limit in bytes, instead of the gateway's `body_limit_bytes`.
    #[serde(default)]
    pub body_limit_bytes: Option<u64>,
    /// The rate-limit class (`gateway.rate_limits.classes`) this route counts against; `default`
    /// when not given.
    #[serde(default)]
    pub rate_limit_class: Option<String>,
}

impl RouteConfig {
    /// A route sending `prefix` to `service`, unstripped, with the default timeout.
    pub fn new(prefix: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            service: service.into(),
            strip_prefix: false,
            timeout_ms: None,
            auth: None,
            permission: None,
            body_limit_bytes: None,
            rate_limit_class: None,
        }
    }

    /// Counts this route against the rate-limit class `class`.
    #[must_use]
    pub fn with_rate_limit_class(mut self, class: impl Into<String>) -> Self {
        self.rate_limit_class = Some(class.into());
        self
    }

    /// Sets how the `Authorization` header is treated.
    #[must_use]
    pub fn with_auth(mut self, auth: AuthPolicy) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Requires callers to hold `permission` (and so a valid token).
    #[must_use]
    pub fn with_permission(mut self, permission: impl Into<String>) -> Self {
        self.permission = Some(permission.into());
        self
    }

    /// Sets this route's body limit.
    #[must_use]
    pub fn with_body_limit(mut self, bytes: u64) -> Self {
        self.body_limit_bytes = Some(bytes);
        self
    }

    /// Sets whether the matched prefix is removed from the upstream path.
    #[must_use]
    pub fn with_strip_prefix(mut self, strip: bool) -> Self {
        self.strip_prefix = strip;
        self
    }

    /// Sets this route's upstream timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }
}

impl GatewayConfig {
    /// A configuration with `routes` and the default upstream settings and limits.
    pub fn new(routes: Vec<RouteConfig>) -> Self {
        Self {
            upstream: UpstreamConfig::default(),
            body_limit_bytes: DEFAULT_BODY_LIMIT_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            token_cache_entries: DEFAULT_TOKEN_CACHE_ENTRIES,
            worker_threads: 0,
            fast_path: true,
            trusted_proxies: Vec::new(),
            balancing: keel_balancer::BalancerConfig::default(),
            rate_limits: RateLimitConfig::default(),
            modules: ModuleRoutesConfig::default(),
            routes,
        }
    }

    /// Adds the routes of the module `manifest` describes (served by `modules.host`), as if its
    /// manifest were listed in `gateway.modules.manifests`. A gateway built from this keeps the
    /// module across reloads from configuration files (which cannot name it).
    #[must_use]
    pub fn with_module(mut self, manifest: Manifest) -> Self {
        self.modules.given.push(manifest);
        self
    }

    /// Sets the registry name of the service hosting the modules (default `platform`).
    #[must_use]
    pub fn with_module_host(mut self, host: impl Into<String>) -> Self {
        self.modules.host = host.into();
        self
    }

    /// Replaces the rate-limit classes.
    #[must_use]
    pub fn with_rate_limits(mut self, rate_limits: RateLimitConfig) -> Self {
        self.rate_limits = rate_limits;
        self
    }

    /// Sets the body limit of routes without their own.
    #[must_use]
    pub fn with_body_limit(mut self, bytes: u64) -> Self {
        self.body_limit_bytes = bytes;
        self
    }

    /// Sets the header count and header section size limits.
    #[must_use]
    pub fn with_header_limits(mut self, max_headers: usize, max_header_bytes: usize) -> Self {
        self.max_headers = max_headers;
        self.max_header_bytes = max_header_bytes;
        self
    }

    /// Sets how many verified tokens are remembered (0: none).
    #[must_use]
    pub fn with_token_cache_entries(mut self, entries: usize) -> Self {
        self.token_cache_entries = entries;
        self
    }

    /// Trusts the `X-Forwarded-*` headers of connections from `proxies` (CIDR networks or
    /// addresses), as `gateway.trusted_proxies` does.
    #[must_use]
    pub fn with_trusted_proxies(mut self, proxies: Vec<String>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The limits of the HTTP server the gateway is served by: `http.header_read_timeout_ms`, and
    /// parser limits at twice the gateway's own header limits, so a request a little over them
    /// reaches the gateway and gets its 431 problem+json, while a grossly oversized one is refused
    /// by the server's parser (a bare 431) before the gateway sees it.
    pub fn connection_limits(&self, http: &keel_config::HttpConfig) -> keel_http::ConnectionLimits {
        let list_bytes = u32::try_from(self.max_header_bytes.saturating_mul(2)).unwrap_or(u32::MAX);
        keel_http::ConnectionLimits::from_config(http)
            .with_max_headers(self.max_headers.saturating_mul(2).max(DEFAULT_MAX_HEADERS))
            .with_max_header_list_bytes(list_bytes.max(16 * 1024))
    }

    /// How many threads serve the gateway's connections (`keel_http::HttpServer::
    /// with_worker_threads`): `worker_threads`, or one per CPU core when it is 0. Each runs a
    /// single-threaded runtime holding its connections, their upstream connections and timers, as
    /// nginx's workers do: a request never waits for another thread to be woken.
    pub fn serving_threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            threads => threads,
        }
    }

    /// Replaces the upstream settings.
    #[must_use]
    pub fn with_upstream(mut self, upstream: UpstreamConfig) -> Self {
        self.upstream = upstream;
        self
    }

    /// Reads and validates the `gateway` section of `config`, and the module manifests it names
    /// (file I/O: call it where blocking is fine, as `reload_on_hangup` does).
    pub fn from_config(config: &keel_config::Config) -> Result<Self, GatewayError> {
        let mut gateway: Self = config.section("gateway")?;
        let read =
            Manifest::discover(&gateway.modules.manifests).map_err(|error| GatewayError::InvalidConfig {
                problems: vec![format!("gateway.modules: {error}")],
            })?;
        gateway.modules.read = Some(read);
        gateway.validate()?;
        Ok(gateway)
    }

    /// Checks what types cannot express: every prefix well-formed, no two routes with the same
    /// prefix, every service named, every timeout positive. Reports every problem, not just the
    /// first, each naming its key (`gateway.routes[3].prefix`).
    pub fn validate(&self) -> Result<(), GatewayError> {
        self.route_table().map(drop)
    }

    /// [`GatewayConfig::validate`], keeping the parsed route table.
    pub(crate) fn route_table(&self) -> Result<RouteTable<RouteConfig>, GatewayError> {
        let mut problems = self.upstream_problems();
        problems.extend(self.rate_limits.problems());
        if let Err(proxy_problems) = TrustedProxies::parse(&self.trusted_proxies) {
            problems.extend(proxy_problems);
        }
        for (index, route) in self.routes.iter().enumerate() {
            if let Some(class) = &route.rate_limit_class
                && !self.rate_limits.has_class(class)
            {
                problems.push(format!(
                    "gateway.routes[{index}].rate_limit_class `{class}` is not a class of gateway.rate_limits.classes"
                ));
            }
        }
        match RouteTable::parse(self) {
            Ok(table) if problems.is_empty() => Ok(table),
            Ok(_) => Err(GatewayError::InvalidConfig { problems }),
            Err(route_problems) => {
                problems.extend(route_problems);
                Err(GatewayError::InvalidConfig { problems })
            }
        }
    }

    /// `trusted_proxies`, parsed.
    pub(crate) fn trusted_proxies(&self) -> Result<TrustedProxies, GatewayError> {
        TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|problems| GatewayError::InvalidConfig { problems })
    }

    fn upstream_problems(&self) -> Vec<String> {
        let upstream = &self.upstream;
        let limits = [
            ("body_limit_bytes", self.body_limit_bytes),
            ("max_headers", self.max_headers as u64),
            ("max_header_bytes", self.max_header_bytes as u64),
        ];
        [
            ("upstream.connect_timeout_ms", upstream.connect_timeout_ms),
            ("upstream.timeout_ms", upstream.timeout_ms),
        ]
        .into_iter()
        .chain(limits)
        .filter(|(_, value)| *value == 0)
        .map(|(key, _)| format!("gateway.{key} must be greater than 0"))
        .chain((upstream.buffer_body_bytes > MAX_BUFFER_BODY_BYTES).then(|| {
            format!(
                "gateway.upstream.buffer_body_bytes must be at most {MAX_BUFFER_BODY_BYTES} (each request in flight may hold that much); larger bodies stream"
            )
        }))
        .collect()
    }
}

/// Largest `gateway.upstream.buffer_body_bytes`: 1 MiB.
const MAX_BUFFER_BODY_BYTES: u64 = 1024 * 1024;

fn default_body_limit_bytes() -> u64 {
    DEFAULT_BODY_LIMIT_BYTES
}

fn default_max_headers() -> usize {
    DEFAULT_MAX_HEADERS
}

fn default_max_header_bytes() -> usize {
    DEFAULT_MAX_HEADER_BYTES
}

fn default_fast_path() -> bool {
    true
}

fn default_token_cache_entries() -> usize {
    DEFAULT_TOKEN_CACHE_ENTRIES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(config: &GatewayConfig) -> String {
        match config.validate() {
            Ok(()) => String::new(),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn a_well_formed_table_is_valid() {
        let config = GatewayConfig::new(vec![
            RouteConfig::new("/api/v1/users", "identity"),
            RouteConfig::new("/api/v1/users/*/roles", "authz"),
            RouteConfig::new("/", "platform"),
        ]);
        assert_eq!(problems(&config), "");
    }

    #[test]
    fn zero_timeouts_are_refused_naming_the_key() {
        let upstream = UpstreamConfig {
            connect_timeout_ms: 0,
            ..UpstreamConfig::default()
        };
        let config = GatewayConfig::new(vec![RouteConfig::new("/a", "a").with_timeout(Duration::ZERO)])
            .with_upstream(upstream);
        let message = problems(&config);
        assert!(
            message.contains("gateway.upstream.connect_timeout_ms must be greater than 0"),
            "{message}"
        );
        assert!(
            message.contains("gateway.routes[0].timeout_ms must be greater than 0"),
            "{message}"
        );
    }

    #[test]
    fn unknown_keys_in_a_route_are_refused() {
        let yaml = serde_json::json!({
            "upstream": {"connect_timeout_ms": 1, "timeout_ms": 1, "pool_idle_timeout_ms": 1,
                         "pool_max_idle_per_host": 1},
            "routes": [{"prefix": "/a", "service": "a", "strip": true}]
        });
        let error = serde_json::from_value::<GatewayConfig>(yaml)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("unknown field `strip`"), "{error}");
    }
}
