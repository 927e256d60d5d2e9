//! An HTTP server as a kernel component (the gateway's public listener, a module host's).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use keel_http::HttpServer;
use keel_kernel::{Component, ComponentError, KernelHandle};

/// Serves a router on a bound listener from start until the kernel shuts down.
pub struct HttpComponent {
    name: String,
    pending: Mutex<Option<(HttpServer, Router)>>,
    grace: Duration,
}

impl HttpComponent {
    /// A component serving `router` on `server`, draining for up to `grace` on shutdown.
    pub fn new(name: &str, server: HttpServer, router: Router, grace: Duration) -> Self {
        Self {
            name: name.to_owned(),
            pending: Mutex::new(Some((server, router))),
            grace,
        }
    }
}

#[async_trait]
impl Component for HttpComponent {
    fn name(&self) -> &str {
        &self.name
    }

    async fn start(&self, kernel: &KernelHandle) -> Result<(), ComponentError> {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (server, router) = pending.ok_or_else(|| ComponentError::new("already started"))?;
        kernel.spawn(
            &self.name,
            server.serve(router, kernel.shutdown_token(), self.grace),
        );
        Ok(())
    }
}
