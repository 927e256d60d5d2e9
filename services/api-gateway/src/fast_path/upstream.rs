//! The fast path's keep-alive connections to upstream instances: plain TCP streams, one pool per
//! serving thread, each connection used by one request at a time from the task serving it.
//!
//! Why not the `pool` module's hyper connections: a hyper client connection is driven by a task
//! of its own, so every request hops to that task and back (two wake-ups), and its response body
//! comes through a channel. Here the task serving the client writes the request and reads the
//! response itself. The rules are the `pool` module's: the most recently used idle connection,
//! at most `gateway.upstream.pool_max_idle_per_host` idle per instance and thread, closed after
//! `pool_idle_timeout_ms` idle; a connection the upstream closed while idle is skipped (its
//! end of stream is already known to the runtime, so this costs no system call); a safe request
//! on a connection idle for a second or more that ends without an answer within 100 ms is sent
//! once more on a new connection and counted in `keel_gateway_upstream_replays_total`. Connections
//! count themselves in `keel_gateway_upstream_connections` and
//! `keel_gateway_upstream_connects_total`, as the hyper ones do.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{StatusCode, Version};
use thread_local::ThreadLocal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::UpstreamConfig;
use crate::connector::{UPSTREAM_CONNECTIONS, UPSTREAM_CONNECTS};
use crate::pool::{MAY_BE_STALE, REPLAY_WINDOW, UPSTREAM_REPLAYS, UpstreamError, open_tcp};

/// Bytes read from an upstream at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Largest response head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in a response head.
const MAX_FIELDS: usize = 100;

/// An open connection to an upstream instance, with the bytes read from it and not yet used.
pub(super) struct Connection {
    /// The stream.
    pub(super) stream: TcpStream,
    /// Read from the stream and not yet passed on.
    pub(super) buffer: BytesMut,
    _open: OpenConnection,
}

/// Counts one connection in `keel_gateway_upstream_connections` while it lives.
struct OpenConnection(metrics::Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// A response head read from an upstream: its fields stay the bytes that came (validated by the
/// parser, as hyper's client takes them), passed on by [`super::wire::write_proxied_response_head`].
pub(super) struct ResponseHead {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    /// The head's bytes.
    bytes: Bytes,
    /// Where the reason phrase is in `bytes`.
    reason: Range<usize>,
    /// Where each field's name and value are in `bytes`.
    fields: Vec<(Range<usize>, Range<usize>)>,
}

impl ResponseHead {
    /// The reason phrase the upstream sent (empty when none), passed on as hyper passes it.
    pub(super) fn reason(&self) -> &[u8] {
        &self.bytes[self.reason.clone()]
    }

    /// The head's fields, names and values, in the order they came.
    pub(super) fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
        self.fields
            .iter()
            .map(|(name, value)| (&self.bytes[name.clone()], &self.bytes[value.clone()]))
    }
}

/// The pools of every serving thread.
pub(super) struct RawPools {
    pools: ThreadLocal<Mutex<ThreadPool>>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle_per_host: usize,
}

impl std::fmt::Debug for RawPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPools")
            .field("idle_timeout", &self.idle_timeout)
            .field("max_idle_per_host", &self.max_idle_per_host)
            .finish_non_exhaustive()
    }
}

/// One thread's idle connections by upstream authority. Hashed with foldhash rather than
/// SipHash: the keys are the instances the registry lists, not anything a client chooses, and the
/// map is looked up twice per request.
type ThreadPool = HashMap<Box<str>, Vec<Idle>, foldhash::fast::RandomState>;

struct Idle {
    connection: Connection,
    since: Instant,
}

impl RawPools {
    /// Pools keeping connections as `settings` say; starts their idle sweep (call within a Tokio
    /// runtime), which ends when the pools are dropped.
    pub(super) fn start(settings: &UpstreamConfig) -> Arc<Self> {
        let pools = Arc::new(Self {
            pools: ThreadLocal::new(),
            connect_timeout: settings.connect_timeout(),
            idle_timeout: settings.pool_idle_timeout(),
            max_idle_per_host: settings.pool_max_idle_per_host,
        });
        // Every second at most: the sweep is also what closes the idle connections their upstream
        // closed (nothing reads them while they are idle).
        let every = (pools.idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(1));
        tokio::spawn(sweep(Arc::downgrade(&pools), every));
        pools
    }

    /// Sends `request` (a whole request: head, no body) to `authority` on an idle connection or
    /// a new one and reads the response head; `safe` says whether it may be sent again after a
    /// kept-alive connection closed under it; `now` is the time it starts (the caller's clock
    /// reading, not taken again). Answers the head and the connection, whose buffer holds the
    /// body bytes read with the head.
    pub(super) async fn exchange(
        &self,
        authority: &str,
        request: &[u8],
        safe: bool,
        now: Instant,
    ) -> Result<(ResponseHead, Connection), UpstreamError> {
        while let Some((mut connection, idle_for)) = self.checkout(authority, now) {
            // The exchange's start stands for when the request went out (microseconds before; on
            // a retry after a failed write, a little earlier): the replay window counts from it.
            let written = now;
            // A first write that fails wrote nothing: the request never left, any method may
            // go on another connection.
            match connection.stream.write(request).await {
                Ok(0) | Err(_) => continue,
                Ok(sent) if sent < request.len() => {
                    if let Err(error) = connection.stream.write_all(&request[sent..]).await {
                        return Err(UpstreamError::Io(error));
                    }
                }
                Ok(_) => {}
            }
            match read_head(&mut connection).await {
                Ok(head) => return Ok((head, connection)),
                Err(ReadError::Closed(error))
                    if safe && idle_for >= MAY_BE_STALE && written.elapsed() < REPLAY_WINDOW =>
                {
                    tracing::debug!(%error, authority, "a kept-alive connection closed under a safe request; sending it again on a new connection");
                    metrics::counter!(UPSTREAM_REPLAYS, "upstream" => authority.to_owned()).increment(1);
                    break;
                }
                Err(error) => return Err(error.into()),
            }
        }
        let mut connection = self.connect(authority).await?;
        connection
            .stream
            .write_all(request)
            .await
            .map_err(UpstreamError::Io)?;
        let head = read_head(&mut connection).await?;
        Ok((head, connection))
    }

    /// The most recently used idle connection to `authority` on this thread and how long it was
    /// idle at `now`, dropping those idle too long or closed.
    fn checkout(&self, authority: &str, now: Instant) -> Option<(Connection, Duration)> {
        let mut pool = self.thread_pool();
        let idle = pool.get_mut(authority)?;
        while let Some(Idle {
            mut connection,
            since,
        }) = idle.pop()
        {
            let idle_for = now.duration_since(since);
            if idle_for >= self.idle_timeout {
                idle.clear(); // the rest are older still
            } else if still_open(&mut connection.stream) {
                return Some((connection, idle_for));
            }
        }
        None
    }

    /// Puts `connection`, whose response has been read to its end, back as the newest idle
    /// connection to `authority` on this thread.
    pub(super) fn checkin(&self, authority: &str, connection: Connection) {
        if self.max_idle_per_host == 0 || !connection.buffer.is_empty() {
            return;
        }
        let mut pool = self.thread_pool();
        let idle = match pool.get_mut(authority) {
            Some(idle) => idle,
            None => pool.entry(authority.into()).or_default(),
        };
        if idle.len() >= self.max_idle_per_host {
            idle.remove(0);
        }
        idle.push(Idle {
            connection,
            since: Instant::now(),
        });
    }

    fn thread_pool(&self) -> std::sync::MutexGuard<'_, ThreadPool> {
        self.pools
            .get_or(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn connect(&self, authority: &str) -> Result<Connection, UpstreamError> {
        let stream = open_tcp(authority, self.connect_timeout).await?;
        metrics::counter!(UPSTREAM_CONNECTS, "upstream" => authority.to_owned()).increment(1);
        let open = metrics::gauge!(UPSTREAM_CONNECTIONS, "upstream" => authority.to_owned());
        open.increment(1.0);
        Ok(Connection {
            stream,
            buffer: BytesMut::with_capacity(READ_CHUNK),
            _open: OpenConnection(open),
        })
    }
}

/// Whether an idle `stream` is still usable: nothing arrived on it since its last response (the
/// runtime has seen no readiness), or what made it ready was not data or its end.
fn still_open(stream: &mut TcpStream) -> bool {
    let mut context = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut context) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0_u8; 1];
            matches!(stream.try_read(&mut probe), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
        }
    }
}

/// Why a response head could not be read.
enum ReadError {
    /// The connection ended (or was reset) before the first byte of a response.
    Closed(std::io::Error),
    /// It failed after some of the response arrived, or mid-read.
    Io(std::io::Error),
    /// The bytes are not a valid response head.
    Malformed(&'static str),
}

impl From<ReadError> for UpstreamError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Closed(error) | ReadError::Io(error) => Self::Io(error),
            ReadError::Malformed(why) => Self::Malformed(why),
        }
    }
}

/// Reads the next final response head from `connection` (skipping `1xx` heads other than `101`,
/// which is an error: the fast path never asks to upgrade).
async fn read_head(connection: &mut Connection) -> Result<ResponseHead, ReadError> {
    let mut received_any = false;
    loop {
        if !connection.buffer.is_empty() {
            received_any = true;
            match parse_response(&mut connection.buffer)? {
                Some(head) if head.status.is_informational() => {
                    if head.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(ReadError::Malformed(
                            "101 to a request that did not ask to upgrade",
                        ));
                    }
                    continue;
                }
                Some(head) => return Ok(head),
                None if connection.buffer.len() >= MAX_HEAD_BYTES => {
                    return Err(ReadError::Malformed("response head too large"));
                }
                None => {}
            }
        }
        connection.buffer.reserve(READ_CHUNK);
        match connection.stream.read_buf(&mut connection.buffer).await {
            Ok(0) => {
                let ended = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a whole response head",
                );
                return Err(match received_any {
                    true => ReadError::Io(ended),
                    false => ReadError::Closed(ended),
                });
            }
            Ok(_) => {}
            Err(error) if !received_any && is_reset(&error) => return Err(ReadError::Closed(error)),
            Err(error) => return Err(ReadError::Io(error)),
        }
    }
}

fn is_reset(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
    )
}

/// The response head at the start of `buffer`, taken out of it; `None` when incomplete.
fn parse_response(buffer: &mut BytesMut) -> Result<Option<ResponseHead>, ReadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ReadError::Malformed("too many header fields")),
        Err(_) => return Err(ReadError::Malformed("invalid response head")),
    };
    let malformed = ReadError::Malformed("invalid response head");
    let status = response
        .code
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or(ReadError::Malformed("invalid status code"))?;
    let version = match response.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Err(malformed),
    };
    let base = buffer.as_ptr() as usize;
    let reason = response.reason.map_or(0..0, |reason| {
        let start = reason.as_ptr() as usize - base;
        start..start + reason.len()
    });
    let fields = response
        .headers
        .iter()
        .map(|field| {
            let name = field.name.as_ptr() as usize - base;
            let value = field.value.as_ptr() as usize - base;
            (name..name + field.name.len(), value..value + field.value.len())
        })
        .collect();
    Ok(Some(ResponseHead {
        status,
        version,
        bytes: buffer.split_to(len).freeze(),
        reason,
        fields,
    }))
}

/// Closes, every `every`, the connections idle longer than the timeout or closed by their
/// upstream; ends with the pools.
async fn sweep(pools: Weak<RawPools>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(pools) = pools.upgrade() else { return };
        let now = Instant::now();
        for pool in pools.pools.iter() {
            let mut pool = pool.lock().unwrap_or_else(PoisonError::into_inner);
            pool.retain(|_, idle| {
                idle.retain_mut(|c| {
                    now.duration_since(c.since) < pools.idle_timeout && still_open(&mut c.connection.stream)
                });
                !idle.is_empty()
            });
        }
    }
}
