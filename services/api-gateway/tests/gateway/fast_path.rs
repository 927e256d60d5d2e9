//! The HTTP/1.1 fast path (`gateway.fast_path`, the `fast_path` module): the framings of upstream
//! responses it relays itself, its upstream connection reuse, and the hand-over of a client
//! connection to the general stack at the first request it does not serve, and that its answers'
//! heads are the ones the general stack gives. Everything else the gateway promises is tested by
//! the other files, whose plain requests take this path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::bail;
use keel_gateway::{GatewayConfig, RateClassConfig, RateLimitConfig, RouteConfig};
use keel_ratelimit::{InMemoryRateLimiter, RateLimiter};
use keel_registry::{ServiceInstance, ServiceRegistry, StaticRegistry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{TestGateway, Upstream, client, default_http, read_raw_response};

/// The canned response a [`canned_upstream`] gives to a request for `path`, and whether it closes
/// the connection after it.
fn canned(path: &str, method: &str) -> (&'static str, bool) {
    match path {
        "/canned/chunked" => (
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;note=x\r\n world\r\n0\r\nx-checksum: 1\r\n\r\n",
            false,
        ),
        "/canned/until-close" => (
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end",
            true,
        ),
        "/canned/head" if method == "HEAD" => ("HTTP/1.1 200 OK\r\ncontent-length: 42\r\n\r\n", false),
        "/canned/no-content" => ("HTTP/1.1 204 No Content\r\nx-kind: none\r\n\r\n", false),
        "/canned/early-hints" => (
            "HTTP/1.1 103 Early Hints\r\nlink: </style.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal",
            false,
        ),
        "/canned/conflicting-length" => ("HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\nhello", true),
        "/canned/switching" => ("HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n", true),
        "/canned/bad-chunks" => (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello and more\r\n0\r\n\r\n",
            true,
        ),
        "/canned/keep-closing" => (
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
            true,
        ),
        "/canned/stamped" => (
            "HTTP/1.1 200 Fine Thanks\r\nX-Frame-Options: SAMEORIGIN\r\nX-Request-ID: upstream-id\r\nX-RateLimit-Limit: 1\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok",
            false,
        ),
        "/canned/not-modified" => (
            "HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 5\r\n\r\n",
            false,
        ),
        _ => ("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false),
    }
}

/// A raw HTTP/1.1 upstream answering [`canned`] responses to body-less requests; counts the
/// connections it accepted.
async fn canned_upstream() -> anyhow::Result<(u16, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut received = Vec::new();
                let mut buffer = [0_u8; 4096];
                loop {
                    let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => received.extend_from_slice(&buffer[..read]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&received[..end]).into_owned();
                    received.drain(..end + 4);
                    let mut words = head.split(' ');
                    let method = words.next().unwrap_or_default().to_owned();
                    let path = words.next().unwrap_or_default().to_owned();
                    let (response, close) = canned(&path, &method);
                    if stream.write_all(response.as_bytes()).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    Ok((port, accepted))
}

/// A gateway routing `/canned` to the upstream on `port`, with its fast path on or off.
async fn canned_gateway_with(port: u16, fast_path: bool) -> anyhow::Result<TestGateway> {
    let mut config = GatewayConfig::new(vec![RouteConfig::new("/canned", "canned")]);
    config.fast_path = fast_path;
    let gateway = TestGateway::start_served(config, StaticRegistry::new(), None, default_http()).await?;
    let instance = ServiceInstance::new("canned", "canned-1", "127.0.0.1")
        .with_port(ServiceInstance::HTTP, port)
        .with_port(ServiceInstance::GRPC, 1);
    let _ = gateway.registry.register(instance).await?;
    Ok(gateway)
}

/// [`canned_gateway_with`] with a rate limit (100 a minute per address, in memory) on its route.
async fn canned_gateway_limited(port: u16, fast_path: bool) -> anyhow::Result<TestGateway> {
    let class = RateClassConfig {
        per_user: "100/minute".parse()?,
        per_ip: "100/minute".parse()?,
    };
    let mut limits = RateLimitConfig::default();
    limits.classes = BTreeMap::from([("default".to_owned(), class)]);
    let mut config = GatewayConfig::new(vec![RouteConfig::new("/canned", "canned")]).with_rate_limits(limits);
    config.fast_path = fast_path;
    let limiter: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::default());
    let gateway =
        TestGateway::start_served(config, StaticRegistry::new(), Some(limiter), default_http()).await?;
    let instance = ServiceInstance::new("canned", "canned-1", "127.0.0.1")
        .with_port(ServiceInstance::HTTP, port)
        .with_port(ServiceInstance::GRPC, 1);
    let _ = gateway.registry.register(instance).await?;
    Ok(gateway)
}

/// The fast path on, whatever `KEEL_TEST_GATEWAY_FAST_PATH` says: these tests are about it.
async fn canned_gateway(port: u16) -> anyhow::Result<TestGateway> {
    canned_gateway_with(port, true).await
}

/// Everything the gateway sends on one connection after `request`, until it closes it or 2 s
/// pass without a byte.
async fn read_to_close(address: SocketAddr, request: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut received = Vec::new();
    let mut buffer = [0_u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
            Ok(Err(error)) if received.is_empty() => return Err(error.into()),
            Ok(Err(_)) => break,
        }
    }
    Ok(String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn chunked_responses_pass_as_they_come_and_their_connection_is_reused() -> anyhow::Result<()> {
    let (port, accepted) = canned_upstream().await?;
    let gateway = canned_gateway(port).await?;
    for _ in 0..3 {
        let response = client().get(gateway.url("/canned/chunked")).send().await?;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("content-length").is_none());
        assert_eq!(response.text().await?, "hello world");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one upstream connection for all three"
    );

    // On the wire: chunked, trailer included, then the connection serves the next request.
    let wire = read_to_close(
        gateway.address,
        "GET /canned/chunked HTTP/1.1\r\nhost: gw\r\n\r\nGET /canned/plain HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n",
    )
    .await?;
    assert!(wire.contains("transfer-encoding: chunked\r\n"), "{wire}");
    assert!(
        wire.contains("5\r\nhello\r\n6;note=x\r\n world\r\n0\r\nx-checksum: 1\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{wire}"
    );
    assert!(wire.ends_with("\r\n\r\nok"), "{wire}");
    Ok(())
}

#[tokio::test]
async fn a_body_delimited_by_the_upstream_closing_reaches_the_client_which_is_then_closed()
-> anyhow::Result<()> {
    let (port, _) = canned_upstream().await?;
    let gateway = canned_gateway(port).await?;
    let wire = read_to_close(
        gateway.address,
        "GET /canned/until-close HTTP/1.1\r\nhost: gw\r\n\r\n",
    )
    .await?;
    assert!(wire.starts_with("HTTP/1.1 200 OK\r\n"), "{wire}");
    assert!(wire.contains("connection: close\r\n"), "{wire}");
    assert!(!wire.contains("content-length"), "{wire}");
    assert!(wire.ends_with("\r\n\r\nuntil the end"), "{wire}");
    Ok(())
}

#[tokio::test]
async fn bodiless_answers_head_204_and_early_hints_are_framed_right() -> anyhow::Result<()> {
    let (port, accepted) = canned_upstream().await?;
    let gateway = canned_gateway(port).await?;
    let head = client().head(gateway.url("/canned/head")).send().await?;
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        "42",
        "HEAD keeps the GET's length"
    );
    let none = client().get(gateway.url("/canned/no-content")).send().await?;
    assert_eq!(none.status(), 204);
    assert_eq!(none.headers()["x-kind"], "none");
    let hinted = client().get(gateway.url("/canned/early-hints")).send().await?;
    assert_eq!(hinted.status(), 200, "1xx heads are skipped");
    assert_eq!(hinted.text().await?, "final");
    let after = client().get(gateway.url("/canned/plain")).send().await?;
    assert_eq!(after.text().await?, "ok");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "every one of them kept the connection"
    );
    Ok(())
}

/// The status line and the header fields (names lowercased, sorted, `Date` left out) of the
/// answer to `GET path` on a connection the request closes.
async fn answer_fields(gateway: &TestGateway, path: &str) -> anyhow::Result<(String, Vec<String>)> {
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: gw\r\nx-request-id: client-id\r\nconnection: close\r\n\r\n");
    let wire = read_to_close(gateway.address, &request).await?;
    let head = wire.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    let mut fields: Vec<String> = lines
        .map(|line| match line.split_once(':') {
            Some((name, value)) => format!("{}: {}", name.to_ascii_lowercase(), value.trim()),
            None => line.to_owned(),
        })
        .filter(|field| !field.starts_with("date: "))
        .collect();
    fields.sort();
    Ok((status, fields))
}

#[tokio::test]
async fn the_fast_path_answers_with_the_head_the_general_stack_gives() -> anyhow::Result<()> {
    let (port, _) = canned_upstream().await?;
    let fast = canned_gateway_with(port, true).await?;
    let general = canned_gateway_with(port, false).await?;
    for path in [
        "/canned/stamped",
        "/canned/not-modified",
        "/canned/chunked",
        "/canned/plain",
    ] {
        let (fast_status, fast_fields) = answer_fields(&fast, path).await?;
        let (general_status, general_fields) = answer_fields(&general, path).await?;
        assert_eq!(fast_status, general_status, "{path}");
        assert_eq!(fast_fields, general_fields, "{path}");
    }
    let (status, fields) = answer_fields(&fast, "/canned/stamped").await?;
    assert_eq!(status, "HTTP/1.1 200 Fine Thanks", "the upstream's reason phrase");
    let has = |field: &str| fields.iter().any(|f| f == field);
    assert!(
        has("x-frame-options: SAMEORIGIN"),
        "the upstream's own kept: {fields:?}"
    );
    assert!(!has("x-frame-options: DENY"), "{fields:?}");
    assert!(
        has("x-request-id: client-id"),
        "the request's id replaces the upstream's: {fields:?}"
    );
    assert!(has("set-cookie: a=1") && has("set-cookie: b=2"), "{fields:?}");
    for gone in ["x-secret", "keep-alive"] {
        assert!(!fields.iter().any(|f| f.starts_with(gone)), "{gone}: {fields:?}");
    }
    // No rate limit on this gateway: the upstream's own budget headers pass.
    assert!(has("x-ratelimit-limit: 1"), "{fields:?}");
    let (status, fields) = answer_fields(&fast, "/canned/not-modified").await?;
    assert_eq!(status, "HTTP/1.1 304 Not Modified");
    assert!(
        !fields.iter().any(|f| f.starts_with("content-length")),
        "no length on a 304 to a GET: {fields:?}"
    );

    // With a rate limit, the gateway's budget headers replace the upstream's, on both paths.
    let fast = canned_gateway_limited(port, true).await?;
    let general = canned_gateway_limited(port, false).await?;
    let (fast_status, fast_fields) = answer_fields(&fast, "/canned/stamped").await?;
    let (general_status, general_fields) = answer_fields(&general, "/canned/stamped").await?;
    assert_eq!(fast_status, general_status);
    assert_eq!(fast_fields, general_fields);
    assert!(
        fast_fields.iter().any(|f| f == "x-ratelimit-limit: 100"),
        "{fast_fields:?}"
    );
    assert!(
        !fast_fields.iter().any(|f| f == "x-ratelimit-limit: 1"),
        "{fast_fields:?}"
    );
    Ok(())
}

#[tokio::test]
async fn malformed_upstream_answers_are_502_problems_or_cut_short() -> anyhow::Result<()> {
    let (port, _) = canned_upstream().await?;
    let gateway = canned_gateway(port).await?;
    for path in ["/canned/conflicting-length", "/canned/switching"] {
        let response = client().get(gateway.url(path)).send().await?;
        assert_eq!(response.status(), 502, "{path}");
        let problem: serde_json::Value = response.json().await?;
        assert_eq!(problem["type"], "urn:keel:problem:bad-gateway", "{path}");
    }
    // A chunk longer than its size: the head already went out, so the response is cut short
    // and the client connection closed; nothing more of it reaches the client.
    let wire = read_to_close(
        gateway.address,
        "GET /canned/bad-chunks HTTP/1.1\r\nhost: gw\r\n\r\n",
    )
    .await?;
    assert!(wire.starts_with("HTTP/1.1 200 OK\r\n"), "{wire}");
    assert!(!wire.contains("and more"), "{wire}");
    // The gateway still serves.
    assert_eq!(
        client()
            .get(gateway.url("/canned/plain"))
            .send()
            .await?
            .text()
            .await?,
        "ok"
    );
    Ok(())
}

#[tokio::test]
async fn an_upstream_closing_after_its_answer_gets_a_new_connection_for_the_next() -> anyhow::Result<()> {
    let (port, accepted) = canned_upstream().await?;
    let gateway = canned_gateway(port).await?;
    for _ in 0..3 {
        let response = client().get(gateway.url("/canned/keep-closing")).send().await?;
        assert_eq!(response.text().await?, "ok");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "no reuse of a connection the upstream closes"
    );
    Ok(())
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() -> anyhow::Result<()> {
    let (port, _) = canned_upstream().await?;
    let gateway = canned_gateway(port).await?;
    let wire = read_to_close(
        gateway.address,
        "GET /canned/early-hints HTTP/1.1\r\nhost: gw\r\n\r\nGET /canned/plain HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n",
    )
    .await?;
    let final_at = wire.find("final").unwrap_or(usize::MAX);
    let ok_at = wire.rfind("\r\n\r\nok").unwrap_or(0);
    assert!(final_at < ok_at, "{wire}");
    assert_eq!(wire.matches("HTTP/1.1 200 OK").count(), 2, "{wire}");
    Ok(())
}

#[tokio::test]
async fn a_connection_is_handed_to_the_general_stack_at_its_first_request_with_a_body() -> anyhow::Result<()>
{
    let upstream = Upstream::start("handover-1").await?;
    let service = keel_testkit::unique_name("handover");
    let config = GatewayConfig::new(vec![RouteConfig::new("/api/v1/handover", &service)]);
    let gateway = TestGateway::start_served(config, StaticRegistry::new(), None, default_http()).await?;
    gateway.add(&service, &upstream).await?;
    let mut stream = TcpStream::connect(gateway.address).await?;
    // Plain (fast path), with a body (handed over: the general stack reads these bytes again),
    // then plain again (the general stack keeps the connection).
    for request in [
        "GET /api/v1/handover/one HTTP/1.1\r\nhost: gw\r\n\r\n",
        "POST /api/v1/handover/two HTTP/1.1\r\nhost: gw\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello",
        "GET /api/v1/handover/three HTTP/1.1\r\nhost: gw\r\n\r\n",
    ] {
        stream.write_all(request.as_bytes()).await?;
        let response = read_raw_response(&mut stream).await?;
        assert_eq!(response.status, 200, "{request}");
        let echo: serde_json::Value = serde_json::from_str(&response.body)?;
        let path = request.split(' ').nth(1).unwrap_or_default();
        assert_eq!(echo["path"], path, "{}", response.body);
        assert!(response.header("x-request-id").is_some());
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    }
    assert_eq!(upstream.hits(), 3);
    Ok(())
}

#[tokio::test]
async fn with_the_fast_path_off_every_request_takes_the_general_stack() -> anyhow::Result<()> {
    let (port, accepted) = canned_upstream().await?;
    let gateway = canned_gateway_with(port, false).await?;
    let response = client().get(gateway.url("/canned/chunked")).send().await?;
    assert_eq!(response.text().await?, "hello world");
    // hyper re-frames what it relays: the chunk extension and the trailer do not pass.
    let wire = read_to_close(
        gateway.address,
        "GET /canned/chunked HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n",
    )
    .await?;
    if wire.contains("6;note=x") {
        bail!("the general stack passed the chunk framing through: {wire}");
    }
    assert!(accepted.load(Ordering::SeqCst) >= 1);
    Ok(())
}

/// An upstream that reads one request, answers it after `delay` (never, for `None`), and reports
/// when the gateway closed the connection on it.
async fn slow_upstream(delay: Option<Duration>) -> anyhow::Result<(u16, tokio::sync::oneshot::Receiver<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (closed, closed_seen) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut buffer = [0_u8; 4096];
        let _ = stream.read(&mut buffer).await;
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow")
                .await;
        }
        // Whatever comes next, the end of the connection is what the test waits for.
        while let Ok(read) = stream.read(&mut buffer).await {
            if read == 0 {
                let _ = closed.send(());
                return;
            }
        }
    });
    Ok((port, closed_seen))
}

#[tokio::test]
async fn a_client_that_goes_away_mid_request_ends_the_upstream_exchange() -> anyhow::Result<()> {
    let (port, closed) = slow_upstream(None).await?;
    let gateway = canned_gateway(port).await?;
    let mut stream = TcpStream::connect(gateway.address).await?;
    stream
        .write_all(b"GET /canned/hang HTTP/1.1\r\nhost: gw\r\n\r\n")
        .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    // Long before the route's timeout (10 s): the gateway dropped the exchange and its connection.
    tokio::time::timeout(Duration::from_secs(2), closed).await??;
    Ok(())
}

#[tokio::test]
async fn an_answer_during_shutdown_says_the_connection_closes() -> anyhow::Result<()> {
    let (port, _) = slow_upstream(Some(Duration::from_millis(300))).await?;
    let gateway = canned_gateway(port).await?;
    let mut stream = TcpStream::connect(gateway.address).await?;
    stream
        .write_all(b"GET /canned/slow HTTP/1.1\r\nhost: gw\r\n\r\n")
        .await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    gateway.stop_serving();
    let response = read_raw_response(&mut stream).await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "slow");
    assert_eq!(response.header("connection"), Some("close"));
    Ok(())
}

#[tokio::test]
async fn the_routers_own_paths_stay_with_the_router_whatever_their_spelling() -> anyhow::Result<()> {
    let (port, _) = canned_upstream().await?;
    let gateway = canned_gateway(port).await?;
    for target in ["/healthz", "/healthz#top", "/healthz?probe=1"] {
        let wire = read_to_close(
            gateway.address,
            &format!("GET {target} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n"),
        )
        .await?;
        assert!(wire.starts_with("HTTP/1.1 200 OK\r\n"), "{target}: {wire}");
        assert!(wire.ends_with("alive"), "{target}: {wire}");
    }
    Ok(())
}
