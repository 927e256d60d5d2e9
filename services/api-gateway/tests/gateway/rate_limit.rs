//! Rate limits at the edge: headers on every answer (refusals included), 429 with `Retry-After`
//! before the upstream, one budget shared by two gateways through real Redis, and failing open
//! when Redis is down.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use keel_gateway::{AuthPolicy, GatewayConfig, RateClassConfig, RateLimitConfig, RouteConfig};
use keel_ratelimit::{InMemoryRateLimiter, RateLimiter, RedisOptions, RedisRateLimiter};
use keel_registry::StaticRegistry;
use reqwest::StatusCode;

use crate::doubles::valid_claims;
use crate::support::{TestGateway, Upstream, client, problem};

/// A gateway config routing `/` to `echo` with the `default` class at `per_ip` per address and
/// `per_user` per user.
fn config(per_ip: &str, per_user: &str) -> anyhow::Result<GatewayConfig> {
    let class = RateClassConfig {
        per_user: per_user.parse()?,
        per_ip: per_ip.parse()?,
    };
    let mut limits = RateLimitConfig::default();
    limits.classes = BTreeMap::from([("default".to_owned(), class)]);
    Ok(GatewayConfig::new(vec![RouteConfig::new("/", "echo")]).with_rate_limits(limits))
}

async fn gateway_with(
    config: GatewayConfig,
    registry: StaticRegistry,
    limiter: Arc<dyn RateLimiter>,
) -> anyhow::Result<TestGateway> {
    TestGateway::start_limited(config, registry, Some(limiter)).await
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn every_answer_carries_the_budget_and_the_request_past_it_is_429_before_the_upstream()
-> anyhow::Result<()> {
    let upstream = Upstream::start("echo-1").await?;
    let registry = StaticRegistry::new();
    let limiter: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::default());
    let gateway = gateway_with(config("3/minute", "100/minute")?, registry, limiter).await?;
    gateway.add("echo", &upstream).await?;
    let http = client();

    for remaining in ["2", "1", "0"] {
        let response = http.get(gateway.url("/hello")).send().await?;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            header(&response, "x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
        assert!(header(&response, "x-ratelimit-reset").is_some());
    }
    let refused = http.get(gateway.url("/hello")).send().await?;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = header(&refused, "retry-after").unwrap_or_default().parse()?;
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&refused, "x-ratelimit-remaining").as_deref(), Some("0"));
    let body = problem(refused).await?;
    assert_eq!(body["type"], "urn:keel:problem:rate-limited");
    assert_eq!(
        upstream.hits(),
        3,
        "the refused request never reached the upstream"
    );
    Ok(())
}

/// The headers a test compares: status, `X-RateLimit-Limit`, `X-RateLimit-Remaining`.
fn budget(response: &reqwest::Response) -> (StatusCode, Option<String>, Option<String>) {
    (
        response.status(),
        header(response, "x-ratelimit-limit"),
        header(response, "x-ratelimit-remaining"),
    )
}

#[tokio::test]
async fn refused_requests_count_against_the_address_and_carry_the_budget() -> anyhow::Result<()> {
    let upstream = Upstream::start("echo-1").await?;
    let class = RateClassConfig {
        per_user: "100/minute".parse()?,
        per_ip: "5/minute".parse()?,
    };
    let mut limits = RateLimitConfig::default();
    limits.classes = BTreeMap::from([("default".to_owned(), class)]);
    let config = GatewayConfig::new(vec![
        RouteConfig::new("/open", "echo"),
        RouteConfig::new("/private", "echo").with_auth(AuthPolicy::Required),
    ])
    .with_rate_limits(limits)
    .with_header_limits(10, 8192);
    let limiter: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::default());
    let gateway = gateway_with(config, StaticRegistry::new(), limiter).await?;
    gateway.add("echo", &upstream).await?;
    let http = client();

    let mut too_many = reqwest::header::HeaderMap::new();
    for index in 0..12 {
        too_many.insert(
            reqwest::header::HeaderName::from_bytes(format!("x-filler-{index}").as_bytes())?,
            reqwest::header::HeaderValue::from_static("1"),
        );
    }
    let answers = [
        http.get(gateway.url("/nowhere")).send().await?,
        http.get(gateway.url("/private")).send().await?,
        http.get(gateway.url("/private"))
            .bearer_auth("not.a.token")
            .send()
            .await?,
        http.get(gateway.url("/open")).headers(too_many).send().await?,
        http.get(gateway.url("/open")).send().await?,
    ];
    let seen: Vec<_> = answers.iter().map(budget).collect();
    let five = || Some("5".to_owned());
    let remaining = |left: &str| Some(left.to_owned());
    assert_eq!(
        seen,
        [
            (StatusCode::NOT_FOUND, five(), remaining("4")),
            (StatusCode::UNAUTHORIZED, five(), remaining("3")),
            (StatusCode::UNAUTHORIZED, five(), remaining("2")),
            (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                five(),
                remaining("1")
            ),
            (StatusCode::OK, five(), remaining("0")),
        ],
        "each answer, refusals included, draws on the address's budget and says so"
    );

    // The budget is spent: whatever comes next is 429 (an unknown path too), a valid token's
    // request as much as a forged one's, whose token is not even verified.
    let token = gateway.key.sign(&valid_claims());
    let after = [
        http.get(gateway.url("/private"))
            .bearer_auth(&token)
            .send()
            .await?,
        http.get(gateway.url("/nowhere")).send().await?,
        http.get(gateway.url("/private"))
            .bearer_auth("not.a.token")
            .send()
            .await?,
    ];
    for refused in after {
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(header(&refused, "retry-after").is_some());
        assert_eq!(header(&refused, "x-ratelimit-remaining").as_deref(), Some("0"));
        assert_eq!(problem(refused).await?["type"], "urn:keel:problem:rate-limited");
    }
    assert_eq!(
        upstream.hits(),
        1,
        "only the one admitted request reached the upstream"
    );
    Ok(())
}

#[tokio::test]
async fn each_route_class_keeps_its_own_budget() -> anyhow::Result<()> {
    let upstream = Upstream::start("echo-1").await?;
    let quotas = |per_ip: &str| -> anyhow::Result<RateClassConfig> {
        Ok(RateClassConfig {
            per_user: "100/minute".parse()?,
            per_ip: per_ip.parse()?,
        })
    };
    let mut limits = RateLimitConfig::default();
    limits.classes = BTreeMap::from([
        ("default".to_owned(), quotas("5/minute")?),
        ("credentials".to_owned(), quotas("2/minute")?),
    ]);
    let config = GatewayConfig::new(vec![
        RouteConfig::new("/login", "echo").with_rate_limit_class("credentials"),
        RouteConfig::new("/other", "echo"),
    ])
    .with_rate_limits(limits);
    let limiter: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::default());
    let gateway = gateway_with(config, StaticRegistry::new(), limiter).await?;
    gateway.add("echo", &upstream).await?;
    let http = client();

    let mut seen = Vec::new();
    for path in ["/login", "/login", "/login", "/other", "/other"] {
        seen.push(budget(&http.get(gateway.url(path)).send().await?));
    }
    let answer =
        |status, limit: &str, remaining: &str| (status, Some(limit.to_owned()), Some(remaining.to_owned()));
    assert_eq!(
        seen,
        [
            answer(StatusCode::OK, "2", "1"),
            answer(StatusCode::OK, "2", "0"),
            answer(StatusCode::TOO_MANY_REQUESTS, "2", "0"),
            answer(StatusCode::OK, "5", "4"),
            answer(StatusCode::OK, "5", "3"),
        ],
        "the credentials class is spent; the default class is untouched by it"
    );
    Ok(())
}

#[tokio::test]
async fn an_authenticated_user_is_held_to_the_per_user_budget() -> anyhow::Result<()> {
    let upstream = Upstream::start("echo-1").await?;
    let registry = StaticRegistry::new();
    let limiter: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::default());
    let gateway = gateway_with(config("100/minute", "2/minute")?, registry, limiter).await?;
    gateway.add("echo", &upstream).await?;
    let token = gateway.key.sign(&valid_claims());
    let http = client();

    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = http.get(gateway.url("/me")).bearer_auth(&token).send().await?;
        statuses.push(response.status());
    }
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]
    );
    // The address still has budget: an anonymous request passes.
    let anonymous = http.get(gateway.url("/me")).send().await?;
    assert_eq!(anonymous.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn two_gateways_share_one_budget_through_redis() -> anyhow::Result<()> {
    let Some(url) = keel_testkit::server_url("REDIS_URL") else {
        return Ok(());
    };
    let upstream = Upstream::start("echo-1").await?;
    let registry = StaticRegistry::new();
    let prefix = format!("{}:", keel_testkit::unique_name("gateway_rl"));
    let shared_options = || RedisOptions {
        key_prefix: prefix.clone(),
        timeout: Duration::from_millis(500),
    };
    let first: Arc<dyn RateLimiter> = Arc::new(RedisRateLimiter::open(&url, shared_options())?);
    let second: Arc<dyn RateLimiter> = Arc::new(RedisRateLimiter::open(&url, shared_options())?);
    let one = gateway_with(config("10/minute", "100/minute")?, registry.clone(), first).await?;
    let two = gateway_with(config("10/minute", "100/minute")?, registry, second).await?;
    one.add("echo", &upstream).await?;
    let http = client();

    for (gateway, count) in [(&one, 6), (&two, 4)] {
        for _ in 0..count {
            let response = http.get(gateway.url("/shared")).send().await?;
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
    for gateway in [&one, &two] {
        let refused = http.get(gateway.url("/shared")).send().await?;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&refused, "x-ratelimit-limit").as_deref(), Some("10"));
    }
    assert_eq!(upstream.hits(), 10);
    Ok(())
}

#[tokio::test]
async fn requests_pass_without_limits_when_redis_is_down() -> anyhow::Result<()> {
    let upstream = Upstream::start("echo-1").await?;
    let registry = StaticRegistry::new();
    let options = RedisOptions {
        key_prefix: "keel:test:".to_owned(),
        timeout: Duration::from_millis(50),
    };
    let limiter: Arc<dyn RateLimiter> = Arc::new(RedisRateLimiter::open("redis://127.0.0.1:1", options)?);
    let gateway = gateway_with(config("1/minute", "1/minute")?, registry, limiter).await?;
    gateway.add("echo", &upstream).await?;
    let http = client();
    for _ in 0..3 {
        let response =
            tokio::time::timeout(Duration::from_secs(10), http.get(gateway.url("/x")).send()).await??;
        assert_eq!(response.status(), StatusCode::OK, "fail open");
        assert_eq!(header(&response, "x-ratelimit-limit"), None);
    }
    Ok(())
}

#[tokio::test]
async fn a_route_naming_an_unknown_class_is_refused_at_start_up() -> anyhow::Result<()> {
    let config = GatewayConfig::new(vec![RouteConfig::new("/", "echo").with_rate_limit_class("vip")]);
    let message = config.validate().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("gateway.routes[0].rate_limit_class `vip`"),
        "{message}"
    );
    Ok(())
}

/// Two clients behind one load balancer (here: the test, at 127.0.0.1) that forwards their
/// addresses in `X-Forwarded-For`.
async fn forwarded_get(gateway: &TestGateway, client_address: &str) -> anyhow::Result<reqwest::Response> {
    Ok(client()
        .get(gateway.url("/hello"))
        .header("x-forwarded-for", client_address)
        .send()
        .await?)
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget_and_name() -> anyhow::Result<()> {
    let upstream = Upstream::start("echo-1").await?;
    let limiter: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::default());
    let config = config("2/minute", "100/minute")?.with_trusted_proxies(vec!["127.0.0.0/8".to_owned()]);
    let gateway = gateway_with(config, StaticRegistry::new(), limiter).await?;
    gateway.add("echo", &upstream).await?;

    for _ in 0..2 {
        let response = forwarded_get(&gateway, "203.0.113.1").await?;
        assert_eq!(response.status(), StatusCode::OK);
        let echo: crate::support::Echo = response.json().await?;
        assert_eq!(echo.header("x-keel-client-ip"), Some("203.0.113.1"));
        assert_eq!(echo.header("x-forwarded-for"), Some("203.0.113.1, 127.0.0.1"));
    }
    let refused = forwarded_get(&gateway, "203.0.113.1").await?;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same balancer still has its whole budget.
    let other = forwarded_get(&gateway, "203.0.113.2").await?;
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(header(&other, "x-ratelimit-remaining").as_deref(), Some("1"));
    Ok(())
}

#[tokio::test]
async fn a_client_that_is_not_a_trusted_proxy_cannot_choose_its_address() -> anyhow::Result<()> {
    let upstream = Upstream::start("echo-1").await?;
    let limiter: Arc<dyn RateLimiter> = Arc::new(InMemoryRateLimiter::default());
    // Trusts a network the test is not in.
    let config = config("2/minute", "100/minute")?.with_trusted_proxies(vec!["10.0.0.0/8".to_owned()]);
    let gateway = gateway_with(config, StaticRegistry::new(), limiter).await?;
    gateway.add("echo", &upstream).await?;

    let first = forwarded_get(&gateway, "203.0.113.1").await?;
    let echo: crate::support::Echo = first.json().await?;
    assert_eq!(echo.header("x-keel-client-ip"), Some("127.0.0.1"));
    assert_eq!(
        forwarded_get(&gateway, "203.0.113.2").await?.status(),
        StatusCode::OK
    );
    // A third "client" is the same peer, past the same budget.
    let refused = forwarded_get(&gateway, "203.0.113.3").await?;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    Ok(())
}
