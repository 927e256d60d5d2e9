//! The `registry` section: which discovery backend a process uses and each backend's settings.
//!
//! Its own module because four backends each bring a settings struct and rules; `model.rs` keeps the
//! sections every process reads. Every backend's section has defaults, so a configuration naming
//! only `kind: static` (the embedded default) needs nothing else, and switching `kind` needs only
//! the keys that differ from the defaults (usually an address).

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use super::Violation;

/// Service discovery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Which backend.
    pub kind: RegistryKind,
    /// For `static`: service name → instance addresses (`host:port`).
    #[serde(default)]
    pub services: BTreeMap<String, Vec<String>>,
    /// For `static`: probing of the instances it holds, so that one that stops answering leaves
    /// the healthy set (off by default).
    #[serde(default)]
    pub health_check: StaticHealthCheckConfig,
    /// For the remote backends (etcd, Consul, Kubernetes): how long one request to the backend
    /// may take (a blocking query or watch stream waits longer, by its own rule).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// For `etcd`.
    #[serde(default)]
    pub etcd: EtcdConfig,
    /// For `consul`.
    #[serde(default)]
    pub consul: ConsulConfig,
    /// For `kubernetes`.
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
}

impl Default for RegistryConfig {
    /// The embedded default: `static` with no listed services, every backend's defaults.
    fn default() -> Self {
        Self {
            kind: RegistryKind::Static,
            services: BTreeMap::new(),
            health_check: StaticHealthCheckConfig::default(),
            request_timeout_ms: default_request_timeout_ms(),
            etcd: EtcdConfig::default(),
            consul: ConsulConfig::default(),
            kubernetes: KubernetesConfig::default(),
        }
    }
}

fn default_request_timeout_ms() -> u64 {
    5_000
}

/// Health checks of the `static` backend (the remote backends learn about dead instances from
/// their server: an expired lease, a failing Consul check, a pod's readiness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticHealthCheckConfig {
    /// Time between two rounds of probes, in milliseconds; `0` (the default) probes nothing. An
    /// instance that stops answering leaves the healthy set within `interval_ms + timeout_ms`,
    /// and comes back at its first answered probe. Set it when `registry.services` names other
    /// processes; in the all-in-one `platform` every instance lives and dies with the process.
    pub interval_ms: u64,
    /// Longest one probe may take, in milliseconds; below `interval_ms`. A probe asks the
    /// instance's health endpoint (in-process registrations: `/ready`) for a 2xx, or, for an
    /// instance without one (the addresses of `registry.services`), connects to each of its ports.
    pub timeout_ms: u64,
}

impl Default for StaticHealthCheckConfig {
    fn default() -> Self {
        Self {
            interval_ms: 0,
            timeout_ms: 2_000,
        }
    }
}

/// Registry backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryKind {
    /// Addresses from configuration plus in-process registrations (the embedded default).
    Static,
    /// etcd v3: instances are keys under a lease kept alive by the process, watched for changes.
    Etcd,
    /// The local Consul agent: services registered with a health check, found through the health
    /// API with blocking queries.
    Consul,
    /// The EndpointSlices of Kubernetes Services, read with the pod's service account.
    Kubernetes,
}

/// etcd backend settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdConfig {
    /// Client URLs of the etcd members (`http://` or `https://`), tried in order: a request that
    /// cannot reach one goes to the next.
    pub endpoints: Vec<String>,
    /// Key prefix, ending with `/`: an instance is the key `<prefix><service>/<id>`.
    pub prefix: String,
    /// Lifetime of the lease each registered instance's key lives under. The process renews it
    /// every third of this time; an instance whose process stops renewing disappears at most this
    /// long afterwards. etcd raises values below its minimum (about 2 s).
    pub lease_ttl_secs: u64,
}

impl Default for EtcdConfig {
    /// A local etcd, prefix `/keel/services/`, 10 s leases.
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_owned()],
            prefix: "/keel/services/".to_owned(),
            lease_ttl_secs: 10,
        }
    }
}

/// Consul backend settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsulConfig {
    /// The local agent's HTTP API, e.g. `http://127.0.0.1:8500`.
    pub address: String,
    /// ACL token sent as `X-Consul-Token`; empty or absent: none. Secret.
    #[serde(deserialize_with = "optional_secret")]
    pub token: Option<SecretString>,
    /// How often Consul checks an instance's health endpoint; for an instance without one, the TTL
    /// of the check the process keeps passing (every third of it).
    pub check_interval_secs: u64,
    /// How long one HTTP health check may take; at most `check_interval_secs`.
    pub check_timeout_secs: u64,
    /// Consul removes an instance whose check stayed critical this long (at least 60, Consul's
    /// minimum). It leaves the healthy set as soon as the check fails; this only tidies up.
    pub deregister_after_secs: u64,
    /// Longest a blocking query waits for a change before it is renewed (Consul caps it at 600).
    pub wait_secs: u64,
}

impl Default for ConsulConfig {
    /// The local agent without a token, 10 s checks bounded by 2 s, removal after 60 s critical,
    /// 300 s blocking queries.
    fn default() -> Self {
        Self {
            address: "http://127.0.0.1:8500".to_owned(),
            token: None,
            check_interval_secs: 10,
            check_timeout_secs: 2,
            deregister_after_secs: 60,
            wait_secs: 300,
        }
    }
}

/// Kubernetes backend settings. Empty values are taken from the pod's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesConfig {
    /// The API server's URL; empty: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`,
    /// as inside a pod. Set it to e.g. `http://127.0.0.1:8001` to go through `kubectl proxy`.
    pub api_server: String,
    /// Namespace of the Services; empty: the pod's own (from its service account), else `default`.
    pub namespace: String,
    /// Keel service name → Kubernetes Service name, for Services not named like the Keel service.
    pub services: BTreeMap<String, String>,
}

impl PartialEq for ConsulConfig {
    fn eq(&self, other: &Self) -> bool {
        let token = |c: &Self| c.token.as_ref().map(|t| t.expose_secret().to_owned());
        self.address == other.address
            && token(self) == token(other)
            && self.check_interval_secs == other.check_interval_secs
            && self.check_timeout_secs == other.check_timeout_secs
            && self.deregister_after_secs == other.deregister_after_secs
            && self.wait_secs == other.wait_secs
    }
}

/// An optional secret where an empty string means none, so `token: ""` in a file and an empty
/// `KEEL_..._TOKEN` variable both leave it unset.
fn optional_secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SecretString>, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?;
    Ok(value.filter(|v| !v.is_empty()).map(SecretString::from))
}

/// Whether `url` is an `http://` or `https://` URL with something after the scheme.
fn is_http_url(url: &str) -> bool {
    ["http://", "https://"]
        .iter()
        .any(|scheme| url.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty()))
}

impl RegistryConfig {
    /// The rules of this section types cannot express. Every backend's settings are checked,
    /// whichever `kind` is chosen, so a broken section is found before someone switches to it.
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
        check(
            self.request_timeout_ms > 0,
            "registry.request_timeout_ms",
            "must be positive",
        );
        let health = &self.health_check;
        check(
            health.interval_ms == 0 || (1..health.interval_ms).contains(&health.timeout_ms),
            "registry.health_check.timeout_ms",
            "must be positive and below registry.health_check.interval_ms when health checks are on",
        );
        let etcd = &self.etcd;
        check(
            !etcd.endpoints.is_empty() && etcd.endpoints.iter().all(|e| is_http_url(e)),
            "registry.etcd.endpoints",
            "must list at least one http:// or https:// URL",
        );
        check(
            etcd.prefix.len() > 1 && etcd.prefix.ends_with('/'),
            "registry.etcd.prefix",
            "must be a non-empty key prefix ending with `/`, e.g. /keel/services/",
        );
        check(
            etcd.lease_ttl_secs > 0,
            "registry.etcd.lease_ttl_secs",
            "must be positive",
        );
        let consul = &self.consul;
        check(
            is_http_url(&consul.address),
            "registry.consul.address",
            "must be an http:// or https:// URL",
        );
        check(
            consul.check_interval_secs > 0,
            "registry.consul.check_interval_secs",
            "must be positive",
        );
        check(
            consul.check_timeout_secs > 0 && consul.check_timeout_secs <= consul.check_interval_secs,
            "registry.consul.check_timeout_secs",
            "must be positive and at most registry.consul.check_interval_secs",
        );
        check(
            consul.deregister_after_secs >= 60,
            "registry.consul.deregister_after_secs",
            "must be at least 60 (Consul's minimum)",
        );
        check(
            (1..=600).contains(&consul.wait_secs),
            "registry.consul.wait_secs",
            "must be between 1 and 600 (Consul's maximum)",
        );
        check(
            self.kubernetes.api_server.is_empty() || is_http_url(&self.kubernetes.api_server),
            "registry.kubernetes.api_server",
            "must be empty (in-cluster) or an http:// or https:// URL",
        );
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<RegistryConfig, serde_json::Error> {
        serde_json::from_value(json)
    }

    fn violated_keys(config: &RegistryConfig) -> Vec<&'static str> {
        config.violations().iter().map(|v| v.key).collect()
    }

    #[test]
    fn naming_only_the_kind_gives_every_backend_its_defaults() -> Result<(), serde_json::Error> {
        let config = parse(serde_json::json!({"kind": "etcd"}))?;
        assert_eq!(config.kind, RegistryKind::Etcd);
        assert_eq!(config.etcd, EtcdConfig::default());
        assert_eq!(config.consul, ConsulConfig::default());
        assert_eq!(config.kubernetes, KubernetesConfig::default());
        assert_eq!(config.request_timeout_ms, 5_000);
        assert!(violated_keys(&config).is_empty());
        assert!(violated_keys(&RegistryConfig::default()).is_empty());
        Ok(())
    }

    #[test]
    fn every_backend_kind_is_spelt_in_snake_case() -> Result<(), serde_json::Error> {
        for (text, kind) in [
            ("static", RegistryKind::Static),
            ("etcd", RegistryKind::Etcd),
            ("consul", RegistryKind::Consul),
            ("kubernetes", RegistryKind::Kubernetes),
        ] {
            assert_eq!(parse(serde_json::json!({"kind": text}))?.kind, kind);
        }
        assert!(parse(serde_json::json!({"kind": "zookeeper"})).is_err());
        Ok(())
    }

    #[test]
    fn a_misspelt_key_in_a_backend_section_is_refused() {
        let error = parse(serde_json::json!({"kind": "etcd", "etcd": {"lease_ttl": 5}}));
        assert!(error.is_err_and(|e| e.to_string().contains("lease_ttl")));
    }

    #[test]
    fn an_empty_consul_token_means_none_and_a_set_one_stays_secret() -> Result<(), serde_json::Error> {
        let empty = parse(serde_json::json!({"kind": "consul", "consul": {"token": ""}}))?;
        assert!(empty.consul.token.is_none());
        let set = parse(serde_json::json!({"kind": "consul", "consul": {"token": "s3cr3t-acl"}}))?;
        assert_eq!(
            set.consul.token.as_ref().map(|t| t.expose_secret()),
            Some("s3cr3t-acl")
        );
        assert!(!format!("{set:?}").contains("s3cr3t-acl"), "Debug redacts");
        Ok(())
    }

    #[test]
    fn broken_backend_settings_are_reported_by_key() -> Result<(), serde_json::Error> {
        let config = parse(serde_json::json!({
            "kind": "static",
            "request_timeout_ms": 0,
            "etcd": {"endpoints": ["127.0.0.1:2379"], "prefix": "/keel", "lease_ttl_secs": 0},
            "consul": {
                "address": "127.0.0.1:8500", "check_interval_secs": 0, "check_timeout_secs": 5,
                "deregister_after_secs": 30, "wait_secs": 601
            },
            "kubernetes": {"api_server": "kubernetes.default.svc"}
        }))?;
        assert_eq!(
            violated_keys(&config),
            [
                "registry.request_timeout_ms",
                "registry.etcd.endpoints",
                "registry.etcd.prefix",
                "registry.etcd.lease_ttl_secs",
                "registry.consul.address",
                "registry.consul.check_interval_secs",
                "registry.consul.check_timeout_secs",
                "registry.consul.deregister_after_secs",
                "registry.consul.wait_secs",
                "registry.kubernetes.api_server",
            ]
        );
        let no_endpoints = parse(serde_json::json!({"kind": "etcd", "etcd": {"endpoints": []}}))?;
        assert_eq!(violated_keys(&no_endpoints), ["registry.etcd.endpoints"]);
        Ok(())
    }
}
