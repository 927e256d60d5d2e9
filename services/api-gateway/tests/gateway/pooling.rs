//! The upstream connection pools: kept-alive connections are reused, and a connection that can
//! no longer carry a request (closed by the upstream, abandoned mid-body, idle too long) is never
//! the reason a request fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel_gateway::{GatewayConfig, RouteConfig};
use keel_registry::{ServiceInstance, ServiceRegistry, StaticRegistry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{TestGateway, Upstream, client, get_echo};

const CONNECTS: &str = "keel_gateway_upstream_connects_total";
const OPEN: &str = "keel_gateway_upstream_connections";

/// The value of `name{upstream="127.0.0.1:<port>"}` in the process's metrics, if present.
fn per_upstream(name: &str, port: u16) -> Option<String> {
    let prefix = format!("{name}{{upstream=\"127.0.0.1:{port}\"}} ");
    keel_telemetry::metrics::install()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()).map(str::to_owned))
}

/// An HTTP/1.1 upstream that answers one request per connection with a keep-alive response (no
/// `Connection: close`) and then closes the connection, as a server with a very short keep-alive
/// timeout does. Counts the connections it accepted.
async fn closing_upstream() -> anyhow::Result<(u16, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut buffer = [0u8; 4096];
                while !received.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => received.extend_from_slice(&buffer[..n]),
                    }
                }
                let answer = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok((port, accepted))
}

#[tokio::test]
async fn an_upstream_that_closes_kept_alive_connections_fails_no_request() -> anyhow::Result<()> {
    let (port, accepted) = closing_upstream().await?;
    let gateway = TestGateway::start(
        vec![RouteConfig::new("/api/v1/closing", "closing")],
        StaticRegistry::new(),
    )
    .await?;
    let instance = ServiceInstance::new("closing", "closing-1", "127.0.0.1")
        .with_port(ServiceInstance::HTTP, port)
        .with_port(ServiceInstance::GRPC, 1);
    let _ = gateway.registry.register(instance).await?;
    for n in 0..5 {
        let response = client().get(gateway.url("/api/v1/closing")).send().await?;
        assert_eq!(response.status(), 200, "request {n}");
        assert_eq!(response.text().await?, "ok");
        // Time for the close to arrive, as it would between two real requests.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5, "one connection per request");
    Ok(())
}

#[tokio::test]
async fn a_response_abandoned_mid_body_closes_its_connection_and_the_next_request_passes()
-> anyhow::Result<()> {
    keel_telemetry::metrics::install();
    let service = keel_testkit::unique_name("abandoned");
    let upstream = Upstream::start("abandoned-1").await?;
    let gateway = TestGateway::start(
        vec![RouteConfig::new("/api/v1/abandoned", &service)],
        StaticRegistry::new(),
    )
    .await?;
    gateway.add(&service, &upstream).await?;

    // The stream endpoint sends its first chunk, then waits: read that chunk and hang up.
    let mut response = client()
        .get(gateway.url("/api/v1/abandoned/stream"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(5), response.chunk()).await??;
    assert_eq!(first.as_deref(), Some(&b"first\n"[..]));
    drop(response);

    for _ in 0..3 {
        let echo = get_echo(&gateway.url("/api/v1/abandoned/after")).await?;
        assert_eq!(echo.path, "/api/v1/abandoned/after");
    }
    let connects = per_upstream(CONNECTS, upstream.port);
    assert_eq!(
        connects.as_deref(),
        Some("2"),
        "the abandoned connection, then one kept alive for the three requests"
    );
    Ok(())
}

#[tokio::test]
async fn a_connection_idle_longer_than_the_pool_timeout_is_closed() -> anyhow::Result<()> {
    keel_telemetry::metrics::install();
    let service = keel_testkit::unique_name("idle");
    let upstream = Upstream::start("idle-1").await?;
    let mut config = GatewayConfig::new(vec![RouteConfig::new("/api/v1/idle", &service)]);
    config.upstream.pool_idle_timeout_ms = 200;
    let gateway = TestGateway::start_with(config, StaticRegistry::new()).await?;
    gateway.add(&service, &upstream).await?;

    get_echo(&gateway.url("/api/v1/idle")).await?;
    let open = || per_upstream(OPEN, upstream.port);
    let mut closed = false;
    for _ in 0..100 {
        if open().as_deref() == Some("0") {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the idle connection is still open: {:?}", open());
    get_echo(&gateway.url("/api/v1/idle")).await?;
    let connects = per_upstream(CONNECTS, upstream.port);
    assert_eq!(
        connects.as_deref(),
        Some("2"),
        "a new connection after the idle one closed"
    );
    Ok(())
}
