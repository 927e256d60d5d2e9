//! The gateway's keep-alive HTTP/1.1 connections to upstream instances: one pool per serving
//! thread, a connection handed back the moment its response body ends.
//!
//! Why a module of its own, instead of hyper-util's pooled client: that client is built for any
//! caller on any thread, and pays for it on every request: a shared pool behind a mutex and a hash
//! of the pool key, a lazily built connect future raced against the checkout, and one spawned task
//! per request that waits for the connection to become idle again before returning it. On the
//! gateway every request is served start to end by one thread (`keel_http::HttpServer`'s worker
//! threads), so each thread keeps its own pool, a connection goes back to it when its response
//! body reaches its end ([`PooledBody`]), and a request takes the most recently used idle
//! connection. Connections are plain `hyper::client::conn::http1` connections, each driven by a
//! task on the thread that opened it, with upgrades enabled (WebSocket tunnels).
//!
//! Rules:
//! - a request is sent on an idle connection to the same `host:port` when one is ready, otherwise
//!   on a new one (connect timeout `gateway.upstream.connect_timeout_ms`, `TCP_NODELAY`);
//! - a connection the upstream closed while it sat idle is skipped, and so is one still busy
//!   sending the request body of an exchange whose response has already ended; a request that could
//!   not be written on a connection at all is sent again on another (it never reached the
//!   upstream);
//! - a request with a safe method and no body or one read whole before sending, written on a
//!   connection idle for a second or more that ended without an answer within 100 ms (the
//!   upstream closed it under its own keep-alive timeout as the request went out), is sent once
//!   more on a new connection and counted in `keel_gateway_upstream_replays_total{upstream}`;
//! - a connection goes back to the pool only when its response ended cleanly; a response the
//!   client abandoned mid-body closes its connection (hyper cannot reuse it);
//! - at most `gateway.upstream.pool_max_idle_per_host` idle connections per instance and thread;
//!   one idle longer than `gateway.upstream.pool_idle_timeout_ms` is closed (checked on use and by
//!   a sweep every few seconds);
//! - every connection counts itself in `keel_gateway_upstream_connections{upstream}` while it is
//!   open, and each one opened in `keel_gateway_upstream_connects_total{upstream}`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use thread_local::ThreadLocal;
use tokio::net::TcpStream;

use crate::config::UpstreamConfig;
use crate::connector::CountedConnection;

/// Longest a request waits for a pooled connection that is not ready at once before it lets that
/// connection go and takes another.
const READY_WAIT: Duration = Duration::from_millis(20);

/// Idle time after which a pooled connection may be closing under the upstream's keep-alive
/// timeout (servers commonly keep idle connections 5 s or more) as a request goes out on it.
pub(crate) const MAY_BE_STALE: Duration = Duration::from_secs(1);

/// Longest time after a request was written within which a failure of its kept-alive connection
/// counts as the keep-alive race (the upstream closed the connection as the request arrived),
/// not as the upstream failing while it handled the request.
pub(crate) const REPLAY_WINDOW: Duration = Duration::from_millis(100);

/// Replays of requests whose kept-alive connection closed under them, by `upstream`.
pub(crate) const UPSTREAM_REPLAYS: &str = "keel_gateway_upstream_replays_total";

/// A copy of `request` to send again, when that is safe: a safe method (`GET`, `HEAD`,
/// `OPTIONS`, `TRACE`, RFC 9110 §9.2.1; `QUERY`), which changes nothing upstream however often
/// it runs, and a body that can be sent again: none, or `whole`, the body read before sending
/// (never a streamed one). Nothing else, not even with an `Idempotency-Key` header: no Keel
/// service deduplicates on it, and a refresh or verification sent twice fails the second time.
/// Headers are copied; extensions are not (nothing upstream reads them).
fn replayable(request: &Request<Body>, whole: Option<&Bytes>) -> Option<Request<Body>> {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) || request.method().as_str() == "QUERY";
    if !safe {
        return None;
    }
    let body = match whole {
        Some(bytes) => Body::from(bytes.clone()),
        None if HttpBody::is_end_stream(request.body()) => Body::empty(),
        None => return None,
    };
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

/// Whether `error` says the connection ended before any answer to a request written on it: the
/// upstream closed it (its idle timeout) or reset it as the request arrived.
pub(crate) fn closed_before_answering(error: &hyper::Error) -> bool {
    use std::error::Error as _;
    let io_kind = error
        .source()
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    error.is_incomplete_message()
        || matches!(
            io_kind,
            Some(
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            )
        )
}

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No connection could be opened (refused, unreachable, or the connect timeout passed): the
    /// instance is not there.
    #[error("connect")]
    Connect(#[source] std::io::Error),
    /// The HTTP/1.1 handshake on a new connection failed.
    #[error("HTTP/1.1 handshake")]
    Handshake(#[source] hyper::Error),
    /// The exchange broke after the request was (maybe partly) sent.
    #[error(transparent)]
    Exchange(hyper::Error),
    /// The fast path's exchange broke after the request was (maybe partly) sent: the connection
    /// failed or ended before a whole response head arrived.
    #[error("upstream connection: {0}")]
    Io(#[source] std::io::Error),
    /// The fast path read a response head that is not valid HTTP/1.1 (or one it never asked for,
    /// such as `101`).
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

impl UpstreamError {
    /// Whether the instance could not be reached at all (a passive-health failure).
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_))
    }
}

/// The pools of every serving thread, and how their connections are made and kept.
pub(crate) struct UpstreamPools {
    pools: ThreadLocal<Mutex<ThreadPool>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle_per_host: usize,
}

impl std::fmt::Debug for UpstreamPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPools")
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_idle_per_host", &self.max_idle_per_host)
            .finish_non_exhaustive()
    }
}

/// One thread's idle connections, by upstream `host:port`, oldest first.
#[derive(Default)]
struct ThreadPool {
    idle: HashMap<Box<str>, Vec<IdleConnection>>,
}

struct IdleConnection {
    sender: SendRequest<Body>,
    since: Instant,
}

impl UpstreamPools {
    /// Pools that connect and keep connections as `settings` say. Starts the sweep of connections
    /// idle too long, which ends when the pools are dropped (call within a Tokio runtime).
    pub(crate) fn start(settings: &UpstreamConfig) -> Arc<Self> {
        let pools = Arc::new(Self {
            pools: ThreadLocal::new(),
            connect_timeout: settings.connect_timeout(),
            idle_timeout: settings.pool_idle_timeout(),
            max_idle_per_host: settings.pool_max_idle_per_host,
        });
        let every = (pools.idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
        tokio::spawn(sweep(Arc::downgrade(&pools), every));
        pools
    }

    /// Sends `request` (origin-form URI, `Host` set) to the instance at `authority` on a pooled
    /// connection or a new one, and answers the response head; its body hands the connection
    /// back to the pool when it ends. `whole` is the request's body when it was read whole before
    /// sending (it can then be sent again, see [`replayable`]).
    pub(crate) async fn send(
        self: &Arc<Self>,
        authority: &str,
        mut request: Request<Body>,
        whole: Option<Bytes>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        while let Some((mut sender, idle_for)) = self.checkout(authority) {
            if !sender.is_ready() {
                // Usually a tick of its connection's task away; but a connection whose response
                // ended while the request body was still streaming up stays busy until the body
                // ends, which is the sender's business, not this request's.
                match tokio::time::timeout(READY_WAIT, sender.ready()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => continue, // closed, or busy: the next one, or a new one
                }
            }
            // A connection idle for a while may be closing under the upstream's own idle timeout
            // as the request goes out: keep what it takes to send it again.
            let replay = (idle_for >= MAY_BE_STALE)
                .then(|| replayable(&request, whole.as_ref()))
                .flatten();
            let written = Instant::now();
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.pooled(authority, sender, response)),
                Err(mut failed) => match failed.take_message() {
                    // Never written: the connection was closing. Try another.
                    Some(unsent) => request = unsent,
                    None => {
                        let error = failed.into_error();
                        let raced = written.elapsed() < REPLAY_WINDOW && closed_before_answering(&error);
                        match replay {
                            Some(again) if raced => {
                                tracing::debug!(%error, authority, "a kept-alive connection closed under a safe request; sending it again on a new connection");
                                metrics::counter!(UPSTREAM_REPLAYS, "upstream" => authority.to_owned())
                                    .increment(1);
                                request = again;
                                break;
                            }
                            _ => return Err(UpstreamError::Exchange(error)),
                        }
                    }
                },
            }
        }
        let mut sender = self.connect(authority).await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(UpstreamError::Exchange)?;
        Ok(self.pooled(authority, sender, response))
    }

    /// The most recently used idle connection to `authority` on this thread and how long it was
    /// idle, dropping any that were idle too long or were closed.
    fn checkout(&self, authority: &str) -> Option<(SendRequest<Body>, Duration)> {
        let mut pool = self.thread_pool();
        let idle = pool.idle.get_mut(authority)?;
        let now = Instant::now();
        while let Some(connection) = idle.pop() {
            let idle_for = now.duration_since(connection.since);
            if idle_for >= self.idle_timeout {
                idle.clear(); // the rest are older still
            } else if !connection.sender.is_closed() {
                return Some((connection.sender, idle_for));
            }
        }
        None
    }

    /// Puts `sender` back as the newest idle connection to `authority` on this thread.
    fn checkin(&self, authority: &str, sender: SendRequest<Body>) {
        if sender.is_closed() || self.max_idle_per_host == 0 {
            return;
        }
        let mut pool = self.thread_pool();
        let idle = match pool.idle.get_mut(authority) {
            Some(idle) => idle,
            None => pool.idle.entry(authority.into()).or_default(),
        };
        if idle.len() >= self.max_idle_per_host {
            idle.remove(0);
        }
        idle.push(IdleConnection {
            sender,
            since: Instant::now(),
        });
    }

    fn thread_pool(&self) -> std::sync::MutexGuard<'_, ThreadPool> {
        self.pools
            .get_or(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a new connection to `authority`, its task spawned on this thread's runtime.
    async fn connect(&self, authority: &str) -> Result<SendRequest<Body>, UpstreamError> {
        let stream = open_tcp(authority, self.connect_timeout).await?;
        let io = CountedConnection::new(TokioIo::new(stream), authority);
        let (sender, connection) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(UpstreamError::Handshake)?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// `response` with a body that returns `sender` to the pool at its end (not after a `101`:
    /// that connection now belongs to the tunnel).
    fn pooled(
        self: &Arc<Self>,
        authority: &str,
        sender: SendRequest<Body>,
        response: Response<Incoming>,
    ) -> Response<PooledBody> {
        let reusable = response.status() != StatusCode::SWITCHING_PROTOCOLS;
        response.map(|body| PooledBody {
            body,
            lease: reusable.then(|| Lease {
                pools: Arc::clone(self),
                authority: authority.into(),
                sender,
            }),
        })
    }
}

/// A new TCP connection to `authority` within `timeout`, with `TCP_NODELAY` (requests are written
/// whole; Nagle's delay would only add latency). Both kinds of upstream connection start here.
pub(crate) async fn open_tcp(authority: &str, timeout: Duration) -> Result<TcpStream, UpstreamError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(authority)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return Err(UpstreamError::Connect(error)),
        Err(_) => {
            let timed_out = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {} ms", timeout.as_millis()),
            );
            return Err(UpstreamError::Connect(timed_out));
        }
    };
    stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
    Ok(stream)
}

/// Closes, every `every`, the connections of every thread idle longer than the timeout; ends when
/// the pools are gone.
async fn sweep(pools: Weak<UpstreamPools>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(pools) = pools.upgrade() else { return };
        let now = Instant::now();
        for pool in pools.pools.iter() {
            let mut pool = pool.lock().unwrap_or_else(PoisonError::into_inner);
            pool.idle.retain(|_, idle| {
                idle.retain(|c| now.duration_since(c.since) < pools.idle_timeout && !c.sender.is_closed());
                !idle.is_empty()
            });
        }
    }
}

/// A connection lent to one response, returned when its body ends.
struct Lease {
    pools: Arc<UpstreamPools>,
    authority: Box<str>,
    sender: SendRequest<Body>,
}

/// An upstream response body that hands its connection back to the pool of the thread it ends
/// on, as soon as the last frame has been read (or at once for an empty body). Dropped before its
/// end, it lets the connection close.
pub(crate) struct PooledBody {
    body: Incoming,
    lease: Option<Lease>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.pools.checkin(&lease.authority, lease.sender);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Err(_))) => self.lease = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.release();
        }
    }
}
