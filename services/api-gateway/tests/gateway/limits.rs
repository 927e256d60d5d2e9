//! What a client may send: body size per route (413), header count and size (431), how long it
//! may take over its request head or stay idle (`http.header_read_timeout_ms`), and the protocols
//! it may speak (HTTP/1.1 and HTTP/2 with prior knowledge).

use bytes::Bytes;
use futures_util::StreamExt;
use keel_gateway::{GatewayConfig, RouteConfig};
use keel_registry::StaticRegistry;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Echo, TestGateway, Upstream, client, problem, raw_exchange, read_raw_response};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// One MiB of payload, shared by every chunk of a generated upload.
static CHUNK: [u8; MIB] = [b'k'; MIB];

/// `chunks` MiB, generated as they are sent (never held in memory).
fn generated(chunks: usize) -> reqwest::Body {
    let stream =
        futures_util::stream::iter(0..chunks).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(&CHUNK)));
    reqwest::Body::wrap_stream(stream)
}

/// A gateway whose routes default to a 10 KiB body limit, with `/api/v1/big` allowed 200 MiB and
/// `/api/v1/tiny` 1 KiB.
async fn limited_gateway() -> anyhow::Result<(TestGateway, Upstream)> {
    let upstream = Upstream::start("files-1").await?;
    let config = GatewayConfig::new(vec![
        RouteConfig::new("/api/v1/files", "files"),
        RouteConfig::new("/api/v1/big", "files")
            .with_body_limit(200 * MIB as u64)
            .with_timeout(std::time::Duration::from_secs(60)),
        RouteConfig::new("/api/v1/tiny", "files").with_body_limit(KIB as u64),
    ])
    .with_body_limit(10 * KIB as u64);
    let gateway = TestGateway::start_with(config, StaticRegistry::new()).await?;
    gateway.add("files", &upstream).await?;
    Ok((gateway, upstream))
}

#[tokio::test]
async fn a_declared_body_over_the_route_limit_is_413_before_the_upstream_is_called() -> anyhow::Result<()> {
    let (gateway, upstream) = limited_gateway().await?;
    for (path, size, limit) in [
        ("/api/v1/files/count", 11 * KIB, 10 * KIB),
        ("/api/v1/tiny/count", 2 * KIB, KIB),
    ] {
        let response = client()
            .post(gateway.url(path))
            .body(vec![b'x'; size])
            .send()
            .await?;
        assert_eq!(response.status(), 413, "{path}");
        let body = problem(response).await?;
        assert_eq!(body["type"], "urn:keel:problem:payload-too-large");
        assert_eq!(
            body["detail"],
            format!("the request body exceeds the limit of {limit} bytes")
        );
    }
    assert_eq!(upstream.hits(), 0);

    let within = client()
        .post(gateway.url("/api/v1/files/count"))
        .body(vec![b'x'; 10 * KIB])
        .send()
        .await?;
    assert_eq!(within.status(), 200);
    Ok(())
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_413_and_the_upstream_never_gets_more_than_the_limit()
-> anyhow::Result<()> {
    let (gateway, upstream) = limited_gateway().await?;
    let chunks = futures_util::stream::iter(0..1280)
        .map(|_| Ok::<_, std::io::Error>(Bytes::from_static(&CHUNK[..4 * KIB])));
    let response = client()
        .post(gateway.url("/api/v1/files/count"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await?;
    assert_eq!(response.status(), 413);
    let body = problem(response).await?;
    assert_eq!(body["type"], "urn:keel:problem:payload-too-large");
    let received = upstream
        .signals
        .bytes_received
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(received <= 10 * KIB, "the upstream received {received} bytes");
    Ok(())
}

#[tokio::test]
async fn a_route_with_a_large_limit_streams_a_100_mib_upload_past_the_default_limit() -> anyhow::Result<()> {
    let (gateway, upstream) = limited_gateway().await?;
    let response = client()
        .post(gateway.url("/api/v1/big/count"))
        .header("content-length", (100 * MIB).to_string())
        .body(generated(100))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let counted: serde_json::Value = response.json().await?;
    assert_eq!(counted["bytes"], 100 * MIB);
    assert_eq!(upstream.hits(), 1);
    Ok(())
}

/// A raw HTTP/1.1 GET of the echo route with `fields` extra headers of `value`.
fn head_with(fields: usize, value: &str) -> String {
    let mut head = vec![
        "GET /api/v1/files HTTP/1.1".to_owned(),
        "host: localhost".to_owned(),
    ];
    head.extend((0..fields).map(|i| format!("x-filler-{i}: {value}")));
    head.push("connection: close".to_owned());
    head.join("\r\n")
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_431_problems() -> anyhow::Result<()> {
    let (gateway, upstream) = limited_gateway().await?;
    let response = raw_exchange(gateway.address, &head_with(120, "1")).await?;
    assert_eq!(response.status, 431);
    assert_eq!(response.header("content-type"), Some("application/problem+json"));
    assert!(
        response.body.contains("more than 100 header fields"),
        "{}",
        response.body
    );

    let large = "v".repeat(40 * KIB);
    let response = raw_exchange(gateway.address, &head_with(1, &large)).await?;
    assert_eq!(response.status, 431);
    assert!(
        response.body.contains("exceed the limit of 32768 bytes"),
        "{}",
        response.body
    );

    let response = raw_exchange(gateway.address, &head_with(90, "1")).await?;
    assert_eq!(response.status, 200, "within the limits");
    assert_eq!(upstream.hits(), 1);
    Ok(())
}

#[tokio::test]
async fn far_too_many_headers_are_refused_by_the_server_before_the_gateway() -> anyhow::Result<()> {
    let (gateway, upstream) = limited_gateway().await?;
    let response = raw_exchange(gateway.address, &head_with(400, "1")).await?;
    assert_eq!(response.status, 431);
    assert_eq!(upstream.hits(), 0);
    Ok(())
}

#[tokio::test]
async fn a_client_speaking_http2_with_prior_knowledge_is_proxied() -> anyhow::Result<()> {
    let (gateway, _upstream) = limited_gateway().await?;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()?;
    let response = h2.get(gateway.url("/api/v1/files/a?b=c")).send().await?;
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let echo: Echo = response.json().await?;
    assert_eq!(
        (echo.path.as_str(), echo.query.as_deref()),
        ("/api/v1/files/a", Some("b=c"))
    );
    let host = format!("127.0.0.1:{}", gateway.address.port());
    assert_eq!(echo.header("x-forwarded-host"), Some(host.as_str()));

    let response = h2
        .post(gateway.url("/api/v1/big/count"))
        .body(generated(3))
        .send()
        .await?;
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let counted: serde_json::Value = response.json().await?;
    assert_eq!(counted["bytes"], 3 * MIB, "a streamed body over HTTP/2");

    let response = h2
        .post(gateway.url("/api/v1/tiny/count"))
        .body(generated(1))
        .send()
        .await?;
    assert_eq!(response.status(), 413, "and its limit");
    Ok(())
}

/// Waits up to 5 s for the server to close `stream`; what it sent before closing.
async fn closed_by_server(stream: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut rest = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await {
        Ok(Ok(_)) => Ok(rest),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionReset => Ok(rest),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => anyhow::bail!("the connection is still open after 5 s"),
    }
}

#[tokio::test]
async fn a_client_slower_than_the_header_timeout_is_cut_off_and_an_idle_one_closed() -> anyhow::Result<()> {
    let upstream = Upstream::start("files-1").await?;
    let http = keel_testkit::test_config(&[("KEEL_HTTP__HEADER_READ_TIMEOUT_MS", "200")])
        .kernel()
        .http
        .clone();
    let mut config = GatewayConfig::new(vec![RouteConfig::new("/api/v1/files", "files")]);
    // As `TestGateway::start_with` does: both ways of serving, by the test run's setting.
    if std::env::var("KEEL_TEST_GATEWAY_FAST_PATH").as_deref() == Ok("off") {
        config.fast_path = false;
    }
    let gateway = TestGateway::start_served(config, StaticRegistry::new(), None, http).await?;
    gateway.add("files", &upstream).await?;

    // Half a head, then nothing: the connection is closed and nothing reaches the upstream.
    let mut slow = TcpStream::connect(gateway.address).await?;
    slow.write_all(b"GET /api/v1/files/count HTTP/1.1\r\nhost: keel\r\n")
        .await?;
    let sent = closed_by_server(&mut slow).await?;
    assert!(
        sent.is_empty() || sent.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&sent)
    );
    assert_eq!(upstream.hits(), 0);

    // A kept-alive connection is answered, then closed once idle for as long.
    let mut idle = TcpStream::connect(gateway.address).await?;
    idle.write_all(b"GET /api/v1/files/count HTTP/1.1\r\nhost: keel\r\n\r\n")
        .await?;
    let answered = read_raw_response(&mut idle).await?;
    assert_eq!(answered.status, 200);
    let after = closed_by_server(&mut idle).await?;
    assert!(after.is_empty(), "{}", String::from_utf8_lossy(&after));
    assert_eq!(upstream.hits(), 1);
    Ok(())
}
