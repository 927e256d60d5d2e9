//! The etcd backend against a real etcd (`ETCD_URL`, e.g. `http://127.0.0.1:2379`). Each test
//! uses its own key prefix, so tests run in parallel and never see each other's instances.

use std::net::SocketAddr;
use std::time::Duration;

use keel_config::{RegistryConfig, RegistryKind};
use keel_registry::{EtcdRegistry, RegistryError, ServiceInstance, ServiceRegistry, build_registry};
use keel_testkit::FaultProxy;

use crate::support::{PATIENCE, TestResult, ids, instance, next, until};

/// Settings for the etcd at `url` under a fresh prefix, with `lease_ttl_secs`.
fn config(url: &str, lease_ttl_secs: u64) -> RegistryConfig {
    let mut config = RegistryConfig {
        kind: RegistryKind::Etcd,
        ..RegistryConfig::default()
    };
    config.etcd.endpoints = vec![url.to_owned()];
    config.etcd.prefix = format!("/{}/", keel_testkit::unique_name("keel_registry_test"));
    config.etcd.lease_ttl_secs = lease_ttl_secs;
    config
}

/// A loopback port nothing listens on (bound, then released).
async fn closed_port() -> std::io::Result<u16> {
    Ok(tokio::net::TcpListener::bind("127.0.0.1:0")
        .await?
        .local_addr()?
        .port())
}

/// The etcd's `host:port`, for a proxy in front of it.
async fn socket_address(url: &str) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let authority = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
    let found = tokio::net::lookup_host(authority).await?.next();
    found.ok_or_else(|| format!("{url} names no address").into())
}

#[tokio::test]
async fn an_instance_registered_in_etcd_is_discovered_by_another_process() -> TestResult {
    let Some(url) = keel_testkit::server_url("ETCD_URL") else {
        return Ok(());
    };
    let config = config(&url, 10);
    let (writer, reader) = (build_registry(&config)?, build_registry(&config)?);
    assert_eq!(writer.name(), "etcd");
    let me = instance("identity", "identity-1", 8081)
        .with_port(ServiceInstance::GRPC, 9081)
        .with_metadata("zone", "a")
        .with_health_endpoint("/ready");
    let registration = writer.register(me.clone()).await?;
    assert_eq!(reader.discover("identity").await?, [me]);
    assert!(
        reader.discover("billing").await?.is_empty(),
        "nobody registered it"
    );
    writer
        .deregister(&registration.service, &registration.instance_id)
        .await?;
    assert!(reader.discover("identity").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_etcd_watch_is_woken_by_register_and_deregister() -> TestResult {
    let Some(url) = keel_testkit::server_url("ETCD_URL") else {
        return Ok(());
    };
    let config = config(&url, 10);
    let (writer, reader) = (build_registry(&config)?, build_registry(&config)?);
    let mut watch = reader.watch("audit").await?;
    assert!(watch.borrow().is_empty());

    let first = writer.register(instance("audit", "audit-1", 8084)).await?;
    assert_eq!(next(&mut watch).await?, ["audit-1"]);
    let _second = writer.register(instance("audit", "audit-2", 8085)).await?;
    assert_eq!(next(&mut watch).await?, ["audit-1", "audit-2"]);
    writer.deregister(&first.service, &first.instance_id).await?;
    assert_eq!(next(&mut watch).await?, ["audit-2"]);
    assert_eq!(ids(&reader.discover("audit").await?), ["audit-2"]);

    let mut again = reader.watch("audit").await?;
    assert_eq!(
        ids(&again.borrow_and_update()),
        ["audit-2"],
        "a second watcher starts current"
    );
    Ok(())
}

#[tokio::test]
async fn an_instance_whose_keep_alive_stopped_disappears_after_its_lease_ttl() -> TestResult {
    let Some(url) = keel_testkit::server_url("ETCD_URL") else {
        return Ok(());
    };
    const TTL: Duration = Duration::from_secs(2);
    let config = config(&url, TTL.as_secs());
    let doomed = EtcdRegistry::from_config(&config)?;
    let reader = build_registry(&config)?;
    let _registration = doomed.register(instance("blog", "blog-1", 8090)).await?;
    let mut watch = reader.watch("blog").await?;
    assert_eq!(ids(&watch.borrow_and_update()), ["blog-1"]);

    // Kept alive, the instance outlives its lease several times over.
    tokio::time::sleep(TTL * 3).await;
    assert_eq!(ids(&reader.discover("blog").await?), ["blog-1"]);
    assert!(!watch.has_changed()?, "nothing changed meanwhile");

    // The process "dies": its keeper stops without deregistering; etcd expires the lease.
    drop(doomed);
    until(&mut watch, &[]).await?;
    assert!(reader.discover("blog").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn registering_the_same_id_again_in_etcd_replaces_the_instance() -> TestResult {
    let Some(url) = keel_testkit::server_url("ETCD_URL") else {
        return Ok(());
    };
    let config = config(&url, 2);
    let registry = build_registry(&config)?;
    let _first = registry.register(instance("audit", "audit-1", 8084)).await?;
    let _again = registry.register(instance("audit", "audit-1", 8094)).await?;
    let found = registry.discover("audit").await?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].port(ServiceInstance::HTTP), Some(8094));
    // The first lease was revoked without taking the key along, and the new one is kept alive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(ids(&registry.discover("audit").await?), ["audit-1"]);
    Ok(())
}

#[tokio::test]
async fn deregistering_an_instance_etcd_does_not_know_succeeds() -> TestResult {
    let Some(url) = keel_testkit::server_url("ETCD_URL") else {
        return Ok(());
    };
    let registry = build_registry(&config(&url, 10))?;
    registry.deregister("audit", "no-such-instance").await?;
    Ok(())
}

#[tokio::test]
async fn an_incomplete_instance_is_refused_before_etcd_is_asked() -> TestResult {
    let port = closed_port().await?;
    let registry = build_registry(&config(&format!("http://127.0.0.1:{port}"), 10))?;
    let outcome = registry
        .register(ServiceInstance::new("audit", "audit-1", "127.0.0.1"))
        .await;
    assert!(
        matches!(outcome, Err(RegistryError::InvalidInstance { .. })),
        "{outcome:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unreachable_etcd_is_reported_as_unavailable() -> TestResult {
    let port = closed_port().await?;
    let registry = build_registry(&config(&format!("http://127.0.0.1:{port}"), 10))?;
    let outcome = registry.discover("audit").await;
    assert!(
        matches!(&outcome, Err(RegistryError::Unavailable { backend: "etcd", reason }) if reason.contains(&port.to_string())),
        "{outcome:?}"
    );
    let outcome = registry.register(instance("audit", "audit-1", 8084)).await;
    assert!(
        matches!(outcome, Err(RegistryError::Unavailable { .. })),
        "{outcome:?}"
    );
    assert!(registry.watch("audit").await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_member_that_cannot_be_reached_is_skipped_for_the_next_endpoint() -> TestResult {
    let Some(url) = keel_testkit::server_url("ETCD_URL") else {
        return Ok(());
    };
    let mut config = config(&url, 10);
    let dead = format!("http://127.0.0.1:{}", closed_port().await?);
    config.etcd.endpoints.insert(0, dead);
    let registry = build_registry(&config)?;
    let _registration = registry.register(instance("audit", "audit-1", 8084)).await?;
    assert_eq!(ids(&registry.discover("audit").await?), ["audit-1"]);
    Ok(())
}

#[tokio::test]
async fn an_etcd_watch_catches_up_after_its_connection_breaks() -> TestResult {
    let Some(url) = keel_testkit::server_url("ETCD_URL") else {
        return Ok(());
    };
    let direct = config(&url, 10);
    let proxy = FaultProxy::start(socket_address(&url).await?).await?;
    let mut proxied = direct.clone();
    proxied.etcd.endpoints = vec![format!("http://{}", proxy.address())];
    let (writer, reader) = (build_registry(&direct)?, build_registry(&proxied)?);
    let mut watch = reader.watch("audit").await?;

    proxy.go_down();
    let _registration = writer.register(instance("audit", "audit-1", 8084)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.come_back();
    until(&mut watch, &["audit-1"]).await?;
    Ok(())
}

#[tokio::test]
async fn etcd_watchers_are_told_when_the_registry_is_gone() -> TestResult {
    let Some(url) = keel_testkit::server_url("ETCD_URL") else {
        return Ok(());
    };
    let registry = build_registry(&config(&url, 10))?;
    let mut watch = registry.watch("audit").await?;
    drop(registry);
    assert!(tokio::time::timeout(PATIENCE, watch.changed()).await?.is_err());
    Ok(())
}
