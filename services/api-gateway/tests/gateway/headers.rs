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

/// Many requests on one kept-alive connection (the fast path's, unless it is off), each with a
/// fresh id: every id is a UUIDv7 of its own, the same on both sides, whatever the ids before it
/// (their text shares memory, `keel_http::shared_header_value`). A client's unusable id is
/// replaced, and of two ids the first counts.
#[tokio::test]
async fn fresh_request_ids_stay_whole_and_distinct_over_many_requests() -> anyhow::Result<()> {
    let (gateway, _upstream) = echo_gateway().await?;
    let client = client();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..300 {
        let response = client.get(gateway.url("/api/v1/echo")).send().await?;
        let answered = response.headers()["x-request-id"].to_str()?.to_owned();
        let echo: Echo = response.json().await?;
        assert_eq!(echo.header("x-request-id"), Some(answered.as_str()));
        let uuid = uuid::Uuid::parse_str(&answered)?;
        assert_eq!(uuid.get_version_num(), 7, "{answered}");
        assert_eq!(uuid.hyphenated().to_string(), answered, "lowercase, hyphenated");
        assert!(seen.insert(answered), "distinct ids");
    }

    let response = client
        .get(gateway.url("/api/v1/echo"))
        .header("x-request-id", "not acceptable!")
        .send()
        .await?;
    let answered = response.headers()["x-request-id"].to_str()?.to_owned();
    let echo: Echo = response.json().await?;
    assert!(uuid::Uuid::parse_str(&answered).is_ok(), "replaced: {answered}");
    assert_eq!(echo.header("x-request-id"), Some(answered.as_str()));

    let mut request = client.get(gateway.url("/api/v1/echo")).build()?;
    for id in ["first-id", "second-id"] {
        request
            .headers_mut()
            .append("x-request-id", http::HeaderValue::from_static(id));
    }
    let response = client.execute(request).await?;
    assert_eq!(response.headers()["x-request-id"], "first-id");
    let echo: Echo = response.json().await?;
    assert_eq!(echo.header("x-request-id"), Some("first-id"));
    Ok(())
}
