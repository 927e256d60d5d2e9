//! Binding and serving with graceful shutdown, and the limits of the connections served.
//!
//! Why it serves connections itself rather than through `axum::serve`: the public port (the
//! gateway) must close connections of clients that send their request head too slowly and bound
//! the header sections it parses, and `axum::serve` exposes neither. The loop below is
//! `axum::serve`'s (hyper-util's auto builder: HTTP/1.1 and HTTP/2 with prior knowledge, upgrades,
//! the peer address as `ConnectInfo`) with those settings, [`ConnectionLimits`], added.
//!
//! Connections are served on the caller's runtime by default. [`HttpServer::with_worker_threads`]
//! serves them instead on dedicated threads, each running its own single-threaded runtime (the
//! nginx worker model): the listener accepts on the caller's runtime and hands each connection to
//! the worker with the fewest open connections, and everything that connection spawns (a proxy's
//! upstream connection tasks, timers) stays on that worker's thread. On a busy proxy this removes
//! most of the cross-thread wake-ups a work-stealing runtime makes per request, which measured as
//! the largest cost of the gateway (docs/performance.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use keel_config::HttpConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::front::{ConnectionFront, FrontConnection, Prefixed};

/// Work a handler starts that outlives its request but belongs to its connection, such as the
/// tunnel of an upgraded connection (the gateway's WebSocket tunnels): found in the extensions of
/// every request that asks to upgrade (has an `Upgrade` header). The server drains these tasks at
/// shutdown like connections: they get the same grace period to end by themselves and are dropped
/// when it is over. A task spawned with `tokio::spawn` instead would be cut the moment its
/// connection's worker stops, or outlive the server on the caller's runtime.
#[derive(Debug, Clone, Default)]
pub struct ConnectionTasks {
    tracker: tokio_util::task::TaskTracker,
    over: CancellationToken,
}

impl ConnectionTasks {
    /// Spawns `task` on the current runtime (the connection's), tracked by the server.
    pub fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let over = self.over.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = task => {}
                () = over.cancelled() => {}
            }
        });
    }

    /// Waits, until `deadline`, for every task to end; then ends the rest.
    async fn drain(&self, deadline: tokio::time::Instant) {
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tracker.len(),
                "grace period over; ending connection tasks still running (tunnels)"
            );
            self.over.cancel();
            self.tracker.wait().await;
        }
    }
}

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound (in use, not permitted).
    #[error("cannot bind HTTP server to {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// Accepting or serving failed.
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// A worker thread or its runtime could not be started.
    #[error("cannot start HTTP worker thread {index}: {source}")]
    Worker {
        /// The worker's index, from 0.
        index: usize,
        /// The operating system's reason.
        source: std::io::Error,
    },
}

/// Limits of the connections an [`HttpServer`] accepts. The default is no header read timeout and
/// hyper's own parser limits (100 header fields and a ~400 KB buffer for HTTP/1, a 16 KiB header
/// list for HTTP/2).
///
/// A request over a parser limit is answered by the HTTP implementation itself (a bare 431 for
/// HTTP/1, a stream reset or 431 for HTTP/2), before any handler runs: set these as backstops
/// above the limits a handler checks with a problem+json answer (as the gateway does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionLimits {
    /// Longest an HTTP/1 client may take to send a request head; the connection is closed when it
    /// is over. The timer also runs while a keep-alive connection waits for its next request, so
    /// it is the longest an idle client connection is kept too. `None`: no limit.
    pub header_read_timeout: Option<Duration>,
    /// Most header fields an HTTP/1 request may have; `None`: hyper's 100. Above 100 the parser
    /// allocates its field table per request instead of using the stack.
    pub max_headers: Option<usize>,
    /// Largest HTTP/2 header list (RFC 9113 `SETTINGS_MAX_HEADER_LIST_SIZE`); `None`: 16 KiB.
    pub max_header_list_bytes: Option<u32>,
}

impl ConnectionLimits {
    /// The limits of the `http` section: `header_read_timeout_ms`; hyper's parser limits.
    pub fn from_config(config: &HttpConfig) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout(),
            ..Self::default()
        }
    }

    /// Sets the most header fields an HTTP/1 request may have.
    #[must_use]
    pub fn with_max_headers(mut self, max: usize) -> Self {
        self.max_headers = Some(max);
        self
    }

    /// Sets the largest HTTP/2 header list, in bytes.
    #[must_use]
    pub fn with_max_header_list_bytes(mut self, max: u32) -> Self {
        self.max_header_list_bytes = Some(max);
        self
    }

    /// The connection builder these limits configure.
    fn builder(&self) -> Builder<TokioExecutor> {
        let mut builder = Builder::new(TokioExecutor::new());
        {
            let mut http1 = builder.http1();
            match self.header_read_timeout {
                Some(timeout) => {
                    http1.timer(TokioTimer::new()).header_read_timeout(timeout);
                }
                None => {
                    http1.header_read_timeout(None);
                }
            }
            if let Some(max) = self.max_headers {
                http1.max_headers(max);
            }
        }
        let mut http2 = builder.http2();
        // As axum::serve: the CONNECT protocol, for WebSockets over HTTP/2.
        http2.enable_connect_protocol();
        if let Some(max) = self.max_header_list_bytes {
            http2.max_header_list_size(max);
        }
        builder
    }
}

/// A bound HTTP listener, ready to serve. Binding first and serving second lets a caller learn the
/// port (bind to port 0 in tests) before requests flow.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    address: SocketAddr,
    limits: ConnectionLimits,
    worker_threads: usize,
    front: Option<Arc<dyn ConnectionFront>>,
}

/// How every connection of one server is served: the front, then hyper with these settings.
struct Serving {
    builder: Builder<TokioExecutor>,
    front: Option<Arc<dyn ConnectionFront>>,
    limits: ConnectionLimits,
}

impl HttpServer {
    /// Binds `address`, with the default [`ConnectionLimits`].
    pub async fn bind(address: SocketAddr) -> Result<Self, HttpError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| HttpError::Bind { address, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { address, source })?;
        Ok(Self {
            listener,
            address,
            limits: ConnectionLimits::default(),
            worker_threads: 0,
            front: None,
        })
    }

    /// Serves connections on `threads` dedicated threads, each with a single-threaded runtime,
    /// instead of on the caller's runtime (0, the default). Handlers then run on those threads:
    /// they must not call `tokio::task::block_in_place` (use `spawn_blocking`), and tasks they
    /// spawn run on their worker. Connections are balanced by count when accepted and stay on
    /// their worker.
    #[must_use]
    pub fn with_worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = threads;
        self
    }

    /// Serves connections with `limits` instead of the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Has `front` serve each connection first (see [`ConnectionFront`]): the router serves what
    /// the front hands over. `None` keeps (or puts back) the router alone.
    #[must_use]
    pub fn with_front(mut self, front: impl Into<Option<Arc<dyn ConnectionFront>>>) -> Self {
        self.front = front.into();
        self
    }

    /// What serving a connection takes, shared by every connection.
    fn serving(&self) -> Arc<Serving> {
        Arc::new(Serving {
            builder: self.limits.builder(),
            front: self.front.clone(),
            limits: self.limits,
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serves `router` until `shutdown` is cancelled; then stops accepting, lets in-flight requests
    /// finish for up to `grace`, and returns. Connections still busy after `grace` are dropped.
    ///
    /// Handlers find the peer's address as `ConnectInfo<SocketAddr>`, as with axum's
    /// `into_make_service_with_connect_info`. Clients may speak HTTP/1.1 or HTTP/2 with prior
    /// knowledge (h2c).
    pub async fn serve(
        self,
        router: Router,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<(), HttpError> {
        if self.worker_threads > 0 {
            return self.serve_on_workers(router, shutdown, grace).await;
        }
        let address = self.address;
        tracing::info!(%address, "HTTP server listening");
        let serving = self.serving();
        let mut connections = JoinSet::new();
        let tasks = ConnectionTasks::default();
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            while connections.try_join_next().is_some() {}
            match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(
                        &serving, &router, stream, peer, &shutdown, &tasks,
                    ));
                }
                Err(error) => accept_failed(&error).await,
            }
        }
        drop(self.listener);
        tracing::info!(%address, grace_ms = grace.as_millis() as u64, "HTTP server draining");
        drain(&mut connections, &tasks, grace).await;
        Ok(())
    }
}

impl HttpServer {
    /// [`HttpServer::serve`] with connections handed to worker threads.
    async fn serve_on_workers(
        self,
        router: Router,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<(), HttpError> {
        let address = self.address;
        let serving = self.serving();
        let mut workers = Vec::with_capacity(self.worker_threads);
        for index in 0..self.worker_threads {
            let worker = Worker::start(index, &serving, &router, &shutdown, grace);
            match worker {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    // The started ones stop when their channel closes.
                    drop(workers);
                    return Err(error);
                }
            }
        }
        tracing::info!(%address, workers = workers.len(), "HTTP server listening");
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => dispatch(&workers, stream, peer),
                Err(error) => accept_failed(&error).await,
            }
        }
        drop(self.listener);
        tracing::info!(%address, grace_ms = grace.as_millis() as u64, "HTTP server draining");
        for worker in workers {
            worker.stopped().await;
        }
        Ok(())
    }
}

/// Hands an accepted connection to the worker with the fewest open connections.
fn dispatch(workers: &[Worker], stream: TcpStream, peer: SocketAddr) {
    let least_busy = workers
        .iter()
        .min_by_key(|worker| worker.open.load(Ordering::Relaxed));
    let Some(worker) = least_busy else { return };
    // A tokio stream belongs to the runtime that accepted it; the worker registers it again.
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(%error, %peer, "cannot hand an accepted connection to a worker");
            return;
        }
    };
    worker.open.fetch_add(1, Ordering::Relaxed);
    if worker.connections.send((stream, peer)).is_err() {
        worker.open.fetch_sub(1, Ordering::Relaxed);
        tracing::error!(%peer, "an HTTP worker has stopped; connection dropped");
    }
}

/// One worker thread as the accepting side sees it.
struct Worker {
    /// Where accepted connections go.
    connections: mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>,
    /// Connections handed to it and not yet closed.
    open: Arc<AtomicUsize>,
    /// Completes when the worker has drained and its runtime is gone.
    done: oneshot::Receiver<()>,
}

impl Worker {
    /// Starts worker `index`: a thread running a single-threaded runtime that serves `router` on
    /// the connections sent to it, until `shutdown` (then drains for up to `grace`).
    fn start(
        index: usize,
        serving: &Arc<Serving>,
        router: &Router,
        shutdown: &CancellationToken,
        grace: Duration,
    ) -> Result<Self, HttpError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| HttpError::Worker { index, source })?;
        let (connections, received) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        let (finished, done) = oneshot::channel();
        let serving = serve_worker(
            received,
            Arc::clone(serving),
            router.clone(),
            Arc::clone(&open),
            shutdown.clone(),
            grace,
        );
        std::thread::Builder::new()
            .name(format!("http-worker-{index}"))
            .spawn(move || {
                runtime.block_on(serving);
                // Tasks the handlers left behind (idle upstream connections) end with the runtime.
                drop(runtime);
                let _ = finished.send(());
            })
            .map_err(|source| HttpError::Worker { index, source })?;
        Ok(Self {
            connections,
            open,
            done,
        })
    }

    /// Waits until the worker has drained and stopped. Dropping the sender first tells a worker
    /// whose shutdown token was not cancelled to stop too.
    async fn stopped(self) {
        drop(self.connections);
        let _ = self.done.await;
    }
}

/// A worker's loop: serves each connection it receives in a task of its own until `shutdown` is
/// cancelled or the accepting side is gone, then drains for up to `grace`.
async fn serve_worker(
    mut received: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    serving: Arc<Serving>,
    router: Router,
    open: Arc<AtomicUsize>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut connections = JoinSet::new();
    // Per worker: the handle each request carries is cloned without touching another thread's.
    let tasks = ConnectionTasks::default();
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => break,
            next = received.recv() => next,
        };
        while connections.try_join_next().is_some() {}
        let Some((stream, peer)) = next else { break };
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                open.fetch_sub(1, Ordering::Relaxed);
                tracing::debug!(%error, %peer, "cannot register a connection with its worker");
                continue;
            }
        };
        let connection = serve_connection(&serving, &router, stream, peer, &shutdown, &tasks);
        let open = Arc::clone(&open);
        connections.spawn(async move {
            connection.await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    // Connections still queued were never served; dropping them closes them.
    received.close();
    drain(&mut connections, &tasks, grace).await;
}

/// Waits up to `grace` for `connections` and the connection `tasks` to finish, then drops the
/// ones still in flight.
async fn drain(connections: &mut JoinSet<()>, tasks: &ConnectionTasks, grace: Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    let drained = tokio::time::timeout_at(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("grace period over; dropping connections still in flight");
        connections.abort_all();
    }
    tasks.drain(deadline).await;
}

/// Serves one connection until it closes; once `shutdown` is cancelled, finishes the request in
/// flight and closes.
fn serve_connection(
    serving: &Arc<Serving>,
    router: &Router,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: &CancellationToken,
    tasks: &ConnectionTasks,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (serving, router, shutdown) = (Arc::clone(serving), router.clone(), shutdown.clone());
    let tasks = tasks.clone();
    async move {
        // Responses are written whole or streamed by hyper; Nagle's delay only adds latency.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "cannot set TCP_NODELAY");
        }
        let io = match &serving.front {
            None => Prefixed::from(stream),
            Some(front) => {
                let connection = FrontConnection {
                    stream,
                    peer,
                    shutdown: shutdown.clone(),
                    limits: serving.limits,
                };
                match front.serve(connection).await {
                    Some(handover) => handover.into_io(),
                    None => return,
                }
            }
        };
        let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            // Only requests that may take their connection over need it (no cost for the rest).
            if request.headers().contains_key(http::header::UPGRADE) {
                request.extensions_mut().insert(tasks.clone());
            }
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = serving
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        let outcome = tokio::select! {
            outcome = connection.as_mut() => outcome,
            () = shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = outcome {
            tracing::trace!(%error, %peer, "connection ended with an error");
        }
    }
}

/// An accept error: per connection ones (the peer reset it first) are skipped; for the others
/// (out of file descriptors) the loop pauses so it does not spin, as `axum::serve` does.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "accepting a connection failed; pausing for 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server answering `GET /peer` with the peer address it was given, and its address.
    async fn serve(limits: ConnectionLimits) -> (SocketAddr, tokio_util::sync::DropGuard) {
        let router = Router::new().route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
        );
        let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("binds")
            .with_limits(limits);
        let address = server.local_addr();
        let stop = CancellationToken::new();
        tokio::spawn(server.serve(router, stop.clone(), Duration::from_secs(1)));
        (address, stop.drop_guard())
    }

    /// Everything the server sends on `stream` until it closes the connection (or 5 s pass).
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut received = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut received)).await;
        assert!(read.is_ok(), "the server did not close the connection");
        String::from_utf8_lossy(&received).into_owned()
    }

    #[tokio::test]
    async fn a_client_too_slow_to_send_its_request_head_is_disconnected() {
        let limits = ConnectionLimits {
            header_read_timeout: Some(Duration::from_millis(200)),
            ..ConnectionLimits::default()
        };
        let (address, _stop) = serve(limits).await;
        let mut slow = TcpStream::connect(address).await.expect("connects");
        slow.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\n")
            .await
            .expect("writes");
        // Closed without an answer to the unfinished request (hyper may send a 408 first).
        let answer = read_to_close(&mut slow).await;
        assert!(!answer.contains("200 OK"), "{answer}");

        let mut prompt = TcpStream::connect(address).await.expect("connects");
        prompt
            .write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .expect("writes");
        let answer = read_to_close(&mut prompt).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(
            answer.ends_with("127.0.0.1"),
            "the handler sees the peer: {answer}"
        );
    }

    #[tokio::test]
    async fn more_header_fields_than_the_parser_allows_are_a_431() {
        let (address, _stop) = serve(ConnectionLimits::default().with_max_headers(10)).await;
        let mut client = TcpStream::connect(address).await.expect("connects");
        let fields: String = (0..11).map(|i| format!("x-field-{i}: 1\r\n")).collect();
        let head = format!("GET /peer HTTP/1.1\r\nhost: x\r\n{fields}connection: close\r\n\r\n");
        client.write_all(head.as_bytes()).await.expect("writes");
        let answer = read_to_close(&mut client).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }

    #[tokio::test]
    async fn worker_threads_serve_every_connection_and_drain_on_shutdown() {
        // Each answer names the thread that served it and spawns a task there, as a proxy's
        // upstream connection does.
        let router = Router::new().route(
            "/thread",
            get(|| async {
                let name = std::thread::current().name().unwrap_or("unnamed").to_owned();
                tokio::spawn(async move { name }).await.expect("spawned task ran")
            }),
        );
        let server = HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("binds")
            .with_worker_threads(2);
        let address = server.local_addr();
        let stop = CancellationToken::new();
        let serving = tokio::spawn(server.serve(router, stop.clone(), Duration::from_secs(5)));

        // Separate clients, so separate connections; kept open, so the least busy worker is
        // never the one that got the connection before.
        let mut threads = std::collections::BTreeSet::new();
        let mut clients = Vec::new();
        for _ in 0..8 {
            let client = reqwest::Client::builder().no_proxy().build().expect("client");
            clients.push(client.clone());
            let answer = client
                .get(format!("http://{address}/thread"))
                .send()
                .await
                .expect("request");
            assert_eq!(answer.status(), reqwest::StatusCode::OK);
            let thread = answer.text().await.expect("body");
            assert!(thread.starts_with("http-worker-"), "{thread}");
            threads.insert(thread);
        }
        assert_eq!(threads.len(), 2, "{threads:?}");

        drop(clients);
        stop.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(5), serving).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "the server drains and returns: {stopped:?}"
        );
        assert!(
            TcpStream::connect(address).await.is_err(),
            "the listener is closed"
        );
    }

    #[tokio::test]
    async fn http2_with_prior_knowledge_is_served_beside_http1() {
        let (address, _stop) = serve(ConnectionLimits::default()).await;
        let h2 = reqwest::Client::builder()
            .no_proxy()
            .http2_prior_knowledge()
            .build()
            .expect("client");
        let response = h2
            .get(format!("http://{address}/peer"))
            .send()
            .await
            .expect("h2 request");
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.text().await.expect("body"), "127.0.0.1");
    }
}
