//! Bodies pass through as they arrive, both ways: the gateway never waits for a whole body.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keel_gateway::RouteConfig;
use keel_registry::StaticRegistry;

use crate::support::{Signals, TestGateway, Upstream, client};

const MIB: usize = 1024 * 1024;
/// Longest a test waits for a chunk that a streaming proxy delivers at once.
const PATIENCE: Duration = Duration::from_secs(5);

async fn files_gateway() -> anyhow::Result<(TestGateway, Upstream)> {
    let upstream = Upstream::start("files-1").await?;
    let gateway = TestGateway::start(
        vec![RouteConfig::new("/api/v1/files", "files").with_body_limit(64 * MIB as u64)],
        StaticRegistry::new(),
    )
    .await?;
    gateway.add("files", &upstream).await?;
    Ok((gateway, upstream))
}

/// 50 chunks of 1 MiB; the second is only produced once the upstream has received bytes, so a
/// gateway that buffered the whole body before forwarding would stall this upload.
fn upload(signals: Arc<Signals>) -> reqwest::Body {
    let chunks = futures_util::stream::unfold(0usize, move |sent| {
        let signals = Arc::clone(&signals);
        async move {
            if sent == 50 {
                return None;
            }
            if sent == 1 {
                let started = tokio::time::timeout(PATIENCE, signals.upload_started.notified()).await;
                if started.is_err() {
                    let stalled = std::io::Error::other("the upstream saw nothing of the first MiB");
                    return Some((Err(stalled), 50));
                }
            }
            Some((Ok::<_, std::io::Error>(Bytes::from(vec![b'k'; MIB])), sent + 1))
        }
    });
    reqwest::Body::wrap_stream(chunks)
}

#[tokio::test]
async fn a_50_mib_upload_streams_through_to_the_upstream() -> anyhow::Result<()> {
    let (gateway, upstream) = files_gateway().await?;
    let response = client()
        .post(gateway.url("/api/v1/files/count"))
        .body(upload(Arc::clone(&upstream.signals)))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let counted: serde_json::Value = response.json().await?;
    assert_eq!(counted["bytes"], 50 * MIB);
    Ok(())
}

#[tokio::test]
async fn a_streamed_response_reaches_the_client_before_the_upstream_finishes_it() -> anyhow::Result<()> {
    let (gateway, upstream) = files_gateway().await?;
    let mut response =
        tokio::time::timeout(PATIENCE, client().get(gateway.url("/api/v1/files/stream")).send()).await??;
    assert_eq!(response.status(), 200);
    let first = tokio::time::timeout(PATIENCE, response.chunk()).await??;
    assert_eq!(
        first.as_deref(),
        Some(&b"first\n"[..]),
        "the first chunk, while the upstream waits"
    );

    upstream.signals.release_stream.notify_one();
    let rest = tokio::time::timeout(PATIENCE, response.text()).await??;
    assert_eq!(rest, "second\n");
    Ok(())
}
