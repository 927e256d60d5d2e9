//! A gateway is never built from a route table it cannot serve.

use std::sync::Arc;

use keel_gateway::{AuthPolicy, Gateway, GatewayConfig, GatewayError, RouteConfig};
use keel_registry::{ServiceRegistry, StaticRegistry};

#[tokio::test]
async fn a_bad_route_table_stops_construction_naming_every_bad_route() -> anyhow::Result<()> {
    let registry: Arc<dyn ServiceRegistry> = Arc::new(StaticRegistry::new());
    let config = GatewayConfig::new(vec![
        RouteConfig::new("/api/v1/users", "identity"),
        RouteConfig::new("/api/v1/users", "authz"),
        RouteConfig::new("/api/v1/users/{id}/roles", "authz"),
        RouteConfig::new("api/v1/roles", "authz"),
        RouteConfig::new("/api/v1/audit-logs/", "audit"),
    ]);
    let key = crate::doubles::SigningKey::generate("config");
    let auth = crate::doubles::edge_auth(&key, &Arc::default());
    let error = match Gateway::new(config, registry, auth, None).await {
        Ok(_) => anyhow::bail!("a gateway was built from an invalid table"),
        Err(error) => error,
    };
    assert!(matches!(error, GatewayError::InvalidConfig { .. }), "{error:?}");
    let message = error.to_string();
    for expected in [
        "gateway.routes[1].prefix `/api/v1/users` repeats the prefix of gateway.routes[0]",
        "gateway.routes[2].prefix `/api/v1/users/{id}/roles` segment `{id}`: write a variable segment as `*`",
        "gateway.routes[3].prefix `api/v1/roles` must start with `/`",
        "gateway.routes[4].prefix `/api/v1/audit-logs/` must not end with `/`",
    ] {
        assert!(message.contains(expected), "missing {expected:?} in {message}");
    }
    Ok(())
}

#[test]
fn the_shipped_gateway_section_loads_and_validates() -> anyhow::Result<()> {
    let config = GatewayConfig::from_config(&keel_testkit::test_config(&[]))?;
    assert_eq!(config.upstream.timeout_ms, 10_000);
    assert_eq!(config.body_limit_bytes, 10 * 1024 * 1024);
    assert_eq!((config.max_headers, config.max_header_bytes), (100, 32 * 1024));
    assert_eq!(config.upstream.buffer_body_bytes, 16 * 1024);
    assert!(
        config
            .routes
            .iter()
            .any(|r| r.prefix == "/api/v1/users/*/roles" && r.service == "authz")
    );
    Ok(())
}

#[tokio::test]
async fn bad_policies_and_zero_limits_stop_construction_naming_their_keys() -> anyhow::Result<()> {
    let registry: Arc<dyn ServiceRegistry> = Arc::new(StaticRegistry::new());
    let config = GatewayConfig::new(vec![
        RouteConfig::new("/api/v1/audit-logs", "audit").with_permission("audit"),
        RouteConfig::new("/api/v1/jwks", "auth")
            .with_auth(AuthPolicy::Public)
            .with_permission("platform.audit.read"),
        RouteConfig::new("/api/v1/files", "files").with_body_limit(0),
    ])
    .with_body_limit(0)
    .with_header_limits(0, 0);
    let mut config = config;
    config.upstream.buffer_body_bytes = 2 * 1024 * 1024;
    let key = crate::doubles::SigningKey::generate("config");
    let auth = crate::doubles::edge_auth(&key, &Arc::default());
    let message = match Gateway::new(config, registry, auth, None).await {
        Ok(_) => anyhow::bail!("a gateway was built from an invalid configuration"),
        Err(error) => error.to_string(),
    };
    for expected in [
        "gateway.body_limit_bytes must be greater than 0",
        "gateway.max_headers must be greater than 0",
        "gateway.max_header_bytes must be greater than 0",
        "gateway.routes[0].permission `audit` must have the form module.resource.action",
        "gateway.routes[1].auth `public` contradicts gateway.routes[1].permission",
        "gateway.routes[2].body_limit_bytes must be greater than 0",
        "gateway.upstream.buffer_body_bytes must be at most 1048576",
    ] {
        assert!(message.contains(expected), "missing {expected:?} in {message}");
    }
    Ok(())
}

#[test]
fn an_unknown_auth_policy_is_refused() {
    let section = serde_json::json!({
        "upstream": {"connect_timeout_ms": 1, "timeout_ms": 1, "pool_idle_timeout_ms": 1,
                     "pool_max_idle_per_host": 1},
        "routes": [{"prefix": "/a", "service": "a", "auth": "sometimes"}]
    });
    let error = serde_json::from_value::<GatewayConfig>(section)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("unknown variant `sometimes`"), "{error}");
}
