//! The Kubernetes backend against a stub of the API server's EndpointSlice endpoints (no cluster
//! runs here): the stub records what the backend sends and answers with the recorded
//! `tests/fixtures/kubernetes/` files, streaming the watch events line by line.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keel_config::{RegistryConfig, RegistryKind};
use keel_registry::{KubernetesRegistry, PodEnvironment, ServiceInstance, ServiceRegistry};
use tokio::sync::Notify;

use crate::stub::{Journal, fixture, param, serve};
use crate::support::{TestResult, ids, instance, until};

const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/keel/endpointslices";
const SELECTOR: &str = "labelSelector=kubernetes.io%2Fservice-name%3Dkeel-identity";

/// How the stub API server behaves.
#[derive(Clone)]
struct ApiServer {
    /// Lets the watch from resourceVersion 1000 send its events.
    events: Arc<Notify>,
    /// The recorded events it sends.
    watch_file: &'static str,
}

impl ApiServer {
    fn new(watch_file: &'static str) -> Self {
        Self {
            events: Arc::new(Notify::new()),
            watch_file,
        }
    }
}

/// A list answers the recorded list; a watch from 1000 streams the recorded events once the test
/// allows it, then ends (as the server does at `timeoutSeconds`); a watch from any other version
/// stays open with nothing to say.
async fn endpointslices(State(server): State<ApiServer>, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    if param(query, "watch") != Some("1") {
        let json = [(header::CONTENT_TYPE, "application/json")];
        return (json, fixture("kubernetes/endpointslices_keel_identity.json")).into_response();
    }
    if param(query, "resourceVersion") != Some("1000") {
        std::future::pending::<()>().await;
    }
    let (lines, body) = tokio::sync::mpsc::channel::<Result<String, Infallible>>(8);
    tokio::spawn(async move {
        server.events.notified().await;
        for line in fixture(server.watch_file).lines() {
            let _ = lines.send(Ok(format!("{line}\n"))).await;
        }
    });
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        body.recv().await.map(|line| (line, body))
    });
    let json = [(header::CONTENT_TYPE, "application/json")];
    (json, Body::from_stream(stream)).into_response()
}

/// The stub, and a registry pointed at it as a pod of namespace `keel` with a service-account
/// token, mapping the Keel service `identity` to the Service `keel-identity`.
async fn setup(
    server: ApiServer,
) -> Result<(KubernetesRegistry, Journal, tempfile::TempDir), Box<dyn std::error::Error>> {
    let router = Router::new()
        .route(SLICES, get(endpointslices))
        .with_state(server);
    let (url, journal) = serve(router).await?;
    let account = tempfile::tempdir()?;
    std::fs::write(account.path().join("token"), "sa-token-1\n")?;
    std::fs::write(account.path().join("namespace"), "keel")?;
    let pod = PodEnvironment {
        service_account_dir: account.path().to_path_buf(),
        variables: Default::default(),
    };
    let mut config = RegistryConfig {
        kind: RegistryKind::Kubernetes,
        ..RegistryConfig::default()
    };
    config.kubernetes.api_server = url;
    config
        .kubernetes
        .services
        .insert("identity".to_owned(), "keel-identity".to_owned());
    Ok((KubernetesRegistry::new(&config, &pod)?, journal, account))
}

#[tokio::test]
async fn kubernetes_discovery_lists_the_ready_endpoints_of_the_mapped_service_with_their_ports() -> TestResult
{
    let (registry, journal, _account) = setup(ApiServer::new("kubernetes/watch_keel_identity.jsonl")).await?;
    let found = registry.discover("identity").await?;

    let ready = ServiceInstance::new("identity", "10.244.1.5", "10.244.1.5")
        .with_port(ServiceInstance::HTTP, 8081)
        .with_port(ServiceInstance::GRPC, 9081)
        .with_metadata("pod", "identity-7f9c6d5b8-x2kqz")
        .with_metadata("node", "worker-1")
        .with_metadata("zone", "eu-west-1a");
    let unknown_counts_as_ready = ServiceInstance::new("identity", "10.244.3.9", "10.244.3.9")
        .with_port(ServiceInstance::HTTP, 8081)
        .with_port(ServiceInstance::GRPC, 9081)
        .with_metadata("pod", "identity-7f9c6d5b8-p5r7n")
        .with_metadata("node", "worker-3");
    assert_eq!(found, [ready, unknown_counts_as_ready], "10.244.2.7 is not ready");

    let asked = journal.to("GET", SLICES);
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].query, SELECTOR,
        "the mapped Service, in the pod's namespace"
    );
    assert_eq!(asked[0].header("authorization"), "Bearer sa-token-1");
    Ok(())
}

#[tokio::test]
async fn a_kubernetes_watch_applies_endpoint_slice_events_and_resumes_from_the_last_version() -> TestResult {
    let server = ApiServer::new("kubernetes/watch_keel_identity.jsonl");
    let events = Arc::clone(&server.events);
    let (registry, journal, _account) = setup(server).await?;
    let mut watch = registry.watch("identity").await?;
    assert_eq!(ids(&watch.borrow_and_update()), ["10.244.1.5", "10.244.3.9"]);
    let opened = journal.wait_for(1, |s| s.query.contains("watch=1")).await?;
    assert_eq!(
        opened[0].query,
        format!("{SELECTOR}&watch=1&resourceVersion=1000&allowWatchBookmarks=true&timeoutSeconds=290")
    );

    events.notify_one();
    // 10.244.2.7 became ready, then the slice holding 10.244.3.9 was deleted.
    until(&mut watch, &["10.244.1.5", "10.244.2.7"]).await?;
    // The stream ended after the bookmark: the watch resumes from it, without listing again.
    journal
        .wait_for(1, |s| s.query.contains("watch=1&resourceVersion=1003"))
        .await?;
    let lists = journal
        .all()
        .into_iter()
        .filter(|s| !s.query.contains("watch=1"))
        .count();
    assert_eq!(lists, 1);
    Ok(())
}

#[tokio::test]
async fn a_kubernetes_watch_lists_again_when_its_version_is_gone() -> TestResult {
    let server = ApiServer::new("kubernetes/watch_gone.jsonl");
    let events = Arc::clone(&server.events);
    let (registry, journal, _account) = setup(server).await?;
    let _watch = registry.watch("identity").await?;
    events.notify_one();
    journal
        .wait_for(2, |s| s.path == SLICES && !s.query.contains("watch=1"))
        .await?;
    Ok(())
}

#[tokio::test]
async fn registering_with_kubernetes_succeeds_and_writes_nothing() -> TestResult {
    let (registry, journal, _account) = setup(ApiServer::new("kubernetes/watch_keel_identity.jsonl")).await?;
    assert_eq!(registry.name(), "kubernetes");
    let registration = registry
        .register(instance("identity", "identity-1", 8081))
        .await?;
    registry
        .deregister(&registration.service, &registration.instance_id)
        .await?;
    assert!(journal.all().is_empty(), "Kubernetes owns membership");
    let refused = registry
        .register(ServiceInstance::new("identity", "identity-1", "127.0.0.1"))
        .await;
    assert!(refused.is_err(), "an incomplete instance is still refused");
    Ok(())
}
