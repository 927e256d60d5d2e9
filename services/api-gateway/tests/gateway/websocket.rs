//! WebSocket upgrades: the handshake is routed, limited and authenticated like any request, and
//! after the upstream's `101` the gateway tunnels the frames both ways.

use futures_util::{SinkExt, StreamExt};
use keel_gateway::{AuthPolicy, GatewayConfig, RouteConfig};
use keel_registry::StaticRegistry;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::doubles::valid_claims;
use crate::support::{Echo, TestGateway, Upstream, default_http, raw_exchange};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One upstream behind a public route and a route that needs a token.
async fn live_gateway() -> anyhow::Result<(TestGateway, Upstream)> {
    live_gateway_on(0).await
}

/// [`live_gateway`], served on `worker_threads` threads of its own (0: the test's runtime).
async fn live_gateway_on(worker_threads: usize) -> anyhow::Result<(TestGateway, Upstream)> {
    let upstream = Upstream::start("live-1").await?;
    let config = GatewayConfig::new(vec![
        RouteConfig::new("/api/v1/live", "live").with_auth(AuthPolicy::Public),
        RouteConfig::new("/api/v1/private", "live").with_auth(AuthPolicy::Required),
    ]);
    let gateway = TestGateway::start_on_threads(
        config,
        StaticRegistry::new(),
        None,
        default_http(),
        worker_threads,
    )
    .await?;
    gateway.add("live", &upstream).await?;
    Ok((gateway, upstream))
}

/// Opens a WebSocket to `path` on the gateway with `headers` added to the handshake.
async fn open(
    gateway: &TestGateway,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Socket, tungstenite::Error> {
    let mut request = format!("ws://{}{path}", gateway.address).into_client_request()?;
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(http::Error::from)?;
        let value = http::HeaderValue::from_str(value).map_err(http::Error::from)?;
        request.headers_mut().insert(name, value);
    }
    let (socket, response) = tokio_tungstenite::connect_async(request).await?;
    assert_eq!(response.status(), 101);
    Ok(socket)
}

/// The next data message, skipping control frames.
async fn next_message(socket: &mut Socket) -> anyhow::Result<Message> {
    let patience = std::time::Duration::from_secs(5);
    loop {
        match tokio::time::timeout(patience, socket.next()).await? {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(message) => return Ok(message?),
            None => anyhow::bail!("the socket closed"),
        }
    }
}

/// The upstream's first message: what it saw of the handshake.
async fn handshake_seen(socket: &mut Socket) -> anyhow::Result<Echo> {
    match next_message(socket).await? {
        Message::Text(text) => Ok(serde_json::from_str(&text)?),
        other => anyhow::bail!("expected the handshake echo, got {other:?}"),
    }
}

#[tokio::test]
async fn text_and_binary_frames_cross_the_gateway_both_ways() -> anyhow::Result<()> {
    let (gateway, _upstream) = live_gateway().await?;
    let mut socket = open(&gateway, "/api/v1/live/ws?room=7", &[]).await?;
    let seen = handshake_seen(&mut socket).await?;
    assert_eq!(seen.path, "/api/v1/live/ws");
    assert_eq!(seen.query.as_deref(), Some("room=7"));
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    assert!(seen.header("x-request-id").is_some(), "{:?}", seen.headers);
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));

    socket.send(Message::text("hello")).await?;
    assert_eq!(next_message(&mut socket).await?, Message::text("hello"));
    // Larger than any single read or write buffer on the way.
    let large: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    socket.send(Message::binary(large.clone())).await?;
    assert_eq!(next_message(&mut socket).await?, Message::binary(large));
    for n in 0..100 {
        socket.send(Message::text(format!("message {n}"))).await?;
    }
    for n in 0..100 {
        assert_eq!(
            next_message(&mut socket).await?,
            Message::text(format!("message {n}"))
        );
    }
    socket.close(None).await?;
    Ok(())
}

#[tokio::test]
async fn a_route_that_needs_a_token_refuses_an_anonymous_handshake_before_the_upstream() -> anyhow::Result<()>
{
    let (gateway, upstream) = live_gateway().await?;
    match open(&gateway, "/api/v1/private/ws", &[]).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        Err(other) => anyhow::bail!("expected a 401 answer, got {other}"),
        Ok(_) => anyhow::bail!("an anonymous handshake was let through"),
    }
    assert_eq!(upstream.hits(), 0, "the upstream saw the refused handshake");

    // With a valid token the handshake passes, as that caller, and a spoofed identity is gone.
    let claims = valid_claims();
    let token = gateway.key.sign(&claims);
    let spoofed = uuid::Uuid::now_v7().to_string();
    let authorization = format!("Bearer {token}");
    let headers = [
        ("authorization", authorization.as_str()),
        ("x-user-id", spoofed.as_str()),
    ];
    let mut socket = open(&gateway, "/api/v1/private/ws", &headers).await?;
    let seen = handshake_seen(&mut socket).await?;
    assert_eq!(seen.header("x-user-id"), Some(claims.sub.as_str()));
    socket.send(Message::text("as a user")).await?;
    assert_eq!(next_message(&mut socket).await?, Message::text("as a user"));
    Ok(())
}

#[tokio::test]
async fn an_upstream_that_does_not_switch_protocols_answers_as_usual() -> anyhow::Result<()> {
    let (gateway, _upstream) = live_gateway().await?;
    // A handshake to a path the upstream serves as plain HTTP: its 200 comes back, not a tunnel.
    let response = raw_exchange(
        gateway.address,
        "GET /api/v1/live/plain HTTP/1.1\r\nHost: gateway\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    )
    .await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("upgrade"), None);
    let seen: Echo = serde_json::from_str(&response.body)?;
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    Ok(())
}

#[tokio::test]
async fn many_sockets_stay_open_side_by_side() -> anyhow::Result<()> {
    let (gateway, _upstream) = live_gateway().await?;
    let mut sockets = Vec::new();
    for _ in 0..20 {
        let mut socket = open(&gateway, "/api/v1/live/ws", &[]).await?;
        handshake_seen(&mut socket).await?;
        sockets.push(socket);
    }
    for (n, socket) in sockets.iter_mut().enumerate() {
        socket.send(Message::text(format!("socket {n}"))).await?;
    }
    for (n, socket) in sockets.iter_mut().enumerate() {
        assert_eq!(next_message(socket).await?, Message::text(format!("socket {n}")));
    }
    // Plain requests still pass on the same gateway while the tunnels are open.
    let plain = crate::support::get_echo(&gateway.url("/api/v1/live/after")).await?;
    assert_eq!(plain.path, "/api/v1/live/after");
    Ok(())
}

#[tokio::test]
async fn sockets_tunnel_through_a_gateway_served_on_its_own_worker_threads() -> anyhow::Result<()> {
    // As api-gateway and platform serve it: each connection, its upstream connection and its
    // tunnel live on one of the gateway's single-threaded worker runtimes.
    let (gateway, _upstream) = live_gateway_on(2).await?;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut socket = open(&gateway, "/api/v1/live/ws", &[]).await?;
        handshake_seen(&mut socket).await?;
        sockets.push(socket);
    }
    for round in 0..10 {
        for (n, socket) in sockets.iter_mut().enumerate() {
            socket.send(Message::text(format!("{round}:{n}"))).await?;
        }
        for (n, socket) in sockets.iter_mut().enumerate() {
            assert_eq!(next_message(socket).await?, Message::text(format!("{round}:{n}")));
        }
    }
    for socket in &mut sockets {
        socket.close(None).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_graceful_shutdown_lets_open_tunnels_run_through_the_grace_period_then_closes_them()
-> anyhow::Result<()> {
    // On the test's runtime (0) and on worker threads of its own (1), as the binaries serve it.
    for worker_threads in [0, 1] {
        let (gateway, _upstream) = live_gateway_on(worker_threads).await?;
        let mut socket = open(&gateway, "/api/v1/live/ws", &[]).await?;
        handshake_seen(&mut socket).await?;

        gateway.stop_serving(); // a grace period of 1 s
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        socket.send(Message::text("still here")).await?;
        assert_eq!(
            next_message(&mut socket).await?,
            Message::text("still here"),
            "the tunnel runs on during the grace period ({worker_threads} worker threads)"
        );

        // Once the grace period is over the tunnel is closed: the socket ends.
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                match socket.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(
            ended.is_ok(),
            "the tunnel was closed after the grace period ({worker_threads} worker threads)"
        );
    }
    Ok(())
}
