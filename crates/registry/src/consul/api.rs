//! The Consul agent HTTP API calls the backend makes, and how an instance maps to a Consul
//! service and back.
//!
//! A Consul service has one address and one port, a Keel instance has named ports, a version and a
//! health endpoint: those travel in the service's `Meta` under reserved `keel_` keys
//! (`keel_id`, `keel_version`, `keel_health`, `keel_port_<name>`); `Port` is the `http` port (else
//! the first), so Consul's DNS and UI show the REST port. An entry registered by something else
//! (no `keel_` keys) is read with its `Port` as the `http` port.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::remote::{chain, unavailable};
use crate::{RegistryError, ServiceInstance};

const BACKEND: &str = "consul";
/// Prefix of the `Meta` keys Keel reserves for itself.
pub(super) const RESERVED: &str = "keel_";
const META_ID: &str = "keel_id";
const META_VERSION: &str = "keel_version";
const META_HEALTH: &str = "keel_health";
const META_PORT: &str = "keel_port_";

/// A client of one Consul agent.
#[derive(Clone)]
pub(super) struct ConsulApi {
    client: reqwest::Client,
    base: reqwest::Url,
    /// `X-Consul-Token`, marked sensitive so it never shows in logs.
    token: Option<HeaderValue>,
    timeout: Duration,
}

impl ConsulApi {
    /// A client of the agent `config.consul` names (the settings struct is reached through
    /// `RegistryConfig`, which is what keel-config exports).
    pub(super) fn new(
        config: &keel_config::RegistryConfig,
        timeout: Duration,
    ) -> Result<Self, RegistryError> {
        let config = &config.consul;
        let invalid = |key: &str, reason: String| RegistryError::InvalidConfig {
            key: key.to_owned(),
            reason,
        };
        let base = reqwest::Url::parse(&config.address).map_err(|e| {
            invalid(
                "registry.consul.address",
                format!("`{}` is not a URL: {e}", config.address),
            )
        })?;
        if base.cannot_be_a_base() {
            return Err(invalid(
                "registry.consul.address",
                "must be an http(s) URL".to_owned(),
            ));
        }
        let token = match &config.token {
            Some(token) => {
                let mut value = HeaderValue::from_str(token.expose_secret()).map_err(|_| {
                    invalid("registry.consul.token", "is not a valid header value".to_owned())
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(Self {
            client: crate::remote::http_client(BACKEND, timeout, |builder| builder)?,
            base,
            token,
            timeout,
        })
    }

    /// A request to the agent's `segments` (each percent-encoded as needed), with the token.
    fn request(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        query: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url.set_query(query);
        let request = self.client.request(method, url);
        match &self.token {
            Some(token) => request.header("X-Consul-Token", token.clone()),
            None => request,
        }
    }

    /// Registers (or replaces) a service and its check on the agent.
    pub(super) async fn register(&self, service: &ServiceRegistration) -> Result<(), RegistryError> {
        let request = self
            .request(
                reqwest::Method::PUT,
                &["v1", "agent", "service", "register"],
                Some("replace-existing-checks=true"),
            )
            .json(service);
        let (status, text) = self.send(request, self.timeout).await?;
        match status {
            s if s.is_success() => Ok(()),
            reqwest::StatusCode::BAD_REQUEST => Err(RegistryError::InvalidInstance {
                service: service.name.clone(),
                id: service.id.clone(),
                reason: format!("Consul refused it: {}", text.trim()),
            }),
            s => Err(failure("service/register", s, &text)),
        }
    }

    /// Deregisters a service from the agent; one the agent does not know is no error.
    pub(super) async fn deregister(&self, consul_id: &str) -> Result<(), RegistryError> {
        let request = self.request(
            reqwest::Method::PUT,
            &["v1", "agent", "service", "deregister", consul_id],
            None,
        );
        match self.send(request, self.timeout).await? {
            (s, _) if s.is_success() || s == reqwest::StatusCode::NOT_FOUND => Ok(()),
            (s, text) => Err(failure("service/deregister", s, &text)),
        }
    }

    /// Marks a TTL check passing. `Ok(false)` when the agent does not know the check (it restarted
    /// without its state, or removed the service), so the caller registers the service again.
    pub(super) async fn pass(&self, check_id: &str) -> Result<bool, RegistryError> {
        let request = self.request(
            reqwest::Method::PUT,
            &["v1", "agent", "check", "pass", check_id],
            None,
        );
        match self.send(request, self.timeout).await? {
            (s, _) if s.is_success() => Ok(true),
            // 404 from current agents, 500 "Unknown check ..." from older ones.
            (s, text) if s == reqwest::StatusCode::NOT_FOUND || text.contains("Unknown check") => Ok(false),
            (s, text) => Err(failure("check/pass", s, &text)),
        }
    }

    /// The instances of `service` whose checks all pass, and the `X-Consul-Index` of the answer.
    /// With `block = Some((index, wait))`, a blocking query: the agent answers when the result
    /// changes past `index`, or after about `wait`.
    pub(super) async fn healthy(
        &self,
        service: &str,
        block: Option<(u64, Duration)>,
    ) -> Result<(Vec<HealthEntry>, u64), RegistryError> {
        let (query, timeout) = match block {
            // Consul adds up to wait/16 of jitter; allow for it and for the answer itself.
            Some((index, wait)) => (
                format!("passing&index={index}&wait={}s", wait.as_secs()),
                wait + wait / 16 + self.timeout,
            ),
            None => ("passing".to_owned(), self.timeout),
        };
        let request = self.request(
            reqwest::Method::GET,
            &["v1", "health", "service", service],
            Some(&query),
        );
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status();
        let index = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let text = response.text().await.map_err(|e| unreachable(&e))?;
        if !status.is_success() {
            return Err(failure("health/service", status, &text));
        }
        let entries = serde_json::from_str::<Option<Vec<HealthEntry>>>(&text)
            .map_err(|e| unavailable(BACKEND, format!("health/service answered {e}")))?;
        Ok((entries.unwrap_or_default(), index))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<(reqwest::StatusCode, String), RegistryError> {
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| unreachable(&e))?;
        Ok((status, text))
    }
}

fn unreachable(error: &reqwest::Error) -> RegistryError {
    unavailable(BACKEND, chain(error))
}

fn failure(call: &str, status: reqwest::StatusCode, text: &str) -> RegistryError {
    let text: String = text.trim().chars().take(200).collect();
    unavailable(BACKEND, format!("{call} answered {status}: {text}"))
}

/// The body of `PUT /v1/agent/service/register`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ServiceRegistration {
    #[serde(rename = "ID")]
    pub(super) id: String,
    pub(super) name: String,
    pub(super) address: String,
    pub(super) port: u16,
    pub(super) meta: BTreeMap<String, String>,
    pub(super) check: Check,
}

/// The service's one check: an HTTP check of its health endpoint, or a TTL check its process
/// keeps passing. Both start passing (as every backend counts a new instance healthy) and get the
/// service removed once critical for `DeregisterCriticalServiceAfter`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Check {
    #[serde(rename = "CheckID")]
    pub(super) check_id: String,
    pub(super) name: &'static str,
    #[serde(rename = "HTTP", skip_serializing_if = "Option::is_none")]
    pub(super) http: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) timeout: Option<String>,
    #[serde(rename = "TTL", skip_serializing_if = "Option::is_none")]
    pub(super) ttl: Option<String>,
    pub(super) status: &'static str,
    pub(super) deregister_critical_service_after: String,
}

/// How Consul checks instances.
#[derive(Debug, Clone, Copy)]
pub(super) struct CheckSettings {
    pub(super) interval: Duration,
    pub(super) timeout: Duration,
    pub(super) deregister_after: Duration,
}

/// The Consul service id of an instance: ids are unique per agent, Keel's only per service.
pub(super) fn consul_id(service: &str, instance_id: &str) -> String {
    format!("{service}:{instance_id}")
}

/// The id of the check of the service `consul_id` (Consul's own convention for service checks).
pub(super) fn check_id(consul_id: &str) -> String {
    format!("service:{consul_id}")
}

/// `instance` as a Consul service with its check.
pub(super) fn registration(instance: &ServiceInstance, settings: CheckSettings) -> ServiceRegistration {
    let id = consul_id(&instance.service, &instance.id);
    let secs = |d: Duration| format!("{}s", d.as_secs().max(1));
    let http_check = instance.health_endpoint.as_ref().and_then(|path| {
        let authority = instance.endpoint(ServiceInstance::HTTP)?;
        Some(format!("http://{authority}{path}"))
    });
    let check = Check {
        check_id: check_id(&id),
        name: if http_check.is_some() {
            "Keel health endpoint"
        } else {
            "Keel heartbeat"
        },
        interval: http_check.as_ref().map(|_| secs(settings.interval)),
        timeout: http_check.as_ref().map(|_| secs(settings.timeout)),
        ttl: http_check.is_none().then(|| secs(settings.interval)),
        http: http_check,
        status: "passing",
        deregister_critical_service_after: secs(settings.deregister_after),
    };
    let mut meta = instance.metadata.clone();
    meta.insert(META_ID.to_owned(), instance.id.clone());
    if let Some(version) = &instance.version {
        meta.insert(META_VERSION.to_owned(), version.clone());
    }
    if let Some(path) = &instance.health_endpoint {
        meta.insert(META_HEALTH.to_owned(), path.clone());
    }
    for (name, port) in &instance.ports {
        meta.insert(format!("{META_PORT}{name}"), port.to_string());
    }
    let port = instance
        .port(ServiceInstance::HTTP)
        .or_else(|| instance.ports.values().next().copied())
        .unwrap_or_default();
    ServiceRegistration {
        id,
        name: instance.service.clone(),
        address: instance.host.clone(),
        port,
        meta,
        check,
    }
}

/// One element of `GET /v1/health/service/<name>`: the node and the service on it (the checks,
/// all passing with `?passing`, are not needed).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct HealthEntry {
    node: Node,
    service: AgentService,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Node {
    #[serde(default)]
    address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentService {
    #[serde(rename = "ID")]
    id: String,
    service: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
}

impl HealthEntry {
    /// The instance this entry describes; `None` (with a warning) when it makes no valid instance.
    pub(super) fn instance(self) -> Option<ServiceInstance> {
        let AgentService {
            id,
            service,
            address,
            port,
            meta,
        } = self.service;
        let mut meta = meta.unwrap_or_default();
        let host = if address.is_empty() {
            self.node.address
        } else {
            address
        };
        let id = meta.remove(META_ID).unwrap_or(id);
        let mut instance = ServiceInstance::new(service, id, host);
        instance.version = meta.remove(META_VERSION);
        instance.health_endpoint = meta.remove(META_HEALTH);
        for (key, value) in meta {
            if let Some(name) = key.strip_prefix(META_PORT) {
                if let Ok(port) = value.parse() {
                    instance.ports.insert(name.to_owned(), port);
                }
            } else if !key.starts_with(RESERVED) {
                instance.metadata.insert(key, value);
            }
        }
        if instance.ports.is_empty() && port > 0 {
            instance.ports.insert(ServiceInstance::HTTP.to_owned(), port);
        }
        match instance.problem() {
            None => Some(instance),
            Some(problem) => {
                tracing::warn!(service = %instance.service, instance = %instance.id, %problem, "invalid Consul entry skipped");
                None
            }
        }
    }
}
