//! Which instance of a service a request reaches, as the registry changes.

use std::time::{Duration, Instant};

use keel_gateway::RouteConfig;
use keel_registry::{ServiceRegistry, StaticRegistry};

use crate::support::{TestGateway, Upstream, client, get_echo, problem};

async fn gateway_for(service: &str) -> anyhow::Result<TestGateway> {
    TestGateway::start(
        vec![RouteConfig::new("/api/v1/things", service)],
        StaticRegistry::new(),
    )
    .await
}

#[tokio::test]
async fn requests_alternate_between_two_instances() -> anyhow::Result<()> {
    let gateway = gateway_for("things").await?;
    let (a, b) = (Upstream::start("a").await?, Upstream::start("b").await?);
    gateway.add("things", &a).await?;
    gateway.add("things", &b).await?;
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(get_echo(&gateway.url("/api/v1/things")).await?.instance);
    }
    assert_eq!((a.hits(), b.hits()), (5, 5), "round robin: {seen:?}");
    assert!(
        seen.windows(2).all(|pair| pair[0] != pair[1]),
        "alternating: {seen:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_deregistered_instance_never_receives_another_request() -> anyhow::Result<()> {
    let gateway = gateway_for("things").await?;
    let (a, b) = (Upstream::start("a").await?, Upstream::start("b").await?);
    gateway.add("things", &a).await?;
    gateway.add("things", &b).await?;
    get_echo(&gateway.url("/api/v1/things")).await?;
    get_echo(&gateway.url("/api/v1/things")).await?;
    assert_eq!(b.hits(), 1);

    gateway.registry.deregister("things", "b").await?;
    for _ in 0..20 {
        assert_eq!(get_echo(&gateway.url("/api/v1/things")).await?.instance, "a");
    }
    assert_eq!(b.hits(), 1, "b is still running but never chosen again");
    Ok(())
}

#[tokio::test]
async fn a_service_without_instances_is_a_fast_503_naming_it_until_one_registers() -> anyhow::Result<()> {
    let gateway = gateway_for("ledger").await?;
    let started = Instant::now();
    let response = client().get(gateway.url("/api/v1/things/1")).send().await?;
    // Generous for a loaded 2-core machine, yet far from any timeout: the gateway does not wait.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body = problem(response).await?;
    assert_eq!(body["type"], "urn:keel:problem:unavailable");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("ledger"), "{detail}");

    let upstream = Upstream::start("ledger-1").await?;
    gateway.add("ledger", &upstream).await?;
    let echo = get_echo(&gateway.url("/api/v1/things/1")).await?;
    assert_eq!(echo.instance, "ledger-1", "picked up from the watch, no restart");
    Ok(())
}

#[tokio::test]
async fn the_readiness_check_names_routed_services_without_instances() -> anyhow::Result<()> {
    let registry = StaticRegistry::new();
    let shared: std::sync::Arc<dyn ServiceRegistry> = std::sync::Arc::new(registry.clone());
    let config = keel_gateway::GatewayConfig::new(vec![
        RouteConfig::new("/a", "alpha"),
        RouteConfig::new("/a/b", "alpha"),
        RouteConfig::new("/c", "gamma"),
    ]);
    let key = crate::doubles::SigningKey::generate("readiness");
    let authz = std::sync::Arc::default();
    let auth = crate::doubles::edge_auth(&key, &authz);
    let gateway = keel_gateway::Gateway::new(config, shared, auth, None).await?;
    let check = gateway.readiness_check();
    assert_eq!(check.name(), "gateway-upstreams");
    assert_eq!(
        check.check().await,
        Err("no healthy instance of: alpha, gamma".to_owned())
    );

    let alpha = Upstream::start("alpha-1").await?;
    let _ = registry.register(alpha.instance("alpha")).await?;
    assert_eq!(
        check.check().await,
        Err("no healthy instance of: gamma".to_owned())
    );
    let gamma = Upstream::start("gamma-1").await?;
    let _ = registry.register(gamma.instance("gamma")).await?;
    assert_eq!(check.check().await, Ok(()));
    Ok(())
}
