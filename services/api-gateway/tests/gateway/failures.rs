//! Upstreams that cannot answer: the client gets a problem at once, never a hang.

use std::time::{Duration, Instant};

use keel_gateway::RouteConfig;
use keel_registry::{ServiceInstance, ServiceRegistry, StaticRegistry};

use crate::support::{TestGateway, Upstream, client, closed_port, get_echo, problem};

#[tokio::test]
async fn an_instance_that_refuses_connections_is_a_fast_502_without_its_address() -> anyhow::Result<()> {
    let registry = StaticRegistry::new();
    let port = closed_port().await?;
    let dead = ServiceInstance::new("billing", "billing-1", "127.0.0.1").with_port("http", port);
    let _ = registry.register(dead).await?;
    let gateway = TestGateway::start(vec![RouteConfig::new("/api/v1/invoices", "billing")], registry).await?;

    let started = Instant::now();
    let response = client().get(gateway.url("/api/v1/invoices")).send().await?;
    // Below the 1 s connect timeout: only an immediate answer to the refusal passes.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(response.status(), 502);
    let body = problem(response).await?;
    assert_eq!(body["type"], "urn:keel:problem:bad-gateway");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("billing"), "{detail}");
    assert!(!detail.contains(&port.to_string()), "no address leaks: {detail}");
    Ok(())
}

#[tokio::test]
async fn an_upstream_slower_than_the_route_timeout_is_a_504_at_the_timeout() -> anyhow::Result<()> {
    let upstream = Upstream::start("reports-1").await?;
    let gateway = TestGateway::start(
        vec![
            RouteConfig::new("/api/v1/reports", "reports").with_timeout(Duration::from_millis(300)),
            RouteConfig::new("/api/v1/patient", "reports"),
        ],
        StaticRegistry::new(),
    )
    .await?;
    gateway.add("reports", &upstream).await?;

    let started = Instant::now();
    let response = client().get(gateway.url("/api/v1/reports/slow")).send().await?;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1500),
        "{elapsed:?}"
    );
    assert_eq!(response.status(), 504);
    let body = problem(response).await?;
    assert_eq!(body["type"], "urn:keel:problem:gateway-timeout");
    assert_eq!(body["detail"], "the reports service did not answer within 300 ms");

    let response = client().get(gateway.url("/api/v1/patient/slow")).send().await?;
    assert_eq!(
        response.status(),
        200,
        "the default timeout (10 s) is longer than 2 s"
    );
    assert_eq!(response.text().await?, "finally");
    Ok(())
}

#[tokio::test]
async fn requests_and_upstream_errors_are_counted_by_route_service_and_status() -> anyhow::Result<()> {
    let metrics = keel_telemetry::metrics::install();
    let service = keel_testkit::unique_name("metered");
    let upstream = Upstream::start("metered-1").await?;
    let gateway = TestGateway::start(
        vec![RouteConfig::new("/api/v1/metered", &service).with_timeout(Duration::from_millis(200))],
        StaticRegistry::new(),
    )
    .await?;
    let response = client().get(gateway.url("/api/v1/metered")).send().await?;
    assert_eq!(response.status(), 503);
    gateway.add(&service, &upstream).await?;
    get_echo(&gateway.url("/api/v1/metered/a")).await?;
    get_echo(&gateway.url("/api/v1/metered/b")).await?;
    let response = client().get(gateway.url("/api/v1/metered/slow")).send().await?;
    assert_eq!(response.status(), 504);

    let text = metrics.render();
    let line = |name: &str, labels: &str| {
        text.lines()
            .find(|line| line.starts_with(name) && line.contains(labels))
            .and_then(|line| line.rsplit(' ').next())
            .map(str::to_owned)
    };
    let requests = "keel_gateway_requests_total{";
    let ok = format!("route=\"/api/v1/metered\",service=\"{service}\",status=\"200\"");
    assert_eq!(line(requests, &ok).as_deref(), Some("2"), "{text}");
    let timeouts = format!("route=\"/api/v1/metered\",service=\"{service}\",status=\"504\"");
    assert_eq!(line(requests, &timeouts).as_deref(), Some("1"), "{text}");
    let errors = "keel_gateway_upstream_errors_total{";
    for kind in ["no_instance", "timeout"] {
        let labels = format!("service=\"{service}\",kind=\"{kind}\"");
        assert_eq!(line(errors, &labels).as_deref(), Some("1"), "{kind}: {text}");
    }
    let durations = format!("keel_gateway_upstream_duration_seconds_count{{service=\"{service}\"}}");
    assert_eq!(line(&durations, "").as_deref(), Some("3"), "{text}");
    Ok(())
}

#[tokio::test]
async fn upstream_connections_are_counted_open_and_opened_per_instance() -> anyhow::Result<()> {
    let metrics = keel_telemetry::metrics::install();
    let service = keel_testkit::unique_name("pooled");
    let mut upstream = Upstream::start("pooled-1").await?;
    let gateway = TestGateway::start(
        vec![RouteConfig::new("/api/v1/pooled", &service)],
        StaticRegistry::new(),
    )
    .await?;
    gateway.add(&service, &upstream).await?;
    for _ in 0..5 {
        get_echo(&gateway.url("/api/v1/pooled")).await?;
    }
    let port = upstream.port;
    let value = |name: &str| {
        let labels = format!("{name}{{upstream=\"127.0.0.1:{port}\"}} ");
        metrics
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(labels.as_str()).map(str::to_owned))
    };
    let connects = "keel_gateway_upstream_connects_total";
    let open = "keel_gateway_upstream_connections";
    assert_eq!(
        value(connects).as_deref(),
        Some("1"),
        "five requests, one kept-alive connection"
    );
    assert_eq!(value(open).as_deref(), Some("1"));

    // The instance goes away: its connection closes and leaves the count.
    upstream.stop().await?;
    let mut closed = false;
    for _ in 0..100 {
        if value(open).as_deref() == Some("0") {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "still counted open: {:?}", value(open));
    Ok(())
}
