//! What an upstream may trust about a request's headers, and what the client gets back.

use keel_config::LogFormat;
use keel_gateway::RouteConfig;
use keel_registry::StaticRegistry;

use crate::support::{Echo, TestGateway, Upstream, client, raw_exchange};

async fn echo_gateway() -> anyhow::Result<(TestGateway, Upstream)> {
    let upstream = Upstream::start("echo-1").await?;
    let gateway = TestGateway::start(
        vec![RouteConfig::new("/api/v1/echo", "echo")],
        StaticRegistry::new(),
    )
    .await?;
    gateway.add("echo", &upstream).await?;
    Ok((gateway, upstream))
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways_and_forwarding_headers_set() -> anyhow::Result<()> {
    let (gateway, _upstream) = echo_gateway().await?;
    let head = [
        "GET /api/v1/echo HTTP/1.1",
        "host: api.example.test:8080",
        "connection: keep-alive, x-client-hop",
        "x-client-hop: secret",
        "keep-alive: timeout=5",
        "proxy-authorization: Basic Zm9vOmJhcg==",
        "proxy-connection: keep-alive",
        "te: trailers",
        "trailer: x-checksum",
        "x-forwarded-for: 203.0.113.9",
        "x-forwarded-proto: https",
        "accept: application/json",
    ]
    .join("\r\n");
    let response = raw_exchange(gateway.address, &head).await?;
    assert_eq!(response.status, 200, "{}", response.body);
    let echo: Echo = serde_json::from_str(&response.body)?;
    for gone in [
        "connection",
        "x-client-hop",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
    ] {
        assert_eq!(echo.header(gone), None, "{gone} reached the upstream");
    }
    assert_eq!(echo.header("accept"), Some("application/json"));
    assert_eq!(echo.header("x-forwarded-for"), Some("203.0.113.9, 127.0.0.1"));
    assert_eq!(
        echo.header("x-forwarded-proto"),
        Some("http"),
        "the scheme the gateway was reached by"
    );
    assert_eq!(echo.header("x-forwarded-host"), Some("api.example.test:8080"));
    let upstream_host = echo.header("host").unwrap_or_default();
    assert!(
        upstream_host.starts_with("127.0.0.1:"),
        "the upstream's own host: {upstream_host}"
    );

    assert_eq!(
        response.header("x-upstream-hop"),
        None,
        "named by the upstream's Connection"
    );
    assert_eq!(response.header("x-upstream-end-to-end"), Some("1"));
    Ok(())
}

#[tokio::test]
async fn spoofed_internal_identity_headers_never_reach_the_upstream() -> anyhow::Result<()> {
    let (gateway, _upstream) = echo_gateway().await?;
    let response = client()
        .get(gateway.url("/api/v1/echo"))
        .header("x-user-id", "0190f3a1-0000-7000-8000-000000000000")
        .header("X-User-Id", "admin")
        .header("X-Keel-Permissions", "platform.role.manage")
        .header("x-keel-principal", "admin")
        .header("x-keel-client-ip", "198.51.100.66")
        .send()
        .await?;
    let echo: Echo = response.json().await?;
    let internal: Vec<&String> = echo
        .headers
        .keys()
        .filter(|name| *name == "x-user-id" || name.starts_with("x-keel-"))
        .filter(|name| *name != "x-keel-client-ip")
        .collect();
    assert!(
        internal.is_empty(),
        "an anonymous request carries no identity: {internal:?}"
    );
    assert_eq!(
        echo.header("x-keel-client-ip"),
        Some("127.0.0.1"),
        "the client address is the gateway's to tell"
    );
    Ok(())
}

/// Current-thread runtime: the captured subscriber (with OpenTelemetry, as in production) is this
/// thread's default, so the gateway's request span has a real trace context to propagate.
#[tokio::test(flavor = "current_thread")]
async fn the_request_id_and_the_trace_context_reach_the_upstream() -> anyhow::Result<()> {
    let _logs = keel_testkit::capture_logs(LogFormat::Compact);
    let (gateway, _upstream) = echo_gateway().await?;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_parent = "00f067aa0ba902b7";
    let response = client()
        .get(gateway.url("/api/v1/echo"))
        .header("x-request-id", "req-trace-1")
        .header("traceparent", format!("00-{trace_id}-{client_parent}-01"))
        .send()
        .await?;
    assert_eq!(response.headers()["x-request-id"], "req-trace-1");
    let echo: Echo = response.json().await?;
    assert_eq!(echo.header("x-request-id"), Some("req-trace-1"));
    let traceparent = echo.header("traceparent").unwrap_or_default();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[1], trace_id, "the client's trace continues upstream");
    assert_ne!(
        parts[2], client_parent,
        "the parent is the gateway's span: {traceparent}"
    );

    let response = client().get(gateway.url("/api/v1/echo")).send().await?;
    let generated = response.headers()["x-request-id"].to_str()?.to_owned();
    let echo: Echo = response.json().await?;
    assert_eq!(
        echo.header("x-request-id"),
        Some(generated.as_str()),
        "a fresh id, the same on both sides"
    );
    assert!(
        echo.header("traceparent").is_some_and(|t| t.len() == 55),
        "a trace starts at the gateway"
    );
    Ok(())
}
