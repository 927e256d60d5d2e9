//! The Consul backend against a stub of the Consul agent HTTP API (no Consul runs here): the stub
//! records what the backend sends and answers with the recorded `tests/fixtures/consul/` files.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use keel_config::{RegistryConfig, RegistryKind, SecretString};
use keel_registry::{ConsulRegistry, RegistryError, ServiceInstance, ServiceRegistry, build_registry};
use serde_json::json;
use tokio::sync::Notify;

use crate::stub::{Journal, fixture, param, serve};
use crate::support::{TestResult, ids, instance, next};

const TOKEN: &str = "acl-6f1c2d";

/// How the stub agent behaves.
#[derive(Clone)]
struct Agent {
    /// Lets the blocking query waiting on index 100 answer.
    change: Arc<Notify>,
    /// The `X-Consul-Index` of that answer.
    index_after_change: u64,
    /// The answer to `PUT /v1/agent/check/pass/<id>`.
    pass: StatusCode,
}

impl Default for Agent {
    fn default() -> Self {
        Self {
            change: Arc::new(Notify::new()),
            index_after_change: 101,
            pass: StatusCode::OK,
        }
    }
}

/// `GET /v1/health/service/identity`: the recorded answer at index 100 at once; a blocking query
/// on index 100 waits for the test's change; later ones block for good (as when nothing changes).
async fn health(State(agent): State<Agent>, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    let index: u64 = param(query, "index").and_then(|i| i.parse().ok()).unwrap_or(0);
    let (file, index) = match index {
        0 => ("consul/health_service_identity.json", 100),
        100 => {
            agent.change.notified().await;
            (
                "consul/health_service_identity_changed.json",
                agent.index_after_change,
            )
        }
        _ => std::future::pending().await,
    };
    let headers = [
        (header::CONTENT_TYPE, "application/json".to_owned()),
        (
            header::HeaderName::from_static("x-consul-index"),
            index.to_string(),
        ),
    ];
    (headers, fixture(file)).into_response()
}

async fn stub(agent: Agent) -> std::io::Result<(String, Journal)> {
    let pass = agent.pass;
    let router = Router::new()
        .route("/v1/agent/service/register", put(|| async { StatusCode::OK }))
        .route(
            "/v1/agent/service/deregister/{id}",
            put(|| async { StatusCode::OK }),
        )
        .route("/v1/agent/check/pass/{id}", put(move || async move { pass }))
        .route("/v1/health/service/{name}", get(health))
        .with_state(agent);
    serve(router).await
}

fn config(url: &str) -> RegistryConfig {
    let mut config = RegistryConfig {
        kind: RegistryKind::Consul,
        ..RegistryConfig::default()
    };
    config.consul.address = url.to_owned();
    config.consul.token = Some(SecretString::from(TOKEN));
    config
}

#[tokio::test]
async fn consul_discovery_reads_the_passing_instances_of_the_health_api() -> TestResult {
    let (url, journal) = stub(Agent::default()).await?;
    let registry = build_registry(&config(&url))?;
    assert_eq!(registry.name(), "consul");
    let found = registry.discover("identity").await?;

    let keel = ServiceInstance::new("identity", "identity-7f3a", "10.0.1.5")
        .with_port(ServiceInstance::HTTP, 8081)
        .with_port(ServiceInstance::GRPC, 9081)
        .with_version("0.1.0")
        .with_health_endpoint("/ready")
        .with_metadata("zone", "a");
    let foreign = ServiceInstance::new("identity", "identity-legacy", "10.0.1.6")
        .with_port(ServiceInstance::HTTP, 8081);
    assert_eq!(
        found,
        [keel, foreign],
        "the node's address stands in for an empty service address"
    );

    let asked = journal.to("GET", "/v1/health/service/identity");
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].query, "passing");
    assert_eq!(asked[0].header("x-consul-token"), TOKEN);
    Ok(())
}

#[tokio::test]
async fn consul_registration_carries_an_http_check_of_the_health_endpoint_and_the_token() -> TestResult {
    let (url, journal) = stub(Agent::default()).await?;
    let registry = build_registry(&config(&url))?;
    let me = instance("identity", "identity-1", 8081)
        .with_port(ServiceInstance::GRPC, 9081)
        .with_metadata("zone", "a")
        .with_health_endpoint("/ready");
    let registration = registry.register(me).await?;
    assert_eq!(registration.instance_id, "identity-1");

    let sent = journal.to("PUT", "/v1/agent/service/register");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].query, "replace-existing-checks=true");
    assert_eq!(sent[0].header("x-consul-token"), TOKEN);
    let body: serde_json::Value = serde_json::from_str(&sent[0].body)?;
    assert_eq!(
        body,
        json!({
            "ID": "identity:identity-1", "Name": "identity", "Address": "127.0.0.1", "Port": 8081,
            "Meta": {
                "keel_id": "identity-1", "keel_version": "0.1.0", "keel_health": "/ready",
                "keel_port_http": "8081", "keel_port_grpc": "9081", "zone": "a"
            },
            "Check": {
                "CheckID": "service:identity:identity-1", "Name": "Keel health endpoint",
                "HTTP": "http://127.0.0.1:8081/ready", "Interval": "10s", "Timeout": "2s",
                "Status": "passing", "DeregisterCriticalServiceAfter": "60s"
            }
        })
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        journal
            .to("PUT", "/v1/agent/check/pass/service:identity:identity-1")
            .is_empty(),
        "Consul runs an HTTP check itself; the process sends no heartbeat"
    );
    Ok(())
}

#[tokio::test]
async fn an_instance_without_a_health_endpoint_gets_a_ttl_check_its_process_keeps_passing() -> TestResult {
    let (url, journal) = stub(Agent::default()).await?;
    let mut config = config(&url);
    config.consul.check_interval_secs = 1;
    config.consul.check_timeout_secs = 1;
    let registry = ConsulRegistry::from_config(&config)?;
    let _registration = registry.register(instance("audit", "audit-1", 8084)).await?;

    let sent = journal.to("PUT", "/v1/agent/service/register");
    let body: serde_json::Value = serde_json::from_str(&sent[0].body)?;
    assert_eq!(
        body["Check"],
        json!({
            "CheckID": "service:audit:audit-1", "Name": "Keel heartbeat", "TTL": "1s",
            "Status": "passing", "DeregisterCriticalServiceAfter": "60s"
        })
    );
    let passes = journal
        .wait_for(2, |s| {
            s.method == "PUT" && s.path == "/v1/agent/check/pass/service:audit:audit-1"
        })
        .await?;
    assert!(passes.iter().all(|p| p.header("x-consul-token") == TOKEN));
    Ok(())
}

#[tokio::test]
async fn a_ttl_check_the_agent_lost_is_registered_again() -> TestResult {
    let agent = Agent {
        pass: StatusCode::NOT_FOUND,
        ..Agent::default()
    };
    let (url, journal) = stub(agent).await?;
    let mut config = config(&url);
    config.consul.check_interval_secs = 1;
    config.consul.check_timeout_secs = 1;
    let registry = build_registry(&config)?;
    let _registration = registry.register(instance("audit", "audit-1", 8084)).await?;
    let registrations = journal
        .wait_for(2, |s| s.method == "PUT" && s.path == "/v1/agent/service/register")
        .await?;
    assert_eq!(
        registrations[0].body, registrations[1].body,
        "the same service again"
    );
    Ok(())
}

#[tokio::test]
async fn deregistering_from_consul_removes_the_service_and_stops_its_heartbeat() -> TestResult {
    let (url, journal) = stub(Agent::default()).await?;
    let mut config = config(&url);
    config.consul.check_interval_secs = 1;
    config.consul.check_timeout_secs = 1;
    let registry = build_registry(&config)?;
    let registration = registry.register(instance("audit", "audit-1", 8084)).await?;
    let is_pass = |s: &crate::stub::Seen| s.path.starts_with("/v1/agent/check/pass/");
    journal.wait_for(1, is_pass).await?;

    registry
        .deregister(&registration.service, &registration.instance_id)
        .await?;
    assert_eq!(
        journal
            .to("PUT", "/v1/agent/service/deregister/audit:audit-1")
            .len(),
        1
    );
    let passes = journal.all().into_iter().filter(is_pass).count();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await; // three heartbeat periods
    assert_eq!(journal.all().into_iter().filter(is_pass).count(), passes);
    Ok(())
}

#[tokio::test]
async fn a_consul_watch_follows_blocking_queries_and_wakes_on_a_change() -> TestResult {
    let agent = Agent::default();
    let change = Arc::clone(&agent.change);
    let (url, journal) = stub(agent).await?;
    let registry = build_registry(&config(&url))?;
    let mut watch = registry.watch("identity").await?;
    assert_eq!(
        ids(&watch.borrow_and_update()),
        ["identity-7f3a", "identity-legacy"]
    );

    let blocking = journal
        .wait_for(1, |s| s.query.starts_with("passing&index=100"))
        .await?;
    assert_eq!(blocking[0].query, "passing&index=100&wait=300s");
    change.notify_one();
    assert_eq!(next(&mut watch).await?, ["identity-b21c", "identity-legacy"]);
    journal
        .wait_for(1, |s| s.query.starts_with("passing&index=101"))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_consul_index_that_goes_backwards_starts_the_query_over() -> TestResult {
    let agent = Agent {
        index_after_change: 50,
        ..Agent::default()
    };
    let change = Arc::clone(&agent.change);
    let (url, journal) = stub(agent).await?;
    let registry = build_registry(&config(&url))?;
    let _watch = registry.watch("identity").await?;
    change.notify_one();
    // The first query, the blocking one on 100, then a fresh query from 0 rather than one on 50.
    let queries = journal
        .wait_for(3, |s| s.path == "/v1/health/service/identity")
        .await?;
    assert!(
        queries[2].query.starts_with("passing&index=0&"),
        "{:?}",
        queries[2].query
    );
    Ok(())
}

#[tokio::test]
async fn metadata_under_the_prefix_keel_reserves_in_consul_is_refused() -> TestResult {
    let (url, journal) = stub(Agent::default()).await?;
    let registry = build_registry(&config(&url))?;
    let outcome = registry
        .register(instance("audit", "audit-1", 8084).with_metadata("keel_port_http", "1"))
        .await;
    assert!(
        matches!(outcome, Err(RegistryError::InvalidInstance { .. })),
        "{outcome:?}"
    );
    assert!(journal.all().is_empty(), "nothing was sent");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_consul_agent_is_reported_as_unavailable() -> TestResult {
    let port = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await?
        .local_addr()?
        .port();
    let registry = build_registry(&config(&format!("http://127.0.0.1:{port}")))?;
    let outcome = registry.discover("identity").await;
    assert!(
        matches!(
            outcome,
            Err(RegistryError::Unavailable {
                backend: "consul",
                ..
            })
        ),
        "{outcome:?}"
    );
    Ok(())
}
