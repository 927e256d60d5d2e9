//! CORS at the edge, from `http.cors`: the gateway answers preflights itself, and only a
//! configured origin is allowed to read its answers, rate-limit headers included.

use std::sync::Arc;

use keel_gateway::{GatewayConfig, RouteConfig};
use keel_ratelimit::{InMemoryRateLimiter, RateLimiter};
use keel_registry::StaticRegistry;
use reqwest::{Method, Response};

use crate::support::{TestGateway, Upstream, client, default_http};

const ALLOWED_ORIGIN: &str = "https://app.example";

/// A gateway allowing [`ALLOWED_ORIGIN`] to GET, POST and DELETE with `authorization` and
/// `content-type`, exposing the shipped list of headers (request id, rate-limit headers,
/// `Retry-After`), with the default rate limits on; and its one upstream.
async fn cors_gateway() -> anyhow::Result<(TestGateway, Upstream)> {
    let mut http = default_http();
    http.cors.allowed_origins = vec![ALLOWED_ORIGIN.to_owned()];
    http.cors.allowed_methods = ["GET", "POST", "DELETE"].map(str::to_owned).to_vec();
    http.cors.allowed_headers = ["authorization", "content-type"].map(str::to_owned).to_vec();
    http.cors.max_age_secs = 600;
    let limiter: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::default());
    let config = GatewayConfig::new(vec![RouteConfig::new("/api/v1/things", "things")]);
    let gateway = TestGateway::start_served(config, StaticRegistry::new(), Some(limiter), http).await?;
    let upstream = Upstream::start("things-1").await?;
    gateway.add("things", &upstream).await?;
    Ok((gateway, upstream))
}

/// An `OPTIONS` preflight from `origin` for a `DELETE` with an `authorization` header.
async fn preflight(gateway: &TestGateway, origin: &str) -> anyhow::Result<Response> {
    Ok(client()
        .request(Method::OPTIONS, gateway.url("/api/v1/things/7"))
        .header("origin", origin)
        .header("access-control-request-method", "DELETE")
        .header("access-control-request-headers", "authorization")
        .send()
        .await?)
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|value| value.to_str().ok())
}

/// The comma-separated list in header `name`, lowercased.
fn list(response: &Response, name: &str) -> Vec<String> {
    header(response, name)
        .unwrap_or_default()
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered_by_the_gateway() -> anyhow::Result<()> {
    let (gateway, upstream) = cors_gateway().await?;
    let response = preflight(&gateway, ALLOWED_ORIGIN).await?;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    let methods = list(&response, "access-control-allow-methods");
    assert!(methods.contains(&"delete".to_owned()), "{methods:?}");
    let headers = list(&response, "access-control-allow-headers");
    assert!(headers.contains(&"authorization".to_owned()), "{headers:?}");
    assert_eq!(header(&response, "access-control-max-age"), Some("600"));
    assert_eq!(upstream.hits(), 0, "the upstream never sees a preflight");
    Ok(())
}

#[tokio::test]
async fn a_preflight_from_another_origin_is_not_allowed() -> anyhow::Result<()> {
    let (gateway, upstream) = cors_gateway().await?;
    for origin in [
        "https://evil.example",
        "https://app.example.evil",
        "http://app.example",
    ] {
        let response = preflight(&gateway, origin).await?;
        assert_eq!(header(&response, "access-control-allow-origin"), None, "{origin}");
    }
    assert_eq!(upstream.hits(), 0, "denied preflights are not proxied either");
    Ok(())
}

#[tokio::test]
async fn a_get_from_an_allowed_origin_may_read_the_answer_and_its_rate_limit_headers() -> anyhow::Result<()> {
    let (gateway, upstream) = cors_gateway().await?;
    let http = client();
    let response = http
        .get(gateway.url("/api/v1/things/7"))
        .header("origin", ALLOWED_ORIGIN)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some(ALLOWED_ORIGIN)
    );
    let exposed = list(&response, "access-control-expose-headers");
    for name in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-request-id"] {
        assert!(exposed.contains(&name.to_owned()), "{name}: {exposed:?}");
    }
    assert!(
        header(&response, "x-ratelimit-limit").is_some(),
        "and the header is there to read"
    );

    let foreign = http
        .get(gateway.url("/api/v1/things/7"))
        .header("origin", "https://evil.example")
        .send()
        .await?;
    assert_eq!(
        foreign.status(),
        200,
        "the browser, not the gateway, withholds it"
    );
    assert_eq!(header(&foreign, "access-control-allow-origin"), None);
    assert_eq!(upstream.hits(), 2);
    Ok(())
}
