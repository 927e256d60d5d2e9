//! Small request bodies are read whole before they go upstream (`gateway.upstream.buffer_body_bytes`):
//! the upstream receives head and body in one piece, so an upstream that answers before reading a
//! body keeps its connection and the answer reaches the client, and a body the client does not
//! deliver is the client's error (408, 400), never the upstream's.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use keel_gateway::RouteConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::support::{TestGateway, Upstream, client, read_raw_response};

const HEAD: &str = "POST /api/v1/raw/upload HTTP/1.1\r\nhost: gateway.test\r\ncontent-type: text/plain\r\ncontent-length: 11\r\n\r\n";

/// The declared length of a request whose head is `head`, 0 when it declares none.
fn declared_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

/// An HTTP/1.1 upstream that sends the bytes of the first read of each connection to the test,
/// then reads the rest of the request (head and declared body) and answers `200 ok`.
async fn first_read_upstream() -> anyhow::Result<(u16, mpsc::UnboundedReceiver<Vec<u8>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (reads, first_reads) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let reads = reads.clone();
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut buffer = [0u8; 65536];
                let mut first = true;
                loop {
                    let read = match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => read,
                    };
                    if first {
                        let _ = reads.send(buffer[..read].to_vec());
                        first = false;
                    }
                    received.extend_from_slice(&buffer[..read]);
                    let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&received[..end]).into_owned();
                    if received.len() >= end + 4 + declared_length(&head) {
                        break;
                    }
                }
                let answer = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
                let _ = stream.write_all(answer.as_bytes()).await;
                while let Ok(1..) = stream.read(&mut buffer).await {}
            });
        }
    });
    Ok((port, first_reads))
}

/// A gateway routing `/api/v1/raw` to `service`'s instance on `port`, with `timeout` per route.
async fn gateway_to(service: &str, port: u16, timeout: Duration) -> anyhow::Result<TestGateway> {
    TestGateway::routing_to(
        RouteConfig::new("/api/v1/raw", service).with_timeout(timeout),
        port,
    )
    .await
}

#[tokio::test]
async fn a_small_body_sent_slowly_reaches_the_upstream_whole_with_its_head() -> anyhow::Result<()> {
    let (port, mut first_reads) = first_read_upstream().await?;
    let gateway = gateway_to("raw", port, Duration::from_secs(5)).await?;

    // The client sends the head, then the body a moment later.
    let mut stream = TcpStream::connect(gateway.address).await?;
    stream.write_all(HEAD.as_bytes()).await?;
    stream.flush().await?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    stream.write_all(b"hello world").await?;
    let response = read_raw_response(&mut stream).await?;
    assert_eq!((response.status, response.body.as_str()), (200, "ok"));

    let first = tokio::time::timeout(Duration::from_secs(5), first_reads.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the upstream saw no connection"))?;
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(
        first.starts_with("POST /api/v1/raw/upload HTTP/1.1\r\n") && first.ends_with("\r\n\r\nhello world"),
        "the upstream's first read holds the whole request: {first:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_upstream_that_refuses_a_method_before_reading_the_body_keeps_its_connection() -> anyhow::Result<()>
{
    keel_telemetry::metrics::install();
    // A real axum upstream: its router answers 405 without reading the body.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let router = Router::new().route("/api/v1/raw/only-get", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    let service = keel_testkit::unique_name("strict");
    let gateway = gateway_to(&service, port, Duration::from_secs(5)).await?;

    let client = client();
    let query = http::Method::from_bytes(b"QUERY")?;
    for n in 0..100 {
        let method = match n % 3 {
            0 => http::Method::POST,
            1 => http::Method::PUT,
            _ => query.clone(),
        };
        // Small bodies, and every tenth one just under the 16 KiB default.
        let size = if n % 10 == 9 { 16_000 } else { n };
        let body = serde_json::json!({ "refresh_token": "x".repeat(size) });
        let response = client
            .request(method.clone(), gateway.url("/api/v1/raw/only-get"))
            .json(&body)
            .send()
            .await?;
        assert_eq!(response.status(), 405, "request {n} ({method})");
        assert_eq!(
            response.headers().get("allow").map(|v| v.as_bytes()),
            Some(&b"GET,HEAD"[..])
        );
    }
    let prefix = format!("keel_gateway_upstream_connects_total{{upstream=\"127.0.0.1:{port}\"}} ");
    let connects = keel_telemetry::metrics::install()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()).map(str::to_owned));
    assert_eq!(
        connects.as_deref(),
        Some("1"),
        "one connection carried every refused request"
    );
    Ok(())
}

#[tokio::test]
async fn a_declared_body_that_does_not_arrive_is_408_and_never_reaches_the_upstream() -> anyhow::Result<()> {
    let service = keel_testkit::unique_name("late-body");
    let upstream = Upstream::start("late-body-1").await?;
    let gateway = gateway_to(&service, upstream.port, Duration::from_millis(300)).await?;

    let mut stream = TcpStream::connect(gateway.address).await?;
    stream.write_all(HEAD.as_bytes()).await?;
    stream.write_all(b"hello").await?; // 5 of the 11 bytes declared, then nothing
    let response = read_raw_response(&mut stream).await?;
    assert_eq!(response.status, 408, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("application/problem+json"));
    assert!(
        response.body.contains("did not arrive within 300 ms"),
        "{}",
        response.body
    );
    assert_eq!(upstream.hits(), 0);
    Ok(())
}

#[tokio::test]
async fn a_body_cut_short_by_the_client_is_400_and_never_reaches_the_upstream() -> anyhow::Result<()> {
    let service = keel_testkit::unique_name("short-body");
    let upstream = Upstream::start("short-body-1").await?;
    let gateway = gateway_to(&service, upstream.port, Duration::from_secs(5)).await?;

    let mut stream = TcpStream::connect(gateway.address).await?;
    stream.write_all(HEAD.as_bytes()).await?;
    stream.write_all(b"hello").await?;
    stream.shutdown().await?; // the client stops sending; it can still read
    let response = read_raw_response(&mut stream).await?;
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(
        response
            .body
            .contains("could not be read to its declared Content-Length"),
        "{}",
        response.body
    );
    assert_eq!(upstream.hits(), 0);
    Ok(())
}
