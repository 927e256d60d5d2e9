//! A connection front: code that serves the common requests of an HTTP/1.1 connection itself and
//! hands the connection to the hyper and axum stack at the first request it does not serve.
//!
//! Why it exists: on a reverse proxy the per-request work of a general HTTP server (hyper's
//! dispatcher and body channels, a task hop to the upstream connection's own task, axum's router
//! and middleware futures) costs more CPU than the proxying itself (docs/performance.md, "Gateway").
//! A front that only ever serves plain requests can parse, forward and answer them in one task
//! with no intermediate structures, while everything unusual (HTTP/2, upgrades, chunked request
//! bodies, `Expect`, a parse error, a path the router serves itself) stays with the general stack
//! and keeps its exact behaviour: the front gives the connection back with every byte it read and
//! did not serve, and the stack parses them as if it had read them itself.
//!
//! The server ([`crate::HttpServer::with_front`]) calls the front first on every connection it
//! accepts; a front returns `None` when it served the connection to its end, or a [`Handover`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::server::ConnectionLimits;

/// Serves what it can of one accepted HTTP connection before the server's router does.
pub trait ConnectionFront: Send + Sync + std::fmt::Debug + 'static {
    /// Serves requests of `connection` until its end (`None`) or until a request it does not
    /// serve, which it hands over unread ([`Handover`]) together with the rest of the connection.
    ///
    /// Once `connection.shutdown` is cancelled, a front finishes the request in flight, answers
    /// it with `Connection: close` and ends; it closes an idle connection at once.
    fn serve(
        &self,
        connection: FrontConnection,
    ) -> Pin<Box<dyn Future<Output = Option<Handover>> + Send + 'static>>;
}

/// An accepted connection as a [`ConnectionFront`] receives it.
#[derive(Debug)]
#[non_exhaustive]
pub struct FrontConnection {
    /// The connection (`TCP_NODELAY` already set).
    pub stream: TcpStream,
    /// The peer's address.
    pub peer: SocketAddr,
    /// Cancelled when the server starts its graceful shutdown.
    pub shutdown: CancellationToken,
    /// The server's connection limits, which the front applies to the requests it serves
    /// (`header_read_timeout` in particular) and leaves the stack to apply to the rest.
    pub limits: ConnectionLimits,
}

/// A connection given back to the server's stack: every byte the front read and did not serve
/// (the start of the request it declined) is read again by the stack before the stream's.
#[derive(Debug)]
pub struct Handover {
    stream: TcpStream,
    unread: Bytes,
}

impl Handover {
    /// `stream`, whose next bytes are `unread` and then whatever the stream itself delivers.
    pub fn new(stream: TcpStream, unread: Bytes) -> Self {
        Self { stream, unread }
    }

    /// The stream as the stack reads it.
    pub(crate) fn into_io(self) -> Prefixed {
        Prefixed {
            unread: self.unread,
            stream: self.stream,
        }
    }
}

/// A stream that first yields bytes already read from it.
#[derive(Debug)]
pub(crate) struct Prefixed {
    unread: Bytes,
    stream: TcpStream,
}

impl From<TcpStream> for Prefixed {
    fn from(stream: TcpStream) -> Self {
        Self {
            unread: Bytes::new(),
            stream,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.unread.has_remaining() {
            let take = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread[..take]);
            self.unread.advance(take);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
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

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_handed_over_stream_reads_the_unread_bytes_first() -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut client = TcpStream::connect(listener.local_addr()?).await?;
        let (server, _) = listener.accept().await?;
        client.write_all(b" world").await?;
        client.shutdown().await?;
        let mut io = Handover::new(server, Bytes::from_static(b"hello")).into_io();
        let mut read = String::new();
        io.read_to_string(&mut read).await?;
        assert_eq!(read, "hello world");
        Ok(())
    }
}
