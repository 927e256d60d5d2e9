//! The `gateway` configuration section: which paths go to which service, and how upstreams are
//! reached.
//!
//! Why a module of its own: the section is read by the process that mounts the gateway (the
//! all-in-one `platform`, later the `api-gateway` binary) and validated before any request flows,
//! so a typo in a route is a start-up error naming the route, not a 404 in production.

use std::time::Duration;

use serde::Deserialize;

use crate::GatewayError;
use crate::routes::RouteTable;

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
    /// The route table: path prefix → service. Order does not matter; the most specific route
    /// matching a path wins (see the crate documentation).
    pub routes: Vec<RouteConfig>,
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
}

impl Default for UpstreamConfig {
    /// Connect within 1 s, answer within 10 s, idle connections kept 90 s, up to 64 per instance
    /// (the values of `config/default.yaml`).
    fn default() -> Self {
        Self {
            connect_timeout_ms: 1_000,
            timeout_ms: 10_000,
            pool_idle_timeout_ms: 90_000,
            pool_max_idle_per_host: 64,
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
}

impl RouteConfig {
    /// A route sending `prefix` to `service`, unstripped, with the default timeout.
    pub fn new(prefix: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            service: service.into(),
            strip_prefix: false,
            timeout_ms: None,
        }
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
    /// A configuration with `routes` and the default upstream settings.
    pub fn new(routes: Vec<RouteConfig>) -> Self {
        Self {
            upstream: UpstreamConfig::default(),
            routes,
        }
    }

    /// Replaces the upstream settings.
    #[must_use]
    pub fn with_upstream(mut self, upstream: UpstreamConfig) -> Self {
        self.upstream = upstream;
        self
    }

    /// Reads and validates the `gateway` section of `config`.
    pub fn from_config(config: &keel_config::Config) -> Result<Self, GatewayError> {
        let gateway: Self = config.section("gateway")?;
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
        match RouteTable::parse(self) {
            Ok(table) if problems.is_empty() => Ok(table),
            Ok(_) => Err(GatewayError::InvalidConfig { problems }),
            Err(route_problems) => {
                problems.extend(route_problems);
                Err(GatewayError::InvalidConfig { problems })
            }
        }
    }

    fn upstream_problems(&self) -> Vec<String> {
        let upstream = &self.upstream;
        [
            ("connect_timeout_ms", upstream.connect_timeout_ms),
            ("timeout_ms", upstream.timeout_ms),
        ]
        .into_iter()
        .filter(|(_, value)| *value == 0)
        .map(|(key, _)| format!("gateway.upstream.{key} must be greater than 0"))
        .collect()
    }
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
