//! Where a service listens, and the address it tells the registry.

use std::net::SocketAddr;

use keel_config::{Config, ConfigError};
use serde::Deserialize;

/// The listeners of one service, from `listen.<service>` in the configuration.
///
/// Port 0 picks a free port (the all-in-one default: peers find the service through the
/// in-process registry, not a fixed port).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// REST and operational routes (`/healthz`, `/ready`, `/metrics`).
    pub http: SocketAddr,
    /// gRPC.
    pub grpc: SocketAddr,
    /// Host name or address peers should use to reach this instance; required when a listener is
    /// bound to an unspecified address (`0.0.0.0`, `::`), else the bound address is advertised.
    /// Empty means unset.
    #[serde(default)]
    pub advertise_host: Option<String>,
}

/// Reads `listen.<service>`.
pub fn listen_config(config: &Config, service: &str) -> Result<ListenConfig, ConfigError> {
    config.section(&format!("listen.{service}"))
}
