//! Where the Kubernetes backend finds the API server, its namespace and its credentials: the
//! configuration first, then what Kubernetes gives every pod (the `KUBERNETES_SERVICE_HOST`/`_PORT`
//! variables and the service-account directory with `token`, `ca.crt` and `namespace`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use keel_config::RegistryConfig;

use crate::RegistryError;
use crate::instance::authority;

/// The directory Kubernetes mounts a pod's service-account credentials in.
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const HOST_VARIABLE: &str = "KUBERNETES_SERVICE_HOST";
const PORT_VARIABLE: &str = "KUBERNETES_SERVICE_PORT";

/// What a pod knows about its cluster: the service-account directory and the environment
/// variables Kubernetes sets. [`PodEnvironment::from_process`] reads the real ones; tests build
/// their own.
#[derive(Debug, Clone)]
pub struct PodEnvironment {
    /// The directory holding `token`, `ca.crt` and `namespace`; missing files are simply unused
    /// (e.g. behind `kubectl proxy`, which needs no token).
    pub service_account_dir: PathBuf,
    /// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`, when set.
    pub variables: HashMap<String, String>,
}

impl PodEnvironment {
    /// This process's: the standard service-account directory and its own variables.
    pub fn from_process() -> Self {
        let variables = [HOST_VARIABLE, PORT_VARIABLE]
            .into_iter()
            .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
            .collect();
        Self {
            service_account_dir: PathBuf::from(SERVICE_ACCOUNT_DIR),
            variables,
        }
    }
}

/// The resolved settings of the backend.
#[derive(Debug, Clone)]
pub(super) struct Cluster {
    pub(super) api_server: reqwest::Url,
    pub(super) namespace: String,
    /// Read before every request: Kubernetes rotates projected tokens in place.
    pub(super) token_file: Option<PathBuf>,
    /// The cluster's CA bundle (PEM); when present, the only roots trusted for the API server.
    pub(super) ca_pem: Option<Vec<u8>>,
}

impl Cluster {
    /// `config.kubernetes`, with empty values filled in from `pod`.
    pub(super) fn resolve(config: &RegistryConfig, pod: &PodEnvironment) -> Result<Self, RegistryError> {
        let settings = &config.kubernetes;
        let invalid = |reason: String| RegistryError::InvalidConfig {
            key: "registry.kubernetes.api_server".to_owned(),
            reason,
        };
        let url = if settings.api_server.is_empty() {
            let Some(host) = pod.variables.get(HOST_VARIABLE).filter(|h| !h.is_empty()) else {
                return Err(invalid(format!(
                    "is empty and {HOST_VARIABLE} is not set, so this is not a pod; set the API server's URL \
                     (e.g. http://127.0.0.1:8001 for `kubectl proxy`)"
                )));
            };
            let port = pod.variables.get(PORT_VARIABLE).map_or("443", String::as_str);
            let port: u16 = port
                .parse()
                .map_err(|_| invalid(format!("{PORT_VARIABLE} `{port}` is not a port")))?;
            format!("https://{}", authority(host, port))
        } else {
            settings.api_server.clone()
        };
        let api_server =
            reqwest::Url::parse(&url).map_err(|e| invalid(format!("`{url}` is not a URL: {e}")))?;
        if api_server.cannot_be_a_base() {
            return Err(invalid(format!("`{url}` is not an http(s) URL")));
        }
        let dir = &pod.service_account_dir;
        let namespace = if settings.namespace.is_empty() {
            read(dir, "namespace")
                .map(|n| String::from_utf8_lossy(&n).trim().to_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".to_owned())
        } else {
            settings.namespace.clone()
        };
        let token_file = Some(dir.join("token")).filter(|path| path.is_file());
        Ok(Self {
            api_server,
            namespace,
            token_file,
            ca_pem: read(dir, "ca.crt"),
        })
    }
}

fn read(dir: &Path, name: &str) -> Option<Vec<u8>> {
    std::fs::read(dir.join(name)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(dir: &Path, variables: &[(&str, &str)]) -> PodEnvironment {
        PodEnvironment {
            service_account_dir: dir.to_path_buf(),
            variables: variables
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn in_a_pod_the_api_server_namespace_and_credentials_come_from_kubernetes()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("namespace"), "keel-prod\n")?;
        std::fs::write(dir.path().join("token"), "a-token")?;
        std::fs::write(dir.path().join("ca.crt"), "-----BEGIN CERTIFICATE-----\n")?;
        let cluster = Cluster::resolve(
            &RegistryConfig::default(),
            &pod(
                dir.path(),
                &[(HOST_VARIABLE, "10.96.0.1"), (PORT_VARIABLE, "6443")],
            ),
        )?;
        assert_eq!(cluster.api_server.as_str(), "https://10.96.0.1:6443/");
        assert_eq!(cluster.namespace, "keel-prod");
        assert_eq!(cluster.token_file, Some(dir.path().join("token")));
        assert!(cluster.ca_pem.is_some());
        Ok(())
    }

    #[test]
    fn configuration_wins_and_missing_credentials_are_simply_not_used()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut config = RegistryConfig::default();
        config.kubernetes.api_server = "http://127.0.0.1:8001".to_owned();
        config.kubernetes.namespace = "keel".to_owned();
        let cluster = Cluster::resolve(&config, &pod(dir.path(), &[(HOST_VARIABLE, "10.96.0.1")]))?;
        assert_eq!(cluster.api_server.as_str(), "http://127.0.0.1:8001/");
        assert_eq!(cluster.namespace, "keel");
        assert_eq!((cluster.token_file, cluster.ca_pem), (None, None));

        config.kubernetes.namespace.clear();
        let fallback = Cluster::resolve(&config, &pod(dir.path(), &[]))?;
        assert_eq!(fallback.namespace, "default");
        Ok(())
    }

    #[test]
    fn outside_a_pod_without_an_api_server_the_error_says_what_to_set() {
        let outcome = Cluster::resolve(&RegistryConfig::default(), &pod(Path::new("/nonexistent"), &[]));
        let message = outcome.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            message.starts_with("registry.kubernetes.api_server: is empty and KUBERNETES_SERVICE_HOST"),
            "{message}"
        );
        let ipv6 = Cluster::resolve(
            &RegistryConfig::default(),
            &pod(Path::new("/nonexistent"), &[(HOST_VARIABLE, "fd00::1")]),
        );
        assert_eq!(
            ipv6.map(|c| c.api_server.to_string()).ok().as_deref(),
            Some("https://[fd00::1]/")
        );
    }
}
