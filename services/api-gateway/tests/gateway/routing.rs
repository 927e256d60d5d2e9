//! Which service a path reaches, and what it sees of the path.

use keel_gateway::{GatewayConfig, RouteConfig};
use keel_registry::StaticRegistry;

use crate::doubles::valid_claims;
use crate::support::{Echo, TestGateway, Upstream, client, get_echo, problem, raw_exchange};

/// A token of a user holding the permissions the shipped routes check at the edge.
fn administrator(gateway: &TestGateway) -> anyhow::Result<String> {
    let claims = valid_claims();
    let user = uuid::Uuid::parse_str(&claims.sub)?;
    for permission in ["platform.role.manage", "platform.audit.read"] {
        gateway.authz.grant(user, permission);
    }
    Ok(gateway.key.sign(&claims))
}

/// The shipped routes, with one upstream per core service.
async fn shipped_gateway() -> anyhow::Result<(TestGateway, Vec<Upstream>)> {
    let config = GatewayConfig::from_config(&keel_testkit::test_config(&[]))?;
    let gateway = TestGateway::start_with(config, StaticRegistry::new()).await?;
    let mut upstreams = Vec::new();
    for service in ["identity", "auth", "authz", "audit"] {
        let upstream = Upstream::start(service).await?;
        gateway.add(service, &upstream).await?;
        upstreams.push(upstream);
    }
    Ok((gateway, upstreams))
}

#[tokio::test]
async fn the_shipped_routes_send_each_public_path_of_design_9_to_its_service_unchanged() -> anyhow::Result<()>
{
    let (gateway, _upstreams) = shipped_gateway().await?;
    let token = administrator(&gateway)?;
    let cases = [
        ("/api/v1/users", "identity"),
        ("/api/v1/users/me/password", "identity"),
        ("/api/v1/users/0190f3a1-7c2e-7000-8000-000000000001", "identity"),
        ("/api/v1/users/0190f3a1/roles", "authz"),
        ("/api/v1/users/0190f3a1/roles/0190f3a2", "authz"),
        ("/api/v1/users/0190f3a1/permissions", "authz"),
        ("/api/v1/users/0190f3a1/sessions", "auth"),
        ("/api/v1/auth/login", "auth"),
        ("/api/v1/auth/sessions/42", "auth"),
        ("/.well-known/jwks.json", "auth"),
        ("/api/v1/roles", "authz"),
        ("/api/v1/roles/7/permissions", "authz"),
        ("/api/v1/permissions", "authz"),
        ("/api/v1/audit-logs", "audit"),
        ("/api/v1/identity/openapi.json", "identity"),
        ("/api/v1/auth/openapi.json", "auth"),
        ("/api/v1/authz/openapi.json", "authz"),
        ("/api/v1/audit/openapi.json", "audit"),
    ];
    for (path, service) in cases {
        let response = client()
            .get(gateway.url(&format!("{path}?limit=5")))
            .bearer_auth(&token)
            .send()
            .await?;
        assert_eq!(response.status(), 200, "{path}");
        let echo: Echo = response.json().await?;
        assert_eq!(echo.instance, service, "{path}");
        assert_eq!(echo.path, path, "the path reaches the service unchanged");
        assert_eq!(echo.query.as_deref(), Some("limit=5"), "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn the_shipped_policies_keep_sign_in_and_recovery_public_and_the_rest_behind_a_token()
-> anyhow::Result<()> {
    let (gateway, _upstreams) = shipped_gateway().await?;
    let status = |path: &'static str, token: Option<String>| {
        let mut request = client().get(gateway.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { anyhow::Ok((path, request.send().await?.status().as_u16())) }
    };
    let stale = || Some("stale.or.forged".to_owned());
    let user = || Some(gateway.key.sign(&valid_claims()));
    let cases = [
        // A client holding a stale token can still sign in, refresh and recover its account.
        (status("/api/v1/auth/login", stale()).await?, 200),
        (status("/api/v1/auth/refresh", stale()).await?, 200),
        (status("/.well-known/jwks.json", stale()).await?, 200),
        (status("/api/v1/users/verify-email", stale()).await?, 200),
        (
            status("/api/v1/users/password-reset/confirm", stale()).await?,
            200,
        ),
        (status("/api/v1/identity/openapi.json", stale()).await?, 200),
        (status("/api/v1/auth/openapi.json", None).await?, 200),
        (status("/api/v1/authz/openapi.json", None).await?, 200),
        (status("/api/v1/audit/openapi.json", None).await?, 200),
        // Registration is anonymous, but a token that is sent must be valid.
        (status("/api/v1/users", None).await?, 200),
        (status("/api/v1/users", stale()).await?, 401),
        // Everything else needs a token.
        (status("/api/v1/users/me", None).await?, 401),
        (status("/api/v1/users/0190f3a1", None).await?, 401),
        (status("/api/v1/users/0190f3a1/roles", None).await?, 401),
        (status("/api/v1/auth/sessions", None).await?, 401),
        (status("/api/v1/roles", None).await?, 401),
        // Read-only permission routes are checked here; changes are left to their service.
        (status("/api/v1/audit-logs", user()).await?, 403),
        (status("/api/v1/permissions", user()).await?, 403),
        (status("/api/v1/roles", user()).await?, 200),
    ];
    for ((path, status), expected) in cases {
        assert_eq!(status, expected, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn a_prefix_never_matches_a_longer_segment_and_unknown_paths_are_404_problems() -> anyhow::Result<()> {
    let (gateway, upstreams) = shipped_gateway().await?;
    for path in [
        "/api/v1/usersx",
        "/api/v1/users-admin/1",
        "/api/v2/users",
        "/",
        "/nowhere",
    ] {
        let response = client()
            .get(gateway.url(path))
            .header("x-request-id", "req-404")
            .send()
            .await?;
        assert_eq!(response.status(), 404, "{path}");
        let body = problem(response).await?;
        assert_eq!(body["type"], "urn:keel:problem:not-found", "{path}");
        assert_eq!(body["status"], 404);
        assert_eq!(body["instance"], "req-404", "the problem names the request");
    }
    assert!(upstreams.iter().all(|u| u.hits() == 0), "no upstream saw them");
    Ok(())
}

#[tokio::test]
async fn the_most_specific_route_wins_whatever_the_configured_order() -> anyhow::Result<()> {
    let general = Upstream::start("general").await?;
    let specific = Upstream::start("specific").await?;
    let mine = Upstream::start("mine").await?;
    let gateway = TestGateway::start(
        vec![
            RouteConfig::new("/", "general"),
            RouteConfig::new("/api/v1/users/*/roles", "specific"),
            RouteConfig::new("/api/v1/users/me", "mine"),
            RouteConfig::new("/api/v1/users", "general"),
        ],
        StaticRegistry::new(),
    )
    .await?;
    for (service, upstream) in [("general", &general), ("specific", &specific), ("mine", &mine)] {
        gateway.add(service, upstream).await?;
    }
    let cases = [
        ("/api/v1/users/42/roles", "specific"),
        ("/api/v1/users/me/roles", "specific"),
        ("/api/v1/users/me", "mine"),
        ("/api/v1/users/42", "general"),
        ("/anything/else", "general"),
    ];
    for (path, instance) in cases {
        assert_eq!(get_echo(&gateway.url(path)).await?.instance, instance, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn strip_prefix_removes_the_matched_prefix_and_keeps_the_query() -> anyhow::Result<()> {
    let upstream = Upstream::start("files").await?;
    let gateway = TestGateway::start(
        vec![RouteConfig::new("/api/v1/files/*", "files").with_strip_prefix(true)],
        StaticRegistry::new(),
    )
    .await?;
    gateway.add("files", &upstream).await?;
    let echo = get_echo(&gateway.url("/api/v1/files/bucket/a/b.txt?v=2")).await?;
    assert_eq!(
        (echo.path.as_str(), echo.query.as_deref()),
        ("/a/b.txt", Some("v=2"))
    );
    let echo = get_echo(&gateway.url("/api/v1/files/bucket")).await?;
    assert_eq!(echo.path, "/");
    Ok(())
}

#[tokio::test]
async fn static_routes_merged_beside_the_gateway_are_served_locally() -> anyhow::Result<()> {
    let (gateway, upstreams) = shipped_gateway().await?;
    let response = client().get(gateway.url("/healthz")).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await?, "alive");
    assert!(upstreams.iter().all(|u| u.hits() == 0));
    Ok(())
}

#[tokio::test]
async fn a_path_with_dot_segments_is_refused_before_any_upstream_sees_it() -> anyhow::Result<()> {
    let (gateway, upstreams) = shipped_gateway().await?;
    for target in [
        "/api/v1/users/../roles",
        "/api/v1/users/%2e%2E/roles",
        "/api/v1/roles/./x",
    ] {
        let response = raw_exchange(
            gateway.address,
            &format!("GET {target} HTTP/1.1\r\nhost: localhost\r\nconnection: close"),
        )
        .await?;
        assert_eq!(response.status, 400, "{target}");
        assert_eq!(response.header("content-type"), Some("application/problem+json"));
        assert!(response.body.contains("must not contain"), "{}", response.body);
    }
    assert!(upstreams.iter().all(|u| u.hits() == 0));
    Ok(())
}
