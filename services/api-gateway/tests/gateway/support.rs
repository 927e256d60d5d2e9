//! Real upstream servers, a real registry and the gateway behind the real HTTP stack.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use keel_errorbus::ErrorBus;
use keel_gateway::{Gateway, GatewayConfig, RouteConfig};
use keel_http::{HttpServer, Stack};

use crate::doubles::{SigningKey, TestAuthz, edge_auth};
use keel_config::HttpConfig;
use keel_registry::{ServiceInstance, ServiceRegistry, StaticRegistry};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// What the echo upstream saw of a request.
#[derive(Debug, Deserialize)]
pub(crate) struct Echo {
    pub(crate) instance: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    /// Lowercase name → values joined by `, `.
    pub(crate) headers: BTreeMap<String, String>,
}

impl Echo {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Shared by an upstream server and its test.
#[derive(Default)]
pub(crate) struct Signals {
    /// Requests served.
    pub(crate) hits: AtomicUsize,
    /// Body bytes `…/count` has received, over all requests (also those cut off).
    pub(crate) bytes_received: AtomicUsize,
    /// Notified when `…/count` has received its first bytes.
    pub(crate) upload_started: Notify,
    /// `…/stream` waits for this between its two chunks.
    pub(crate) release_stream: Notify,
}

/// An upstream REST server on a free loopback port. Its answer depends on the path's last segment:
/// `count` reads the body and answers `{"bytes": n}`; `slow` waits 2 s first; `stream` sends
/// `first\n`, waits for [`Signals::release_stream`], then sends `second\n`; `ws` is a WebSocket
/// (see [`websocket_echo`]); anything else echoes
/// the request as [`Echo`] JSON, with `connection: x-upstream-hop` and `x-upstream-hop` headers.
pub(crate) struct Upstream {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) signals: Arc<Signals>,
    /// Cancelled by [`Upstream::stop`] (and on drop, through `_stop`).
    shutdown: CancellationToken,
    /// The server task, until [`Upstream::stop`] has waited for it.
    server: Option<JoinHandle<std::io::Result<()>>>,
    _stop: DropGuard,
}

impl Upstream {
    pub(crate) async fn start(name: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let signals = Arc::new(Signals::default());
        let state = (name.to_owned(), Arc::clone(&signals));
        let router = Router::new().fallback(answer).with_state(state);
        let stop = CancellationToken::new();
        let cancelled = stop.clone().cancelled_owned();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(cancelled)
                .await
        });
        Ok(Self {
            name: name.to_owned(),
            port,
            signals,
            shutdown: stop.clone(),
            server: Some(server),
            _stop: stop.drop_guard(),
        })
    }

    /// Stops the server for real and returns once it is gone: its listener is closed (its port
    /// refuses connections) and so are its idle keep-alive connections. Its signals stay readable.
    pub(crate) async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .context("the upstream stops within 5 s")???;
        }
        Ok(())
    }

    /// This server as an instance of `service`, its id being its name.
    pub(crate) fn instance(&self, service: &str) -> ServiceInstance {
        ServiceInstance::new(service, &self.name, "127.0.0.1")
            .with_port(ServiceInstance::HTTP, self.port)
            .with_port(ServiceInstance::GRPC, 1)
    }

    pub(crate) fn hits(&self) -> usize {
        self.signals.hits.load(Ordering::SeqCst)
    }
}

type UpstreamState = (String, Arc<Signals>);

async fn answer(State((name, signals)): State<UpstreamState>, request: Request) -> Response {
    signals.hits.fetch_add(1, Ordering::SeqCst);
    let last = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    match last.as_str() {
        "count" => count(&signals, request.into_body()).await.into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            "finally".into_response()
        }
        "stream" => {
            let chunks = futures_util::stream::unfold(0, move |step| {
                let signals = Arc::clone(&signals);
                async move {
                    match step {
                        0 => Some((Ok::<_, std::io::Error>("first\n"), 1)),
                        1 => {
                            signals.release_stream.notified().await;
                            Some((Ok("second\n"), 2))
                        }
                        _ => None,
                    }
                }
            });
            Body::from_stream(chunks).into_response()
        }
        "ws" => websocket_echo(&name, request).await,
        _ => echo(&name, &request).into_response(),
    }
}

/// `…/ws`: a WebSocket whose first message is the [`Echo`] JSON of the handshake request, and
/// which then sends back every text and binary message it receives, until the client closes.
async fn websocket_echo(name: &str, request: Request) -> Response {
    let seen = echo_json(name, &request).to_string();
    let upgrade = match WebSocketUpgrade::from_request(request, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade.on_upgrade(|mut socket| async move {
        if socket.send(Message::Text(seen.into())).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = socket.recv().await {
            let reply = match message {
                Message::Text(_) | Message::Binary(_) => message,
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    })
}

async fn count(signals: &Signals, body: Body) -> axum::Json<serde_json::Value> {
    let mut stream = body.into_data_stream();
    let mut bytes = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        if bytes == 0 && !chunk.is_empty() {
            signals.upload_started.notify_one();
        }
        bytes += chunk.len();
        signals.bytes_received.fetch_add(chunk.len(), Ordering::SeqCst);
    }
    axum::Json(serde_json::json!({ "bytes": bytes }))
}

fn echo(name: &str, request: &Request) -> Response {
    (
        [
            ("connection", "x-upstream-hop"),
            ("x-upstream-hop", "1"),
            ("x-upstream-end-to-end", "1"),
        ],
        axum::Json(echo_json(name, request)),
    )
        .into_response()
}

/// What [`Echo`] reads: the instance's name and the request's method, path, query and headers.
fn echo_json(name: &str, request: &Request) -> serde_json::Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (header, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(header.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    serde_json::json!({
        "instance": name,
        "method": request.method().as_str(),
        "path": request.uri().path(),
        "query": request.uri().query(),
        "headers": headers,
    })
}

/// A gateway serving on a free loopback port behind the keel-http stack, beside a `/healthz`,
/// wired as the platform wires it (the stack without its body limit, the server with the gateway's
/// connection limits). Tokens signed with `key` are valid; `authz` answers permission checks.
pub(crate) struct TestGateway {
    pub(crate) base: String,
    pub(crate) address: SocketAddr,
    pub(crate) registry: StaticRegistry,
    pub(crate) key: SigningKey,
    pub(crate) authz: Arc<TestAuthz>,
    /// The gateway being served (for reloads).
    pub(crate) gateway: Gateway,
    /// Cancelled by [`TestGateway::stop_serving`].
    stopping: CancellationToken,
    _stop: DropGuard,
}

impl TestGateway {
    pub(crate) async fn start(routes: Vec<RouteConfig>, registry: StaticRegistry) -> anyhow::Result<Self> {
        Self::start_with(GatewayConfig::new(routes), registry).await
    }

    /// A gateway with `config`; with `KEEL_TEST_GATEWAY_FAST_PATH=off` in the environment, with its
    /// fast path off (scripts/test.sh runs these tests once each way: every request through the
    /// general stack the second time).
    pub(crate) async fn start_with(
        mut config: GatewayConfig,
        registry: StaticRegistry,
    ) -> anyhow::Result<Self> {
        if std::env::var("KEEL_TEST_GATEWAY_FAST_PATH").as_deref() == Ok("off") {
            config.fast_path = false;
        }
        Self::start_limited(config, registry, None).await
    }

    /// A gateway counting requests with `limiter` (`None`: no rate limits).
    pub(crate) async fn start_limited(
        config: GatewayConfig,
        registry: StaticRegistry,
        limiter: Option<Arc<dyn keel_ratelimit::RateLimiter>>,
    ) -> anyhow::Result<Self> {
        Self::start_served(config, registry, limiter, default_http()).await
    }

    /// A gateway counting requests with `limiter`, behind a stack and server configured by `http`
    /// (e.g. its `cors`) instead of the shipped defaults.
    pub(crate) async fn start_served(
        config: GatewayConfig,
        registry: StaticRegistry,
        limiter: Option<Arc<dyn keel_ratelimit::RateLimiter>>,
        http: HttpConfig,
    ) -> anyhow::Result<Self> {
        Self::start_on_threads(config, registry, limiter, http, 0).await
    }

    /// A gateway served as `api-gateway` and `platform` serve it: on `worker_threads` threads of
    /// their own, each with a single-threaded runtime (0: on the test's runtime).
    pub(crate) async fn start_on_threads(
        config: GatewayConfig,
        registry: StaticRegistry,
        limiter: Option<Arc<dyn keel_ratelimit::RateLimiter>>,
        http: HttpConfig,
        worker_threads: usize,
    ) -> anyhow::Result<Self> {
        let shared: Arc<dyn ServiceRegistry> = Arc::new(registry.clone());
        let key = SigningKey::generate("gateway-test");
        let authz = Arc::new(TestAuthz::default());
        let limits = config.connection_limits(&http);
        let gateway = Gateway::new(config, shared, edge_auth(&key, &authz), limiter).await?;
        let (bus, _consumer) = ErrorBus::start(16, Vec::new(), CancellationToken::new());
        let app = Router::new()
            .route("/healthz", axum::routing::get(|| async { "alive" }))
            .merge(gateway.router());
        let front = gateway.http1_front(&http, &["/healthz"]);
        // As both binaries build it: the services compress their own responses.
        let app = Stack::new(http, bus)
            .without_body_limit()
            .without_compression()
            .apply(app);
        let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await?
            .with_limits(limits)
            .with_worker_threads(worker_threads)
            .with_front(front);
        let address = server.local_addr();
        let stop = CancellationToken::new();
        tokio::spawn(server.serve(app, stop.clone(), Duration::from_secs(1)));
        Ok(Self {
            base: format!("http://{address}"),
            address,
            registry,
            key,
            authz,
            gateway,
            stopping: stop.clone(),
            _stop: stop.drop_guard(),
        })
    }

    /// A gateway with the one route `route`, its service's one instance (`<service>-1`) on
    /// `port` of 127.0.0.1.
    pub(crate) async fn routing_to(route: RouteConfig, port: u16) -> anyhow::Result<Self> {
        let service = route.service.clone();
        let gateway = Self::start(vec![route], StaticRegistry::new()).await?;
        let instance = ServiceInstance::new(&service, format!("{service}-1"), "127.0.0.1")
            .with_port(ServiceInstance::HTTP, port)
            .with_port(ServiceInstance::GRPC, 1);
        let _ = gateway.registry.register(instance).await?;
        Ok(gateway)
    }

    /// Starts the server's graceful shutdown (a grace period of 1 s), as SIGTERM would.
    pub(crate) fn stop_serving(&self) {
        self.stopping.cancel();
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers `upstream` as an instance of `service`.
    pub(crate) async fn add(&self, service: &str, upstream: &Upstream) -> anyhow::Result<()> {
        let _ = self.registry.register(upstream.instance(service)).await?;
        Ok(())
    }
}

/// The shipped `http` configuration section, as [`TestGateway::start`] serves with.
pub(crate) fn default_http() -> HttpConfig {
    keel_testkit::test_config(&[]).kernel().http.clone()
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("a reqwest client builds: {e}"))
}

/// GETs `url` and reads the echo the upstream answered with.
pub(crate) async fn get_echo(url: &str) -> anyhow::Result<Echo> {
    let response = client().get(url).send().await?;
    if response.status() != 200 {
        bail!("GET {url}: {} {}", response.status(), response.text().await?);
    }
    Ok(response.json().await?)
}

/// A port nothing listens on (bound, then released).
pub(crate) async fn closed_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0").await?.local_addr()?.port())
}

/// A response read off the wire by [`raw_exchange`].
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    /// Lowercase header lines `name: value`.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl RawResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (request line and headers, without the blank line) as written, with no body, and
/// reads one response with a `content-length`. For requests a well-behaved client will not send.
pub(crate) async fn raw_exchange(address: SocketAddr, head: &str) -> anyhow::Result<RawResponse> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(format!("{head}\r\n\r\n").as_bytes()).await?;
    read_raw_response(&mut stream).await
}

/// Reads one response with a `content-length` off `stream` (5 s at most per read).
pub(crate) async fn read_raw_response(stream: &mut tokio::net::TcpStream) -> anyhow::Result<RawResponse> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let deadline = Duration::from_secs(5);
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let read = tokio::time::timeout(deadline, stream.read(&mut buffer)).await??;
        if read == 0 {
            bail!("connection closed before the response head");
        }
        received.extend_from_slice(&buffer[..read]);
    };
    let text = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .context("a status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .context("a content-length")?;
    let mut body = received[head_end + 4..].to_vec();
    while body.len() < length {
        let read = tokio::time::timeout(deadline, stream.read(&mut buffer)).await??;
        if read == 0 {
            break;
        }
        body.extend_from_slice(&buffer[..read]);
    }
    Ok(RawResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The JSON problem body of `response`, after checking its content type.
pub(crate) async fn problem(response: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if content_type != "application/problem+json" {
        bail!("expected problem+json, got {content_type:?}");
    }
    Ok(response.json().await?)
}
