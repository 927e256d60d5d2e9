//! Binding and serving with graceful shutdown.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
}

/// A bound HTTP listener, ready to serve. Binding first and serving second lets a caller learn the
/// port (bind to port 0 in tests) before requests flow.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    address: SocketAddr,
}

impl HttpServer {
    /// Binds `address`.
    pub async fn bind(address: SocketAddr) -> Result<Self, HttpError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| HttpError::Bind { address, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| HttpError::Bind { address, source })?;
        Ok(Self { listener, address })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serves `router` until `shutdown` is cancelled; then stops accepting, lets in-flight requests
    /// finish for up to `grace`, and returns. Connections still busy after `grace` are dropped.
    pub async fn serve(
        self,
        router: Router,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Result<(), HttpError> {
        let address = self.address;
        tracing::info!(%address, "HTTP server listening");
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let serving =
            axum::serve(self.listener, service).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let serving = std::future::IntoFuture::into_future(serving);
        tokio::pin!(serving);
        tokio::select! {
            result = &mut serving => result.map_err(HttpError::Serve),
            () = shutdown.cancelled() => {
                tracing::info!(%address, grace_ms = grace.as_millis() as u64, "HTTP server draining");
                match tokio::time::timeout(grace, serving).await {
                    Ok(result) => result.map_err(HttpError::Serve),
                    Err(_) => {
                        tracing::warn!(%address, "grace period over; dropping connections still in flight");
                        Ok(())
                    }
                }
            }
        }
    }
}
