//! An instance that dies while traffic flows: the first refused connection ejects it, and the
//! requests after it keep succeeding on the instance that is still alive.

use std::time::Duration;

use anyhow::Context;
use keel_gateway::RouteConfig;
use keel_registry::StaticRegistry;

use crate::support::{Echo, TestGateway, Upstream, client, get_echo};

/// Requests sent before the kill: enough for the balancer to have used both instances.
const BEFORE_KILL: usize = 10;
/// Requests sent after it.
const AFTER_KILL: usize = 30;
/// A guard against a hang, far above what the whole exchange takes.
const GUARD: Duration = Duration::from_secs(60);

#[tokio::test]
async fn an_instance_killed_mid_test_drops_out_and_requests_keep_succeeding() -> anyhow::Result<()> {
    tokio::time::timeout(GUARD, killed_mid_test())
        .await
        .context("the requests around the kill finish in time")?
}

async fn killed_mid_test() -> anyhow::Result<()> {
    let gateway = TestGateway::start(
        vec![RouteConfig::new("/api/v1/things", "things")],
        StaticRegistry::new(),
    )
    .await?;
    let live = Upstream::start("live").await?;
    let mut doomed = Upstream::start("doomed").await?;
    gateway.add("things", &live).await?;
    gateway.add("things", &doomed).await?;
    let url = gateway.url("/api/v1/things");
    for _ in 0..BEFORE_KILL {
        get_echo(&url).await?;
    }
    let (live_before, doomed_before) = (live.hits(), doomed.hits());
    assert!(
        live_before > 0 && doomed_before > 0,
        "both instances served before the kill: live {live_before}, doomed {doomed_before}"
    );

    doomed.stop().await?;
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", doomed.port)).await;
    assert!(refused.is_err(), "the killed instance refuses connections");

    let http = client();
    let (mut served_by, mut failures) = (Vec::new(), Vec::new());
    for _ in 0..AFTER_KILL {
        let response = http.get(&url).send().await?;
        match response.status().as_u16() {
            200 => served_by.push(response.json::<Echo>().await?.instance),
            status => failures.push((status, response.text().await?)),
        }
    }
    assert!(
        failures.len() <= 1,
        "only the request that found the instance dead may fail: {failures:?}"
    );
    if let Some((status, body)) = failures.first() {
        assert_eq!(*status, 502, "the dead instance is a bad gateway: {body}");
    }
    assert!(
        served_by.iter().all(|instance| instance == "live"),
        "{served_by:?}"
    );
    assert_eq!(served_by.len() + failures.len(), AFTER_KILL);
    assert_eq!(
        live.hits() - live_before,
        served_by.len(),
        "the live instance served every successful request after the kill"
    );
    assert_eq!(doomed.hits(), doomed_before);
    Ok(())
}
