//! Counted upstream connections, so the state of the upstream connection pools can be exported.
//!
//! Why a module of its own: "how many connections does the gateway hold to each instance, and how
//! often does it open new ones" is what tells an operator whether keep-alive works (a steady
//! count) or every request pays a handshake (a climbing connect counter). Every connection the
//! pools (`crate::pool`) open is wrapped in a [`CountedConnection`], which counts itself in
//! `keel_gateway_upstream_connections{upstream}` until it is dropped, whether the pool closed it as
//! idle, the instance closed it, or it failed.

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Connections open to an upstream instance, by `upstream` (its `host:port`).
pub(crate) const UPSTREAM_CONNECTIONS: &str = "keel_gateway_upstream_connections";
/// Connections opened to an upstream instance, by `upstream`.
pub(crate) const UPSTREAM_CONNECTS: &str = "keel_gateway_upstream_connects_total";

/// An upstream connection, counted in `keel_gateway_upstream_connections` while it exists.
#[derive(Debug)]
pub(crate) struct CountedConnection {
    stream: TokioIo<TcpStream>,
    open: metrics::Gauge,
}

impl CountedConnection {
    /// Counts `stream`, just opened to the instance at `upstream` (`host:port`).
    pub(crate) fn new(stream: TokioIo<TcpStream>, upstream: &str) -> Self {
        metrics::counter!(UPSTREAM_CONNECTS, "upstream" => upstream.to_owned()).increment(1);
        let open = metrics::gauge!(UPSTREAM_CONNECTIONS, "upstream" => upstream.to_owned());
        open.increment(1.0);
        Self { stream, open }
    }
}

impl Drop for CountedConnection {
    fn drop(&mut self) {
        self.open.decrement(1.0);
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
