//! Layered, typed and validated configuration for every Keel process.
//!
//! Why this crate exists: every service, the gateway and the CLI read their settings the same way, so
//! an operator learns one scheme and a typo is caught the same way everywhere. The layers, lowest
//! first:
//!
//! 1. `config/default.yaml`: every setting with its default (the reference list of keys);
//! 2. `config/{KEEL_ENV}.yaml`: the environment's overrides (`development` unless `KEEL_ENV` says);
//! 3. environment variables `KEEL_SECTION__KEY` (double underscore between levels);
//! 4. secret files: `KEEL_SECTION__KEY_FILE=/run/secrets/x` reads the value from that file, so secrets
//!    need not sit in the environment.
//!
//! [`ConfigLoader::load`] merges them into a [`Config`]: the merged tree, which every component reads
//! its own section from with [`Config::section`], and the typed [`KernelConfig`] that the kernel
//! needs, validated at load. Any error names the key and the layer it came from. Secrets are
//! [`secrecy::SecretString`]s, redacted in `Debug`, and [`Config::redacted`] prints the effective
//! configuration with secrets masked.

mod error;
mod loader;
mod model;
mod providers;
mod redact;

pub use error::ConfigError;
pub use loader::{AdminSeed, Config, ConfigLoader};
pub use model::{
    AppConfig, ConsulConfig, CorsConfig, DatabaseConfig, DatabaseOverride, ErrorBusConfig, EtcdConfig,
    GrpcConfig, HealthConfig, HttpConfig, KernelConfig, KubernetesConfig, LogConfig, LogFormat, PoolConfig,
    RegistryConfig, RegistryKind, SecurityHeadersConfig, StaticHealthCheckConfig, TelemetryConfig,
    TraceExporter, TracesConfig,
};
pub use redact::redact_value;
/// Re-exported so callers can hold secrets without naming `secrecy` themselves.
pub use secrecy::{ExposeSecret, SecretString};
