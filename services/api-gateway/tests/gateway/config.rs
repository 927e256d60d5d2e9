//! A gateway is never built from a route table it cannot serve.

use std::sync::Arc;

use keel_gateway::{Gateway, GatewayConfig, GatewayError, RouteConfig};
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
    let error = match Gateway::new(config, registry).await {
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
    assert!(
        config
            .routes
            .iter()
            .any(|r| r.prefix == "/api/v1/users/*/roles" && r.service == "authz")
    );
    Ok(())
}
