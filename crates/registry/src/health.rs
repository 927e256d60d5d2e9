//! Health checks for backends that do not have their own: whether an instance still answers.
//!
//! Remote backends learn about dead instances from the backend itself (an etcd lease that is not
//! kept alive expires, Consul runs the check, Kubernetes uses the pod's readiness probe). The
//! static backend has nobody to ask, so it probes its instances itself with a [`Probe`], every
//! [`HealthCheckSettings::interval`]; see [`crate::StaticRegistry::spawn_health_checks`].

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::ServiceInstance;

/// Asks one instance whether it can serve.
#[async_trait]
pub trait Probe: Send + Sync {
    /// `Ok` when the instance answers as a healthy one; `Err` with a reason for operators. The
    /// caller bounds the call by [`HealthCheckSettings::timeout`], so a probe need not.
    async fn probe(&self, instance: &ServiceInstance) -> Result<(), String>;
}

/// How often instances are probed and how long one probe may take.
///
/// A dead instance leaves the healthy set at most `interval + timeout` after it stops answering.
/// One failed probe removes an instance; one successful probe brings it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthCheckSettings {
    /// Time between the starts of two rounds of probes (the first round starts at once).
    pub interval: Duration,
    /// Longest a probe may take before it counts as failed. Keep it below `interval`.
    pub timeout: Duration,
}

impl Default for HealthCheckSettings {
    /// Every 5 s, each probe bounded by 2 s.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
        }
    }
}

/// The default probe: `GET` the instance's health endpoint on its `http` port and expect 2xx; an
/// instance without a health endpoint must accept a TCP connection on every port.
///
/// Connections are not reused, so every probe tests that the instance still accepts new ones.
#[derive(Clone)]
pub struct HttpProbe {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for HttpProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProbe").finish_non_exhaustive()
    }
}

impl Default for HttpProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpProbe {
    /// A probe with its own HTTP/1 client.
    pub fn new() -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        Self { client }
    }

    async fn get(&self, authority: &str, path: &str) -> Result<(), String> {
        let url = format!("http://{authority}{path}");
        let uri = url
            .parse::<http::Uri>()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        match self.client.get(uri).await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("GET {url} answered {}", response.status())),
            Err(error) => Err(format!("GET {url} failed: {}", chain(&error))),
        }
    }
}

#[async_trait]
impl Probe for HttpProbe {
    async fn probe(&self, instance: &ServiceInstance) -> Result<(), String> {
        let http = instance.endpoint(ServiceInstance::HTTP);
        if let (Some(path), Some(authority)) = (&instance.health_endpoint, http) {
            return self.get(&authority, path).await;
        }
        for (name, port) in &instance.ports {
            if let Err(error) = tokio::net::TcpStream::connect((instance.host.as_str(), *port)).await {
                return Err(format!("cannot connect to {name} port {port}: {error}"));
            }
        }
        Ok(())
    }
}

/// An error and its causes on one line: hyper's top-level message alone ("client error
/// (Connect)") does not say what happened.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server answering every connection with `status_line` and recording the request line.
    async fn http_server(
        status_line: &'static str,
    ) -> std::io::Result<(u16, tokio::sync::mpsc::Receiver<String>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (requests, received) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = vec![0; 4096];
                let read = stream.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..read]);
                let _ = requests
                    .send(request.lines().next().unwrap_or_default().to_owned())
                    .await;
                let response =
                    format!("HTTP/1.1 {status_line}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        Ok((port, received))
    }

    /// A port that nothing listens on (bound, then released).
    async fn closed_port() -> std::io::Result<u16> {
        Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port())
    }

    fn instance(http: u16) -> ServiceInstance {
        ServiceInstance::new("identity", "identity-1", "127.0.0.1").with_port("http", http)
    }

    #[tokio::test]
    async fn an_instance_whose_health_endpoint_answers_2xx_is_healthy() -> std::io::Result<()> {
        let (port, mut requests) = http_server("200 OK").await?;
        let outcome = HttpProbe::new()
            .probe(&instance(port).with_health_endpoint("/ready"))
            .await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(requests.recv().await.as_deref(), Some("GET /ready HTTP/1.1"));
        Ok(())
    }

    #[tokio::test]
    async fn an_instance_whose_health_endpoint_answers_503_is_unhealthy() -> std::io::Result<()> {
        let (port, _requests) = http_server("503 Service Unavailable").await?;
        let outcome = HttpProbe::new()
            .probe(&instance(port).with_health_endpoint("/ready"))
            .await;
        let reason = outcome.err().unwrap_or_default();
        assert!(reason.contains("/ready answered 503"), "{reason}");
        Ok(())
    }

    #[tokio::test]
    async fn an_instance_that_refuses_connections_is_unhealthy_with_or_without_a_health_endpoint()
    -> std::io::Result<()> {
        let port = closed_port().await?;
        let with = HttpProbe::new()
            .probe(&instance(port).with_health_endpoint("/ready"))
            .await;
        assert!(
            with.as_ref().is_err_and(|reason| reason.contains("failed")),
            "{with:?}"
        );
        let without = HttpProbe::new().probe(&instance(port)).await;
        assert!(
            without
                .as_ref()
                .is_err_and(|reason| reason.contains("cannot connect to http port")),
            "{without:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn without_a_health_endpoint_accepting_connections_on_every_port_is_healthy() -> std::io::Result<()>
    {
        let (http, _) = http_server("200 OK").await?;
        let (grpc, _) = http_server("200 OK").await?;
        assert_eq!(
            HttpProbe::new()
                .probe(&instance(http).with_port("grpc", grpc))
                .await,
            Ok(())
        );
        let closed = closed_port().await?;
        assert!(
            HttpProbe::new()
                .probe(&instance(http).with_port("grpc", closed))
                .await
                .is_err()
        );
        Ok(())
    }
}
