//! The upstream connector: hyper-util's TCP connector, counted, so the state of the upstream
//! connection pools can be exported.
//!
//! Why a module of its own: hyper-util's pooled client says nothing about its pool, yet "how many
//! connections does the gateway hold to each instance, and how often does it open new ones" is
//! what tells an operator whether keep-alive works (a steady count) or every request pays a
//! handshake (a climbing connect counter). Every connection the pools open goes through
//! [`CountingConnector`]; the connection it returns counts itself in
//! `keel_gateway_upstream_connections{upstream}` until it is dropped, whether the pool closed it
//! as idle, the instance closed it, or it failed.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Connections open to an upstream instance, by `upstream` (its `host:port`).
pub(crate) const UPSTREAM_CONNECTIONS: &str = "keel_gateway_upstream_connections";
/// Connections opened to an upstream instance, by `upstream`.
pub(crate) const UPSTREAM_CONNECTS: &str = "keel_gateway_upstream_connects_total";

/// An [`HttpConnector`] whose connections are counted per upstream instance.
#[derive(Clone, Debug)]
pub(crate) struct CountingConnector {
    inner: HttpConnector,
}

impl CountingConnector {
    /// Counts the connections `inner` makes.
    pub(crate) fn new(inner: HttpConnector) -> Self {
        Self { inner }
    }
}

/// The future of one connection attempt.
type Connecting =
    Pin<Box<dyn Future<Output = Result<CountedConnection, Box<dyn std::error::Error + Send + Sync>>> + Send>>;

impl tower::Service<Uri> for CountingConnector {
    type Response = CountedConnection;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::<Uri>::poll_ready(&mut self.inner, cx).map_err(Into::into)
    }

    fn call(&mut self, target: Uri) -> Self::Future {
        let upstream = target
            .authority()
            .map_or_else(String::new, |authority| authority.as_str().to_owned());
        let connecting = tower::Service::<Uri>::call(&mut self.inner, target);
        Box::pin(async move {
            let stream = connecting.await?;
            metrics::counter!(UPSTREAM_CONNECTS, "upstream" => upstream.clone()).increment(1);
            let open = metrics::gauge!(UPSTREAM_CONNECTIONS, "upstream" => upstream);
            open.increment(1.0);
            Ok(CountedConnection { stream, open })
        })
    }
}

/// An upstream connection, counted in `keel_gateway_upstream_connections` while it exists.
#[derive(Debug)]
pub(crate) struct CountedConnection {
    stream: TokioIo<TcpStream>,
    open: metrics::Gauge,
}

impl Drop for CountedConnection {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

impl Connection for CountedConnection {
    fn connected(&self) -> Connected {
        self.stream.connected()
    }
}

impl Read for CountedConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl Write for CountedConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
}
