//! A 100 MiB upload through the gateway with flat memory: the upstream receives the start of the
//! body while the client still holds most of it, which a gateway that buffered bodies could not
//! do, and the peak memory of a process running nothing but that upload (this test binary,
//! started again for this one test) grows by far less than the body.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use keel_gateway::RouteConfig;
use keel_registry::StaticRegistry;
use tokio::sync::mpsc;

use crate::support::{Signals, TestGateway, Upstream, client};

const MIB: usize = 1024 * 1024;
/// One MiB of payload, shared by every chunk the client sends (never copied).
static CHUNK: [u8; MIB] = [b'u'; MIB];
/// The whole upload, in 1 MiB chunks.
const TOTAL_CHUNKS: usize = 100;
/// Chunks sent before the client holds back the rest.
const FIRST_CHUNKS: usize = 8;
/// What the upstream must have received before the client sends the rest.
const RECEIVED_BEFORE_REST: usize = 4 * MIB;
/// Longest the test waits for a step a streaming gateway takes at once.
const PATIENCE: Duration = Duration::from_secs(20);

/// A request body fed through a channel: it ends when the sender is dropped.
fn channel_body() -> (mpsc::Sender<std::io::Result<Bytes>>, reqwest::Body) {
    let (sender, receiver) = mpsc::channel(2);
    let chunks = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    (sender, reqwest::Body::wrap_stream(chunks))
}

/// Sends `count` chunks of [`CHUNK`] into the body.
async fn send_chunks(sender: &mpsc::Sender<std::io::Result<Bytes>>, count: usize) -> anyhow::Result<()> {
    for _ in 0..count {
        let chunk = Ok(Bytes::from_static(&CHUNK));
        tokio::time::timeout(PATIENCE, sender.send(chunk))
            .await
            .context("the request keeps reading its body")?
            .context("the request is still sending its body")?;
    }
    Ok(())
}

/// Waits until the upstream has received at least `bytes` body bytes.
async fn wait_for_upstream(signals: &Signals, bytes: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let received = signals.bytes_received.load(Ordering::SeqCst);
        if received >= bytes {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the upstream received {received} bytes of the first {FIRST_CHUNKS} MiB: is the gateway buffering?"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The process's peak resident memory (`VmHWM`), in KiB, when Linux tells it.
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Set in the environment of the child process that runs the upload alone.
const ALONE: &str = "KEEL_TEST_UPLOAD_ALONE";
/// The line the child prints its peak memory growth on, in KiB.
const GROWTH_LINE: &str = "peak memory growth (KiB): ";
/// Most the peak memory of the process may grow while the 100 MiB pass through.
const MAX_GROWTH_KIB: u64 = 32 * 1024;

#[tokio::test]
async fn a_100_mib_upload_streams_through_the_gateway_while_the_client_still_holds_most_of_it()
-> anyhow::Result<()> {
    if std::env::var_os(ALONE).is_some() {
        return upload_alone().await;
    }
    // Tests share their process, and their memory: the upload runs again in a process of its own.
    let name = "upload::a_100_mib_upload_streams_through_the_gateway_while_the_client_still_holds_most_of_it";
    let mut child = std::process::Command::new(std::env::current_exe()?);
    child
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ALONE, "1");
    let output = tokio::task::spawn_blocking(move || child.output()).await??;
    let printed = String::from_utf8_lossy(&output.stderr);
    anyhow::ensure!(output.status.success(), "the upload alone failed: {printed}");
    let growth: u64 = printed
        .lines()
        .find_map(|line| line.strip_prefix(GROWTH_LINE))
        .context("the child reports its memory growth")?
        .trim()
        .parse()?;
    eprintln!("the upload alone: {GROWTH_LINE}{growth}");
    assert!(
        growth < MAX_GROWTH_KIB,
        "the peak memory grew by {growth} KiB while 100 MiB passed through (at most {MAX_GROWTH_KIB})"
    );
    Ok(())
}

/// The upload, in a process running nothing else; prints the growth of its peak memory.
async fn upload_alone() -> anyhow::Result<()> {
    let upstream = Upstream::start("uploads-1").await?;
    let route = RouteConfig::new("/api/v1/uploads", "uploads")
        .with_body_limit(128 * MIB as u64)
        .with_timeout(Duration::from_secs(120));
    let gateway = TestGateway::start(vec![route], StaticRegistry::new()).await?;
    gateway.add("uploads", &upstream).await?;
    let peak_before = peak_memory_kib();

    let (sender, body) = channel_body();
    let exchange = tokio::spawn(
        client()
            .post(gateway.url("/api/v1/uploads/count"))
            .body(body)
            .send(),
    );
    send_chunks(&sender, FIRST_CHUNKS).await?;
    wait_for_upstream(&upstream.signals, RECEIVED_BEFORE_REST).await?;
    send_chunks(&sender, TOTAL_CHUNKS - FIRST_CHUNKS).await?;
    drop(sender);

    let response = tokio::time::timeout(PATIENCE, exchange)
        .await
        .context("the upstream answers once the body has ended")???;
    assert_eq!(response.status(), 200);
    let counted: serde_json::Value = response.json().await?;
    assert_eq!(counted["bytes"], TOTAL_CHUNKS * MIB, "the upstream's answer");
    assert_eq!(
        upstream.signals.bytes_received.load(Ordering::SeqCst),
        TOTAL_CHUNKS * MIB
    );
    assert_eq!(upstream.hits(), 1);
    let (Some(before), Some(after)) = (peak_before, peak_memory_kib()) else {
        bail!("no VmHWM in /proc/self/status");
    };
    eprintln!("{GROWTH_LINE}{}", after.saturating_sub(before));
    Ok(())
}
