//! Authentication at the edge: what a token must be for a request to pass, and what the upstream
//! learns about the caller.

use keel_authn::AccessClaims;
use keel_gateway::{AuthPolicy, RouteConfig};
use keel_registry::StaticRegistry;
use uuid::Uuid;

use crate::doubles::{SigningKey, valid_claims};
use crate::support::{Echo, TestGateway, Upstream, client, problem};

const AUDIT_READ: &str = "platform.audit.read";

/// One upstream behind four routes, one per access policy.
async fn policy_gateway() -> anyhow::Result<(TestGateway, Upstream)> {
    let upstream = Upstream::start("echo-1").await?;
    let gateway = TestGateway::start(
        vec![
            RouteConfig::new("/api/v1/open", "echo"),
            RouteConfig::new("/api/v1/private", "echo").with_auth(AuthPolicy::Required),
            RouteConfig::new("/api/v1/audit", "echo").with_permission(AUDIT_READ),
            RouteConfig::new("/api/v1/public", "echo").with_auth(AuthPolicy::Public),
        ],
        StaticRegistry::new(),
    )
    .await?;
    gateway.add("echo", &upstream).await?;
    Ok((gateway, upstream))
}

async fn get(gateway: &TestGateway, path: &str, token: Option<&str>) -> anyhow::Result<reqwest::Response> {
    let mut request = client().get(gateway.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Ok(request.send().await?)
}

/// Tokens an attacker could send, each with what is wrong with it.
fn attacks(gateway: &TestGateway) -> Vec<(&'static str, String)> {
    let now = chrono::Utc::now().timestamp();
    let expired = AccessClaims {
        iat: now - 7200,
        nbf: now - 7200,
        exp: now - 3600,
        ..valid_claims()
    };
    let foreign = AccessClaims {
        aud: "someone-else".to_owned(),
        ..valid_claims()
    };
    let wrong_issuer = AccessClaims {
        iss: "evil".to_owned(),
        ..valid_claims()
    };
    // Same kid as the gateway's key, other key material.
    let impostor = SigningKey::generate("gateway-test");
    vec![
        ("alg none", gateway.key.unsigned(&valid_claims())),
        ("wrong key", impostor.sign(&valid_claims())),
        ("expired", gateway.key.sign(&expired)),
        ("wrong audience", gateway.key.sign(&foreign)),
        ("wrong issuer", gateway.key.sign(&wrong_issuer)),
        ("garbage", "not.a.token".to_owned()),
    ]
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_401_before_any_upstream_sees_them() -> anyhow::Result<()> {
    let (gateway, upstream) = policy_gateway().await?;
    for (attack, token) in attacks(&gateway) {
        for path in ["/api/v1/open", "/api/v1/private", "/api/v1/audit"] {
            let response = get(&gateway, path, Some(&token)).await?;
            assert_eq!(response.status(), 401, "{attack} on {path}");
            let challenge = response.headers()["www-authenticate"].to_str()?.to_owned();
            assert_eq!(
                challenge, "Bearer realm=\"keel\", error=\"invalid_token\"",
                "{attack}"
            );
            let body = problem(response).await?;
            assert_eq!(body["type"], "urn:keel:problem:unauthenticated", "{attack}");
            assert_eq!(body["detail"], "the access token is invalid or has expired");
        }
    }
    assert_eq!(upstream.hits(), 0, "the upstream saw nothing");
    assert_eq!(gateway.authz.checks(), 0, "nor did authz");
    Ok(())
}

#[tokio::test]
async fn a_valid_token_reaches_the_upstream_as_its_subject_and_spoofed_identity_never_does()
-> anyhow::Result<()> {
    let (gateway, _upstream) = policy_gateway().await?;
    let claims = valid_claims();
    let token = gateway.key.sign(&claims);
    for path in ["/api/v1/open", "/api/v1/private"] {
        let response = client()
            .get(gateway.url(path))
            .bearer_auth(&token)
            .header("X-User-Id", "0190f3a1-0000-7000-8000-000000000000")
            .header("X-Keel-Session-Id", "0190f3a1-0000-7000-8000-000000000001")
            .header("X-Keel-Whatever", "admin")
            .send()
            .await?;
        assert_eq!(response.status(), 200, "{path}");
        let echo: Echo = response.json().await?;
        assert_eq!(echo.header("x-user-id"), Some(claims.sub.as_str()), "{path}");
        assert_eq!(echo.header("x-keel-session-id"), Some(claims.sid.as_str()));
        assert_eq!(echo.header("x-keel-whatever"), None);
        let bearer = format!("Bearer {token}");
        assert_eq!(
            echo.header("authorization"),
            Some(bearer.as_str()),
            "services verify it again"
        );
    }
    Ok(())
}

#[tokio::test]
async fn without_a_token_a_required_route_is_401_and_an_optional_one_passes_anonymous() -> anyhow::Result<()>
{
    let (gateway, upstream) = policy_gateway().await?;
    for path in ["/api/v1/private", "/api/v1/audit"] {
        let response = get(&gateway, path, None).await?;
        assert_eq!(response.status(), 401, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"keel\"");
        let body = problem(response).await?;
        assert_eq!(body["detail"], "this endpoint requires a bearer access token");
    }
    let basic = client()
        .get(gateway.url("/api/v1/open"))
        .header("authorization", "Basic dXNlcjpwdw==")
        .send()
        .await?;
    assert_eq!(
        basic.status(),
        401,
        "a credential that is not a bearer token is refused"
    );
    assert_eq!(upstream.hits(), 0);

    let response = client()
        .get(gateway.url("/api/v1/open"))
        .header("x-user-id", "0190f3a1-0000-7000-8000-000000000000")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let echo: Echo = response.json().await?;
    assert_eq!(
        echo.header("x-user-id"),
        None,
        "anonymous, whatever the client claims"
    );
    Ok(())
}

#[tokio::test]
async fn a_public_route_never_looks_at_the_authorization_header() -> anyhow::Result<()> {
    let (gateway, _upstream) = policy_gateway().await?;
    let response = get(&gateway, "/api/v1/public/jwks.json", Some("expired.or.garbage")).await?;
    assert_eq!(response.status(), 200);
    let echo: Echo = response.json().await?;
    assert_eq!(echo.header("authorization"), Some("Bearer expired.or.garbage"));
    assert_eq!(echo.header("x-user-id"), None);
    Ok(())
}

#[tokio::test]
async fn a_permission_route_admits_holders_and_refuses_others_with_403() -> anyhow::Result<()> {
    let (gateway, upstream) = policy_gateway().await?;
    let auditor = valid_claims();
    gateway.authz.grant(Uuid::parse_str(&auditor.sub)?, AUDIT_READ);
    let response = get(&gateway, "/api/v1/audit/logs", Some(&gateway.key.sign(&auditor))).await?;
    assert_eq!(response.status(), 200);
    let echo: Echo = response.json().await?;
    assert_eq!(echo.header("x-user-id"), Some(auditor.sub.as_str()));

    let response = get(
        &gateway,
        "/api/v1/audit/logs",
        Some(&gateway.key.sign(&valid_claims())),
    )
    .await?;
    assert_eq!(response.status(), 403);
    let body = problem(response).await?;
    assert_eq!(body["type"], "urn:keel:problem:forbidden");
    assert_eq!(
        body["detail"],
        "this action requires the permission platform.audit.read"
    );
    assert_eq!(upstream.hits(), 1, "only the holder's request went upstream");
    Ok(())
}

#[tokio::test]
async fn auth_decisions_are_counted_by_route_and_outcome() -> anyhow::Result<()> {
    let metrics = keel_telemetry::metrics::install();
    let prefix = format!("/api/v1/{}", keel_testkit::unique_name("counted"));
    let upstream = Upstream::start("counted-1").await?;
    let gateway = TestGateway::start(
        vec![RouteConfig::new(&prefix, "counted").with_permission(AUDIT_READ)],
        StaticRegistry::new(),
    )
    .await?;
    gateway.add("counted", &upstream).await?;
    let holder = valid_claims();
    gateway.authz.grant(Uuid::parse_str(&holder.sub)?, AUDIT_READ);
    let tokens = [
        None,
        Some("garbage".to_owned()),
        Some(gateway.key.sign(&valid_claims())),
        Some(gateway.key.sign(&holder)),
    ];
    for token in &tokens {
        get(&gateway, &prefix, token.as_deref()).await?;
    }
    let text = metrics.render();
    for outcome in ["missing", "invalid", "denied", "allowed"] {
        let labels = format!("keel_gateway_auth_total{{route=\"{prefix}\",outcome=\"{outcome}\"}} 1");
        assert!(text.lines().any(|line| line == labels), "{labels} in {text}");
    }
    Ok(())
}
