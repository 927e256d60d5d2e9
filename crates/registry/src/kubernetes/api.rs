//! The one Kubernetes API resource the backend reads, EndpointSlices (`discovery.k8s.io/v1`),
//! listed and watched by their `kubernetes.io/service-name` label, and how their endpoints become
//! instances. Plain HTTP and JSON with structs of just the fields used, instead of a full client.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::HeaderValue;
use serde::Deserialize;

use super::credentials::Cluster;
use crate::json_lines::JsonLines;
use crate::remote::{chain, unavailable};
use crate::{RegistryError, ServiceInstance};

const BACKEND: &str = "kubernetes";
/// How long the API server keeps a watch open before the follower resumes it (below the
/// server's own 30-60 min cap, so connections are recycled regularly).
const WATCH_SECS: u64 = 290;

/// A client of the API server, reading one namespace.
#[derive(Clone)]
pub(super) struct KubeApi {
    client: reqwest::Client,
    base: reqwest::Url,
    namespace: String,
    token_file: Option<std::path::PathBuf>,
    timeout: Duration,
}

impl KubeApi {
    pub(super) fn new(cluster: Cluster, timeout: Duration) -> Result<Self, RegistryError> {
        let roots = match &cluster.ca_pem {
            Some(pem) => {
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| RegistryError::InvalidConfig {
                    key: "registry.kubernetes".to_owned(),
                    reason: format!("the service account's ca.crt is not a PEM bundle: {e}"),
                })?
            }
            None => Vec::new(),
        };
        let client = crate::remote::http_client(BACKEND, timeout, |builder| {
            if roots.is_empty() {
                builder
            } else {
                builder.tls_certs_only(roots)
            }
        })?;
        Ok(Self {
            client,
            base: cluster.api_server,
            namespace: cluster.namespace,
            token_file: cluster.token_file,
            timeout,
        })
    }

    pub(super) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// GET of the EndpointSlices of the Service `name`, plus `extra` query parameters.
    async fn get(
        &self,
        name: &str,
        extra: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend([
                "apis",
                "discovery.k8s.io",
                "v1",
                "namespaces",
                &self.namespace,
                "endpointslices",
            ]);
        }
        url.query_pairs_mut()
            .append_pair("labelSelector", &format!("kubernetes.io/service-name={name}"))
            .extend_pairs(extra);
        let mut request = self.client.get(url).timeout(timeout);
        if let Some(token) = self.bearer().await? {
            request = request.header(reqwest::header::AUTHORIZATION, token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(BACKEND, format!("endpointslices of `{name}`: {}", chain(&e))))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        Err(unavailable(
            BACKEND,
            format!("endpointslices of `{name}` answered {status}: {text}"),
        ))
    }

    /// `Bearer <token>` from the token file, read now (Kubernetes rotates it in place).
    async fn bearer(&self) -> Result<Option<HeaderValue>, RegistryError> {
        let Some(file) = &self.token_file else {
            return Ok(None);
        };
        let token = tokio::fs::read_to_string(file)
            .await
            .map_err(|e| unavailable(BACKEND, format!("cannot read {}: {e}", file.display())))?;
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
            .map_err(|_| unavailable(BACKEND, format!("{} holds no valid token", file.display())))?;
        value.set_sensitive(true);
        Ok(Some(value))
    }

    /// The Service `name`'s EndpointSlices now, and the resource version to watch from.
    pub(super) async fn list(&self, name: &str) -> Result<EndpointSliceList, RegistryError> {
        let response = self.get(name, &[], self.timeout).await?;
        response
            .json()
            .await
            .map_err(|e| unavailable(BACKEND, format!("endpointslices of `{name}`: {}", chain(&e))))
    }

    /// The changes to the Service `name`'s EndpointSlices after `resource_version`, as a stream of
    /// [`WatchEvent`] lines that the server ends after about [`WATCH_SECS`].
    pub(super) async fn watch(&self, name: &str, resource_version: &str) -> Result<JsonLines, RegistryError> {
        let window = WATCH_SECS.to_string();
        let extra = [
            ("watch", "1"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", window.as_str()),
        ];
        let response = self
            .get(name, &extra, Duration::from_secs(WATCH_SECS) + self.timeout)
            .await?;
        Ok(JsonLines::new(response))
    }
}

/// `GET .../endpointslices` answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct EndpointSliceList {
    pub(super) metadata: Meta,
    pub(super) items: Vec<EndpointSlice>,
}

/// The metadata fields used, of a list or an object.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct Meta {
    pub(super) name: String,
    pub(super) resource_version: String,
}

/// One EndpointSlice: some of a Service's endpoints and the ports they all share.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(super) struct EndpointSlice {
    pub(super) metadata: Meta,
    endpoints: Option<Vec<Endpoint>>,
    ports: Option<Vec<EndpointPort>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Endpoint {
    addresses: Vec<String>,
    conditions: Conditions,
    target_ref: Option<ObjectReference>,
    node_name: Option<String>,
    zone: Option<String>,
}

/// `ready` unset means unknown, which the API says to treat as ready.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct Conditions {
    ready: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct ObjectReference {
    kind: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
struct EndpointPort {
    name: Option<String>,
    port: Option<i32>,
}

/// One line of a watch: `ADDED`, `MODIFIED`, `DELETED` (an EndpointSlice), `BOOKMARK` (only a
/// resource version) or `ERROR` (a Status, e.g. 410 Gone when the version is too old).
#[derive(Debug, Deserialize)]
pub(super) struct WatchEvent {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) object: serde_json::Value,
}

/// The ready endpoints of `slices` as instances of the Keel service `service`, one per address:
/// the id is the address, the ports are the slice's (an unnamed port is `http`), and the pod,
/// node and zone go into the metadata. The first of duplicate addresses (a pod moving between
/// slices) wins.
pub(super) fn instances<'a>(
    service: &str,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<ServiceInstance> {
    let mut found = BTreeMap::new();
    for slice in slices {
        let ports: BTreeMap<String, u16> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = u16::try_from(p.port?).ok().filter(|port| *port > 0)?;
                let name = p.name.clone().filter(|n| !n.is_empty());
                Some((name.unwrap_or_else(|| ServiceInstance::HTTP.to_owned()), port))
            })
            .collect();
        for endpoint in slice.endpoints.iter().flatten() {
            let Some(address) = endpoint.addresses.first() else {
                continue;
            };
            if endpoint.conditions.ready == Some(false) || ports.is_empty() || found.contains_key(address) {
                continue;
            }
            let mut instance = ServiceInstance::new(service, address.clone(), address.clone());
            instance.ports = ports.clone();
            let pod = endpoint
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"));
            let labels = [
                ("pod", pod.and_then(|r| r.name.clone())),
                ("node", endpoint.node_name.clone()),
                ("zone", endpoint.zone.clone()),
            ];
            for (key, value) in labels {
                if let Some(value) = value {
                    instance.metadata.insert(key.to_owned(), value);
                }
            }
            if instance.problem().is_none() {
                found.insert(address.clone(), instance);
            }
        }
    }
    found.into_values().collect()
}
