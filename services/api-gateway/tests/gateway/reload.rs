//! Reloading the route table: new routes and policies apply to the next request, on the same
//! client connection, and a bad configuration changes nothing.

use std::time::Duration;

use keel_gateway::{AuthPolicy, GatewayConfig, RouteConfig};
use keel_registry::StaticRegistry;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{TestGateway, Upstream};

/// Sends `GET path` on `stream` (keep-alive) and returns the status of the response, reading its
/// `content-length` body so the connection is ready for the next request.
async fn get_on(stream: &mut TcpStream, path: &str) -> anyhow::Result<u16> {
    let request = format!("GET {path} HTTP/1.1\r\nhost: gateway.test\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = Duration::from_secs(5);
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map(|value| value.trim().parse())
                .transpose()?
                .unwrap_or(0);
            while received.len() < end + 4 + length {
                let read = tokio::time::timeout(deadline, stream.read(&mut buffer)).await??;
                anyhow::ensure!(read > 0, "connection closed in the body");
                received.extend_from_slice(&buffer[..read]);
            }
            let status = head
                .split_whitespace()
                .nth(1)
                .ok_or_else(|| anyhow::anyhow!("no status in {head}"))?
                .parse()?;
            return Ok(status);
        }
        let read = tokio::time::timeout(deadline, stream.read(&mut buffer)).await??;
        anyhow::ensure!(read > 0, "the gateway closed the connection");
        received.extend_from_slice(&buffer[..read]);
    }
}

#[tokio::test]
async fn a_reload_applies_new_routes_and_policies_to_the_next_request_on_the_same_connection()
-> anyhow::Result<()> {
    let first = Upstream::start("first-1").await?;
    let second = Upstream::start("second-1").await?;
    let registry = StaticRegistry::new();
    let gateway = TestGateway::start(vec![RouteConfig::new("/a", "first")], registry).await?;
    gateway.add("first", &first).await?;
    gateway.add("second", &second).await?;
    let mut connection = TcpStream::connect(gateway.address).await?;
    assert_eq!(get_on(&mut connection, "/a/x").await?, 200);
    assert_eq!(get_on(&mut connection, "/b/x").await?, 404);

    let reloaded = GatewayConfig::new(vec![
        RouteConfig::new("/a", "first").with_auth(AuthPolicy::Required),
        RouteConfig::new("/b", "second"),
    ]);
    gateway.gateway.reload(&reloaded).await?;

    assert_eq!(get_on(&mut connection, "/b/x").await?, 200, "the new route");
    assert_eq!(get_on(&mut connection, "/a/x").await?, 401, "the new policy");
    assert_eq!(second.hits(), 1);
    assert_eq!(first.hits(), 1, "the refused request never reached the upstream");
    Ok(())
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_and_the_routes_stay_as_they_were() -> anyhow::Result<()> {
    let upstream = Upstream::start("first-1").await?;
    let registry = StaticRegistry::new();
    let gateway = TestGateway::start(vec![RouteConfig::new("/a", "first")], registry).await?;
    gateway.add("first", &upstream).await?;

    let broken = GatewayConfig::new(vec![
        RouteConfig::new("/a", "first"),
        RouteConfig::new("/a", "second"),
    ]);
    let error = gateway.gateway.reload(&broken).await.err().map(|e| e.to_string());
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .contains("gateway.routes[1].prefix"),
        "{error:?}"
    );
    let mut connection = TcpStream::connect(gateway.address).await?;
    assert_eq!(get_on(&mut connection, "/a/x").await?, 200);
    Ok(())
}
