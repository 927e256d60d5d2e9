//! The typed settings the kernel needs. Services add their own sections and read them with
//! [`crate::Config::section`]; these are the ones every process shares.
//!
//! Every struct denies unknown fields, so a misspelt key in a YAML file stops start-up instead of
//! silently doing nothing. Durations carry their unit in the key name (`_ms`, `_secs`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

mod registry;

pub use registry::{
    ConsulConfig, EtcdConfig, KubernetesConfig, RegistryConfig, RegistryKind, StaticHealthCheckConfig,
};

/// Everything the kernel reads from configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct KernelConfig {
    /// Identity of the process.
    pub app: AppConfig,
    /// Logs, traces and metrics.
    pub telemetry: TelemetryConfig,
    /// The HTTP server settings of the process's public listener.
    pub http: HttpConfig,
    /// The gRPC server and client defaults.
    pub grpc: GrpcConfig,
    /// Readiness checks.
    pub health: HealthConfig,
    /// The error bus.
    pub error_bus: ErrorBusConfig,
    /// Database connections, one schema or file per service.
    pub database: DatabaseConfig,
    /// Where services find each other.
    pub registry: RegistryConfig,
}

/// Identity of the process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// Name of the process in logs and traces (the OpenTelemetry `service.name`).
    pub name: String,
}

/// Logs, traces and metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Log output.
    pub log: LogConfig,
    /// Trace export.
    pub traces: TracesConfig,
}

/// Log output settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter directive such as `info` or `info,keel_http=debug`; `RUST_LOG` wins.
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line, for machines (production).
    Json,
    /// Multi-line, coloured, for people (development).
    Pretty,
    /// One readable line per event.
    Compact,
}

/// Trace export settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesConfig {
    /// Where finished spans go.
    pub exporter: TraceExporter,
    /// OTLP/gRPC collector endpoint, used when `exporter` is `otlp`.
    pub otlp_endpoint: String,
    /// Share of new traces recorded, 0.0 to 1.0 (a sampled parent always wins).
    pub sample_ratio: f64,
}

/// Destination of finished spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceExporter {
    /// Trace ids are still made and propagated, but spans are not exported.
    None,
    /// Spans printed to standard output (development).
    Stdout,
    /// Spans sent to an OpenTelemetry collector over OTLP/gRPC (production).
    Otlp,
}

/// HTTP server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to bind.
    pub host: IpAddr,
    /// Port to bind; 0 picks a free one (tests).
    pub port: u16,
    /// A request taking longer is answered 503 problem+json.
    pub request_timeout_ms: u64,
    /// Largest accepted request body; larger is 413.
    pub body_limit_bytes: usize,
    /// Longest a client may take to send a request head (and the longest an idle keep-alive
    /// connection is kept) on servers that apply it (the public gateway port); 0: no limit.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// On shutdown, how long in-flight requests may take to finish.
    pub shutdown_grace_ms: u64,
    /// Whether responses are gzip-compressed when the client accepts it.
    pub compression: bool,
    /// Cross-origin resource sharing.
    pub cors: CorsConfig,
    /// Security response headers.
    pub security_headers: SecurityHeadersConfig,
}

impl HttpConfig {
    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    /// `shutdown_grace_ms` as a duration.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
    /// `header_read_timeout_ms` as a duration; `None` when 0 (no limit).
    pub fn header_read_timeout(&self) -> Option<Duration> {
        (self.header_read_timeout_ms > 0).then(|| Duration::from_millis(self.header_read_timeout_ms))
    }
}

/// `http.header_read_timeout_ms` when the configuration does not say: hyper's own default.
fn default_header_read_timeout_ms() -> u64 {
    30_000
}

/// CORS settings; an empty `allowed_origins` disables CORS (no cross-origin access).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins allowed, e.g. `https://app.example.com`; `*` allows any (not with credentials).
    pub allowed_origins: Vec<String>,
    /// Methods allowed in cross-origin requests.
    pub allowed_methods: Vec<String>,
    /// Request headers allowed in cross-origin requests.
    pub allowed_headers: Vec<String>,
    /// Response headers exposed to scripts.
    pub exposed_headers: Vec<String>,
    /// Whether cookies and `Authorization` may be sent cross-origin.
    pub allow_credentials: bool,
    /// How long a preflight answer may be cached by the browser.
    pub max_age_secs: u64,
}

/// Security headers added to every response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityHeadersConfig {
    /// Whether to add the headers at all.
    pub enabled: bool,
    /// `Strict-Transport-Security` max-age; 0 leaves HSTS off (set it when served behind TLS).
    pub hsts_max_age_secs: u64,
    /// `Content-Security-Policy` value.
    pub content_security_policy: String,
}

/// gRPC settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Deadline a client puts on a call when its caller set none.
    pub default_deadline_ms: u64,
    /// Upper bound a server allows for any call, whatever the client asked.
    pub max_deadline_ms: u64,
    /// Time allowed to connect to a peer.
    pub connect_timeout_ms: u64,
}

/// Readiness settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// How long one readiness check may take before it counts as failed.
    pub check_timeout_ms: u64,
}

/// Error bus settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBusConfig {
    /// Records the bus holds before it starts dropping (and counting) new ones.
    pub capacity: usize,
}

/// Database settings: one server or directory, one schema or file per service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite:<directory>` (one file per service in that directory) or
    /// `postgres://user:password@host:port/database` (one schema per service). Secret.
    pub url: SecretString,
    /// Prefix for PostgreSQL schema names, e.g. `keel_` gives `keel_identity`.
    pub schema_prefix: String,
    /// Pool settings for every service unless overridden.
    pub pool: PoolConfig,
    /// Per-service overrides, by service name.
    pub services: BTreeMap<String, DatabaseOverride>,
}

/// One service's departures from the shared database settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseOverride {
    /// Another server for this service. Secret.
    pub url: Option<SecretString>,
    /// Another pool size for this service.
    pub pool: Option<PoolConfig>,
}

/// Connection pool settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Most connections open at once.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// Time allowed to open a connection.
    pub connect_timeout_ms: u64,
    /// Time a query may wait for a free connection.
    pub acquire_timeout_ms: u64,
    /// An idle connection is closed after this long.
    pub idle_timeout_secs: u64,
}

/// A problem found by validation: the key and what is wrong.
pub(crate) struct Violation {
    pub(crate) key: &'static str,
    pub(crate) message: String,
}

impl KernelConfig {
    /// Checks the rules types cannot express. Returns every violation, not just the first.
    pub(crate) fn violations(&self) -> Vec<Violation> {
        let mut found = Vec::new();
        let mut check = |ok: bool, key: &'static str, message: &str| {
            if !ok {
                found.push(Violation {
                    key,
                    message: message.to_owned(),
                });
            }
        };
        check(!self.app.name.trim().is_empty(), "app.name", "must not be empty");
        check(
            (0.0..=1.0).contains(&self.telemetry.traces.sample_ratio),
            "telemetry.traces.sample_ratio",
            "must be between 0.0 and 1.0",
        );
        check(
            self.telemetry.traces.exporter != TraceExporter::Otlp
                || self.telemetry.traces.otlp_endpoint.starts_with("http"),
            "telemetry.traces.otlp_endpoint",
            "must be an http(s) URL when the exporter is otlp",
        );
        check(
            self.http.request_timeout_ms > 0,
            "http.request_timeout_ms",
            "must be positive",
        );
        check(
            self.http.body_limit_bytes > 0,
            "http.body_limit_bytes",
            "must be positive",
        );
        check(
            !(self.http.cors.allow_credentials && self.http.cors.allowed_origins.iter().any(|o| o == "*")),
            "http.cors.allowed_origins",
            "`*` cannot be combined with allow_credentials (browsers refuse it)",
        );
        check(
            self.grpc.default_deadline_ms > 0,
            "grpc.default_deadline_ms",
            "must be positive",
        );
        check(
            self.grpc.max_deadline_ms >= self.grpc.default_deadline_ms,
            "grpc.max_deadline_ms",
            "must be at least grpc.default_deadline_ms",
        );
        check(
            self.health.check_timeout_ms > 0,
            "health.check_timeout_ms",
            "must be positive",
        );
        check(
            self.error_bus.capacity > 0,
            "error_bus.capacity",
            "must be positive",
        );
        let url = self.database.url.expose_secret();
        check(
            url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "database.url",
            "must start with sqlite: or postgres://",
        );
        check(
            self.database
                .schema_prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "database.schema_prefix",
            "may hold only lowercase letters, digits and underscores",
        );
        check(
            self.database.pool.max_connections > 0,
            "database.pool.max_connections",
            "must be positive",
        );
        check(
            self.database.pool.min_connections <= self.database.pool.max_connections,
            "database.pool.min_connections",
            "must not exceed database.pool.max_connections",
        );
        found.extend(self.registry.violations());
        found
    }
}
