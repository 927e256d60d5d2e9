//! What the registry knows about one running copy of a service.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One running copy of a service: where it listens and what it is.
///
/// Plain data, serialisable so that remote backends can store it as it is (an etcd value, Consul
/// service meta). Build one with [`ServiceInstance::new`] and the `with_*` methods; the registry
/// checks it when it is registered, so a malformed instance is refused there rather than handed to
/// a caller later.
///
/// An instance has one host and any number of *named* ports, because a Keel service listens for
/// REST (behind the gateway) and gRPC (from its peers) on ports of its own; a caller asks for the
/// protocol it speaks with [`ServiceInstance::endpoint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInstance {
    /// The service this is an instance of, e.g. `identity`.
    pub service: String,
    /// Unique within the service and stable for the life of the process, e.g. `identity-7f3a` or,
    /// for an instance from static configuration, its address.
    pub id: String,
    /// Host name or IP address the ports are reached at. An IPv6 address is stored without
    /// brackets (`::1`); [`ServiceInstance::endpoint`] adds them.
    pub host: String,
    /// Port by protocol name, e.g. `http` → 8081, `grpc` → 9081. See [`ServiceInstance::HTTP`] and
    /// [`ServiceInstance::GRPC`] for the names Keel uses.
    pub ports: BTreeMap<String, u16>,
    /// The build's version, e.g. `0.1.0`; `None` when not known (static configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Free-form labels (zone, weight, build, …) for load balancers and operators.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Path on the `http` port that answers 2xx while the instance can serve, normally `/ready`.
    /// Without one, a health check only tries to connect to every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_endpoint: Option<String>,
}

impl ServiceInstance {
    /// Name of the port serving REST and the health endpoint.
    pub const HTTP: &'static str = "http";
    /// Name of the port serving gRPC.
    pub const GRPC: &'static str = "grpc";

    /// An instance with no ports, version, metadata or health endpoint yet.
    pub fn new(service: impl Into<String>, id: impl Into<String>, host: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            id: id.into(),
            host: host.into(),
            ports: BTreeMap::new(),
            version: None,
            metadata: BTreeMap::new(),
            health_endpoint: None,
        }
    }

    /// Adds (or replaces) the port for a protocol.
    #[must_use]
    pub fn with_port(mut self, name: impl Into<String>, port: u16) -> Self {
        self.ports.insert(name.into(), port);
        self
    }

    /// Sets the version.
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Adds (or replaces) a metadata label.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the health endpoint path, e.g. `/ready`.
    #[must_use]
    pub fn with_health_endpoint(mut self, path: impl Into<String>) -> Self {
        self.health_endpoint = Some(path.into());
        self
    }

    /// The port for a protocol, if the instance has one.
    pub fn port(&self, name: &str) -> Option<u16> {
        self.ports.get(name).copied()
    }

    /// `host:port` for a protocol, ready to put after `http://`; IPv6 hosts are bracketed
    /// (`[::1]:8081`). `None` when the instance has no port of that name.
    pub fn endpoint(&self, port_name: &str) -> Option<String> {
        self.port(port_name).map(|port| authority(&self.host, port))
    }

    /// The instance, or [`crate::RegistryError::InvalidInstance`] saying why it cannot be
    /// registered: what every backend's `register` checks first.
    pub(crate) fn checked(self) -> Result<Self, crate::RegistryError> {
        match self.problem() {
            None => Ok(self),
            Some(reason) => Err(crate::RegistryError::InvalidInstance {
                service: self.service,
                id: self.id,
                reason,
            }),
        }
    }

    /// Why the instance cannot be registered, if it cannot.
    pub(crate) fn problem(&self) -> Option<String> {
        if let Some(problem) = name_problem("service name", &self.service) {
            return Some(problem);
        }
        if self.id.trim().is_empty() {
            return Some("instance id must not be empty".to_owned());
        }
        if let Some(problem) = host_problem(&self.host) {
            return Some(problem);
        }
        if self.ports.is_empty() {
            return Some("needs at least one port".to_owned());
        }
        for (name, port) in &self.ports {
            if let Some(problem) = name_problem("port name", name) {
                return Some(problem);
            }
            if *port == 0 {
                return Some(format!("port `{name}` must not be 0"));
            }
        }
        match &self.health_endpoint {
            Some(path) if !path.starts_with('/') => Some(format!(
                "health endpoint `{path}` must be a path starting with `/`"
            )),
            Some(_) if self.port(Self::HTTP).is_none() => {
                Some("a health endpoint needs an `http` port to be reached on".to_owned())
            }
            _ => None,
        }
    }
}

/// `host:port`, with IPv6 hosts in brackets.
pub(crate) fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Why `name` is not a usable service or port name: empty, or with whitespace or control
/// characters that would break keys in remote backends and log lines.
fn name_problem(what: &str, name: &str) -> Option<String> {
    if name.is_empty() {
        Some(format!("{what} must not be empty"))
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some(format!(
            "{what} `{name}` must not contain spaces or control characters"
        ))
    } else {
        None
    }
}

/// Why `host` is neither an IP address (IPv6 without brackets) nor a DNS name.
pub(crate) fn host_problem(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("host must not be empty".to_owned());
    }
    if host.parse::<IpAddr>().is_ok() {
        return None;
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.len() <= 253 && name.split('.').all(label_ok) {
        None
    } else {
        Some(format!("host `{host}` is neither an IP address nor a DNS name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ServiceInstance {
        ServiceInstance::new("identity", "identity-1", "127.0.0.1")
            .with_port(ServiceInstance::HTTP, 8081)
            .with_port(ServiceInstance::GRPC, 9081)
            .with_health_endpoint("/ready")
    }

    #[test]
    fn a_complete_instance_has_no_problem() {
        assert_eq!(valid().problem(), None);
    }

    #[test]
    fn endpoint_brackets_ipv6_hosts_and_names_the_requested_protocol() {
        let v4 = valid();
        assert_eq!(v4.endpoint("grpc").as_deref(), Some("127.0.0.1:9081"));
        assert_eq!(v4.endpoint("metrics"), None);
        let v6 = ServiceInstance {
            host: "::1".into(),
            ..valid()
        };
        assert_eq!(v6.endpoint("http").as_deref(), Some("[::1]:8081"));
    }

    #[test]
    fn instances_missing_what_a_caller_needs_are_refused_with_the_reason() {
        let cases = [
            (
                ServiceInstance {
                    service: String::new(),
                    ..valid()
                },
                "service name must not be empty",
            ),
            (
                ServiceInstance {
                    service: "id entity".into(),
                    ..valid()
                },
                "must not contain spaces",
            ),
            (
                ServiceInstance {
                    id: " ".into(),
                    ..valid()
                },
                "instance id must not be empty",
            ),
            (
                ServiceInstance {
                    host: "exa mple".into(),
                    ..valid()
                },
                "neither an IP address",
            ),
            (
                ServiceInstance {
                    host: String::new(),
                    ..valid()
                },
                "host must not be empty",
            ),
            (
                ServiceInstance {
                    ports: BTreeMap::new(),
                    ..valid()
                },
                "at least one port",
            ),
            (valid().with_port("http", 0), "port `http` must not be 0"),
            (
                valid().with_health_endpoint("ready"),
                "must be a path starting with `/`",
            ),
            (
                ServiceInstance::new("a", "a-1", "h")
                    .with_port("grpc", 1)
                    .with_health_endpoint("/ready"),
                "needs an `http` port",
            ),
        ];
        for (instance, expected) in cases {
            let problem = instance.problem().unwrap_or_default();
            assert!(
                problem.contains(expected),
                "{instance:?}: got {problem:?}, want {expected:?}"
            );
        }
    }

    #[test]
    fn dns_names_and_ip_addresses_are_valid_hosts() {
        for host in [
            "localhost",
            "identity.keel.svc.cluster.local",
            "10.0.0.5",
            "::1",
            "my_host",
        ] {
            assert_eq!(host_problem(host), None, "{host}");
        }
        for host in ["a..b", "-", "[::1]", "host:80", "a/b"] {
            assert!(host_problem(host).is_some(), "{host}");
        }
    }

    #[test]
    fn an_instance_round_trips_through_json_leaving_out_empty_fields() -> Result<(), serde_json::Error> {
        let bare = ServiceInstance::new("audit", "audit-1", "10.0.0.7").with_port("grpc", 9084);
        let json = serde_json::to_value(&bare)?;
        assert_eq!(
            json,
            serde_json::json!({
                "service": "audit", "id": "audit-1", "host": "10.0.0.7", "ports": {"grpc": 9084}
            })
        );
        let full = valid().with_version("0.1.0").with_metadata("zone", "a");
        assert_eq!(
            serde_json::from_str::<ServiceInstance>(&serde_json::to_string(&full)?)?,
            full
        );
        Ok(())
    }
}
