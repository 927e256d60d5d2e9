//! The upstream connection pools: kept-alive connections are reused, and a connection that can
//! no longer carry a request (closed by the upstream, abandoned mid-body, idle too long) is never
//! the reason a request fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel_gateway::{GatewayConfig, RouteConfig};
use keel_registry::StaticRegistry;
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

/// What a [`raw_upstream`] does with a connection after its first answer.
#[derive(Clone, Copy)]
enum AfterAnswer {
    /// Close it, as a server with a very short keep-alive timeout does.
    Close,
    /// Keep it open and discard whatever else arrives (the rest of a request body it did not want).
    Discard,
    /// Read the next request, then close without answering it: what a server does whose
    /// keep-alive timeout fires as a request arrives on an idle connection.
    CloseUnderNextRequest,
    /// Read the next request, then close 200 ms later without answering: an instance failing a
    /// request it was handling.
    CloseLateUnderNextRequest,
}

/// An HTTP/1.1 upstream that answers the first request of each connection as soon as its head
/// has arrived, with a keep-alive `200 ok` (no `Connection: close`), then does `after`. Counts
/// the connections it accepted.
async fn raw_upstream(after: AfterAnswer) -> anyhow::Result<(u16, Arc<AtomicUsize>)> {
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
                match after {
                    AfterAnswer::Close => {
                        let _ = stream.shutdown().await;
                    }
                    AfterAnswer::Discard => while let Ok(1..) = stream.read(&mut buffer).await {},
                    AfterAnswer::CloseUnderNextRequest => {
                        let _ = stream.read(&mut buffer).await;
                    }
                    AfterAnswer::CloseLateUnderNextRequest => {
                        let _ = stream.read(&mut buffer).await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            });
        }
    });
    Ok((port, accepted))
}

/// A gateway routing `/api/v1/raw` to one instance at `port`.
async fn raw_gateway(port: u16) -> anyhow::Result<TestGateway> {
    TestGateway::routing_to(RouteConfig::new("/api/v1/raw", "raw"), port).await
}

#[tokio::test]
async fn an_upstream_that_closes_kept_alive_connections_fails_no_request() -> anyhow::Result<()> {
    let (port, accepted) = raw_upstream(AfterAnswer::Close).await?;
    let gateway = raw_gateway(port).await?;
    for n in 0..5 {
        let response = client().get(gateway.url("/api/v1/raw")).send().await?;
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

#[tokio::test]
async fn a_connection_still_sending_an_answered_upload_does_not_hold_up_the_next_request()
-> anyhow::Result<()> {
    // The upstream answers as soon as a request's head has arrived and keeps the connection.
    let (port, accepted) = raw_upstream(AfterAnswer::Discard).await?;
    let gateway = raw_gateway(port).await?;

    // An upload answered at once: one chunk, then the body stalls until the test releases it,
    // after the next request. Its connection stays busy sending that body.
    let release = Arc::new(tokio::sync::Notify::new());
    let stalled = Arc::clone(&release);
    let chunks = futures_util::stream::unfold(0, move |step| {
        let stalled = Arc::clone(&stalled);
        async move {
            match step {
                0 => Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"first chunk")),
                    1,
                )),
                1 => {
                    stalled.notified().await;
                    None
                }
                _ => None,
            }
        }
    });
    let upload = client()
        .post(gateway.url("/api/v1/raw/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send();
    let patience = Duration::from_secs(10);
    let answered = tokio::time::timeout(patience, upload).await??;
    assert_eq!(answered.status(), 200);
    answered.bytes().await?;

    // The next request must not wait for that upload to end: it takes a connection of its own.
    let next = client().get(gateway.url("/api/v1/raw/next")).send();
    let next = tokio::time::timeout(patience, next).await;
    release.notify_one();
    let next = next.map_err(|_| anyhow::anyhow!("the next request waited for the stalled upload"))??;
    assert_eq!(next.status(), 200);
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    Ok(())
}

/// Through a gateway to a [`raw_upstream`] that closes under the next request: a first GET, a
/// pause of `idle`, then `second` on the same kept-alive connection, which the upstream closes
/// under it. Answers the second request's status and the connections the upstream accepted, and
/// the upstream's port.
async fn second_request_after(
    idle: Duration,
    lane: Lane,
    second: impl FnOnce(&reqwest::Client, String) -> reqwest::RequestBuilder,
) -> anyhow::Result<((u16, usize), u16)> {
    second_request_to(AfterAnswer::CloseUnderNextRequest, idle, lane, second).await
}

/// Which of the gateway's two ways of serving a request the second one takes (see the
/// `fast_path` module): each has its own upstream connections, so the first request goes the
/// same way, for the second to find its connection.
#[derive(Clone, Copy)]
enum Lane {
    /// A plain request, no body: the fast path (a `GET` first).
    FastPath,
    /// A request with a body: the general stack (a `POST` with a small body first).
    Stack,
}

/// [`second_request_after`] with an upstream that does `after` once it has answered the first.
async fn second_request_to(
    after: AfterAnswer,
    idle: Duration,
    lane: Lane,
    second: impl FnOnce(&reqwest::Client, String) -> reqwest::RequestBuilder,
) -> anyhow::Result<((u16, usize), u16)> {
    let (port, accepted) = raw_upstream(after).await?;
    let gateway = raw_gateway(port).await?;
    let client = client();
    let first = gateway.url("/api/v1/raw/first");
    let first = match lane {
        Lane::FastPath => client.get(first),
        Lane::Stack => client.post(first).body("first"),
    };
    let first = first.send().await?;
    assert_eq!(first.status(), 200);
    first.bytes().await?;
    tokio::time::sleep(idle).await;
    let response = second(&client, gateway.url("/api/v1/raw/second")).send().await?;
    let status = response.status().as_u16();
    response.bytes().await?;
    Ok(((status, accepted.load(Ordering::SeqCst)), port))
}

/// Idle long enough that the pool treats the connection as possibly stale.
const IDLE: Duration = Duration::from_millis(1100);

#[tokio::test]
async fn a_safe_request_on_an_idle_connection_the_upstream_closes_under_it_is_sent_again()
-> anyhow::Result<()> {
    keel_telemetry::metrics::install();
    let (outcome, port) = second_request_after(IDLE, Lane::FastPath, |client, url| client.get(url)).await?;
    assert_eq!(outcome, (200, 2), "the GET was sent again on a new connection");
    let replays = per_upstream("keel_gateway_upstream_replays_total", port);
    assert_eq!(replays.as_deref(), Some("1"), "the replay is counted");
    Ok(())
}

#[tokio::test]
async fn a_request_that_may_change_something_is_never_sent_again() -> anyhow::Result<()> {
    // The instance may have acted on it: a second DELETE would answer 404 for a deletion that
    // succeeded. An Idempotency-Key does not change that (no Keel service deduplicates on it).
    let delete = |client: &reqwest::Client, url: String| client.delete(url);
    assert_eq!(
        second_request_after(IDLE, Lane::FastPath, delete).await?.0,
        (502, 1)
    );
    let keyed = |client: &reqwest::Client, url: String| {
        client.post(url).header("idempotency-key", "k-1").body("payload")
    };
    assert_eq!(second_request_after(IDLE, Lane::Stack, keyed).await?.0, (502, 1));
    Ok(())
}

#[tokio::test]
async fn a_small_body_read_first_is_sent_again_with_its_request_and_a_streamed_one_is_not()
-> anyhow::Result<()> {
    let query = http::Method::from_bytes(b"QUERY")?;
    // Small bodies are read whole before sending (`buffer_body_bytes`), so they can go again.
    let small = |client: &reqwest::Client, url: String| client.request(query.clone(), url).body("payload");
    assert_eq!(second_request_after(IDLE, Lane::Stack, small).await?.0, (200, 2));
    // A body over the buffer streams, and a streamed body is never sent twice.
    let streamed = |client: &reqwest::Client, url: String| {
        client.request(query.clone(), url).body(vec![b'x'; 20 * 1024])
    };
    assert_eq!(
        second_request_after(IDLE, Lane::Stack, streamed).await?.0,
        (502, 1)
    );
    Ok(())
}

#[tokio::test]
async fn a_request_on_a_connection_reused_at_once_is_not_sent_again() -> anyhow::Result<()> {
    // A connection reused within the second is not suspected of the keep-alive race, so no copy
    // is kept to send again: the upstream's failure is the answer.
    let at_once = |client: &reqwest::Client, url: String| client.get(url);
    assert_eq!(
        second_request_after(Duration::ZERO, Lane::FastPath, at_once)
            .await?
            .0,
        (502, 1)
    );
    Ok(())
}

#[tokio::test]
async fn a_connection_that_fails_well_after_the_request_went_out_is_not_the_race() -> anyhow::Result<()> {
    // The instance read the request and failed 200 ms later: it was handling it, so it is not
    // sent again even though the method is safe and the connection had been idle.
    let get = |client: &reqwest::Client, url: String| client.get(url);
    let (outcome, _) =
        second_request_to(AfterAnswer::CloseLateUnderNextRequest, IDLE, Lane::FastPath, get).await?;
    assert_eq!(outcome, (502, 1));
    Ok(())
}
