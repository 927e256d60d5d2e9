//! What the Consul and Kubernetes stubs share: serving an axum router on a free loopback port,
//! recording every request it receives (method, path, query, headers, body) so tests can assert on
//! what the backend sent, and reading the recorded answers in `tests/fixtures/`.
//!
//! These are stubs of the documented APIs, not emulators: each test's router answers the few calls
//! that test makes, with fixture files recorded in the shape the API documentation gives.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;

use crate::support::PATIENCE;

/// One request a stub received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Seen {
    /// The value of header `name`, or "" when absent.
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// Every request a stub received, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Journal(Arc<Mutex<Vec<Seen>>>);

impl Journal {
    pub(crate) fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The requests to `method path`.
    pub(crate) fn to(&self, method: &str, path: &str) -> Vec<Seen> {
        self.all()
            .into_iter()
            .filter(|seen| seen.method == method && seen.path == path)
            .collect()
    }

    /// Waits until `count` requests satisfy `matches`, and returns them; fails after [`PATIENCE`].
    pub(crate) async fn wait_for(
        &self,
        count: usize,
        matches: impl Fn(&Seen) -> bool,
    ) -> Result<Vec<Seen>, Box<dyn std::error::Error>> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let found: Vec<Seen> = self.all().into_iter().filter(|s| matches(s)).collect();
            if found.len() >= count {
                return Ok(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("expected {count} matching requests, got {found:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Serves `router` on a free loopback port, recording requests in the returned journal; answers
/// until the test's runtime ends. Returns the stub's base URL.
pub(crate) async fn serve(router: Router) -> std::io::Result<(String, Journal)> {
    let journal = Journal::default();
    let app = router.layer(from_fn_with_state(journal.clone(), record));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, journal))
}

async fn record(State(journal): State<Journal>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap_or_default();
    journal.0.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts.headers.clone(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// The recorded answer `name` under `tests/fixtures/`.
pub(crate) fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The query parameter `name` of `query`, if present (values here need no decoding).
pub(crate) fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| match pair.split_once('=') {
        Some((key, value)) if key == name => Some(value),
        None if pair == name => Some(""),
        _ => None,
    })
}
