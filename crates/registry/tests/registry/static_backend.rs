//! The static backend: built from configuration, registered into, discovered and watched,
//! health-checked.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use keel_config::{RegistryConfig, RegistryKind};
use keel_registry::{
    HealthCheckSettings, Probe, RegistryError, ServiceInstance, ServiceRegistry, StaticRegistry,
    build_registry, start_registry,
};

use crate::support::{PATIENCE, TestResult, ids, instance, next};

fn config(services: &[(&str, &[&str])]) -> RegistryConfig {
    let services: BTreeMap<String, Vec<String>> = services
        .iter()
        .map(|(name, entries)| (name.to_string(), entries.iter().map(|e| e.to_string()).collect()))
        .collect();
    RegistryConfig {
        kind: RegistryKind::Static,
        services,
        ..RegistryConfig::default()
    }
}

#[tokio::test]
async fn instances_from_configuration_are_discovered_in_the_order_written() -> TestResult {
    let registry = build_registry(&config(&[
        (
            "identity",
            &["10.0.0.5:8081", "http=10.0.0.6:8081,grpc=10.0.0.6:9081"],
        ),
        ("audit", &["[::1]:8084"]),
    ]))?;
    assert_eq!(registry.name(), "static");
    let identity = registry.discover("identity").await?;
    assert_eq!(ids(&identity), ["10.0.0.5:8081", "10.0.0.6:8081"]);
    assert_eq!(
        identity[0].endpoint(ServiceInstance::HTTP).as_deref(),
        Some("10.0.0.5:8081")
    );
    assert_eq!(identity[0].endpoint(ServiceInstance::GRPC), None);
    assert_eq!(
        identity[1].endpoint(ServiceInstance::GRPC).as_deref(),
        Some("10.0.0.6:9081")
    );
    let audit = registry.discover("audit").await?;
    assert_eq!(
        audit[0].endpoint(ServiceInstance::HTTP).as_deref(),
        Some("[::1]:8084")
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_address_in_configuration_is_rejected_naming_the_service_and_the_entry() {
    let outcome = build_registry(&config(&[("identity", &["10.0.0.5:8081", "localhost"])]));
    let error = outcome.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        error,
        "registry.services.identity[1]: invalid instance address `localhost`: `localhost` has no port; \
         expected host:port, e.g. 127.0.0.1:8081, [::1]:8081 or identity.internal:8081"
    );
}

#[tokio::test]
async fn the_same_instance_listed_twice_in_configuration_is_rejected() {
    let outcome = build_registry(&config(&[(
        "audit",
        &["10.0.0.7:8084", "10.0.0.7:8084,grpc=10.0.0.7:9084"],
    )]));
    assert!(
        matches!(
            &outcome,
            Err(RegistryError::DuplicateInstance { service, id })
                if service == "audit" && id == "10.0.0.7:8084"
        ),
        "{:?}",
        outcome.err()
    );
}

#[tokio::test]
async fn a_service_nobody_registered_is_an_empty_list_not_an_error() -> TestResult {
    let registry = build_registry(&config(&[]))?;
    assert!(registry.discover("billing").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_registered_instance_is_discovered_beside_the_configured_ones() -> TestResult {
    let registry = build_registry(&config(&[("identity", &["10.0.0.5:8081"])]))?;
    let me = instance("identity", "identity-local", 18081)
        .with_metadata("zone", "a")
        .with_health_endpoint("/ready");
    let registration = registry.register(me.clone()).await?;
    assert_eq!(
        (registration.service.as_str(), registration.instance_id.as_str()),
        ("identity", "identity-local")
    );
    let found = registry.discover("identity").await?;
    assert_eq!(ids(&found), ["10.0.0.5:8081", "identity-local"]);
    assert_eq!(found[1], me);
    Ok(())
}

#[tokio::test]
async fn registering_a_known_id_again_replaces_the_instance() -> TestResult {
    let registry = build_registry(&config(&[]))?;
    let _first = registry.register(instance("audit", "audit-1", 8084)).await?;
    let _again = registry.register(instance("audit", "audit-1", 8094)).await?;
    let found = registry.discover("audit").await?;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].port(ServiceInstance::HTTP), Some(8094));
    Ok(())
}

#[tokio::test]
async fn an_incomplete_instance_is_refused_and_not_discovered() -> TestResult {
    let registry = build_registry(&config(&[]))?;
    let portless = ServiceInstance::new("audit", "audit-1", "127.0.0.1");
    let outcome = registry.register(portless).await;
    let error = outcome.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        error,
        "cannot register instance `audit-1` of service `audit`: needs at least one port"
    );
    assert!(registry.discover("audit").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_watcher_is_told_of_a_registration_without_polling() -> TestResult {
    let registry = build_registry(&config(&[("authz", &["10.0.0.8:8083"])]))?;
    let mut watch = registry.watch("authz").await?;
    assert_eq!(ids(&watch.borrow()), ["10.0.0.8:8083"]);
    assert!(!watch.has_changed()?, "the initial set counts as seen");

    let writer = Arc::clone(&registry);
    tokio::spawn(async move { writer.register(instance("authz", "authz-local", 18083)).await });
    assert_eq!(next(&mut watch).await?, ["10.0.0.8:8083", "authz-local"]);
    Ok(())
}

#[tokio::test]
async fn a_watcher_of_a_service_not_yet_known_is_told_when_it_appears() -> TestResult {
    let registry = build_registry(&config(&[]))?;
    let mut watch = registry.watch("blog").await?;
    assert!(watch.borrow().is_empty());
    let _registration = registry.register(instance("blog", "blog-1", 18090)).await?;
    assert_eq!(next(&mut watch).await?, ["blog-1"]);
    Ok(())
}

#[tokio::test]
async fn deregistering_removes_the_instance_and_watchers_see_it_go() -> TestResult {
    let registry = build_registry(&config(&[]))?;
    let registration = registry
        .register(instance("identity", "identity-1", 18081))
        .await?;
    let _other = registry
        .register(instance("identity", "identity-2", 18082))
        .await?;
    let mut watch = registry.watch("identity").await?;

    registry
        .deregister(&registration.service, &registration.instance_id)
        .await?;
    assert_eq!(next(&mut watch).await?, ["identity-2"]);
    assert_eq!(ids(&registry.discover("identity").await?), ["identity-2"]);
    Ok(())
}

#[tokio::test]
async fn deregistering_an_unknown_instance_succeeds_and_tells_nobody() -> TestResult {
    let registry = build_registry(&config(&[("audit", &["10.0.0.7:8084"])]))?;
    let watch = registry.watch("audit").await?;
    registry.deregister("audit", "no-such-instance").await?;
    registry.deregister("no-such-service", "x").await?;
    assert!(!watch.has_changed()?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_from_many_tasks_are_all_kept_and_watched() -> TestResult {
    const TASKS: u16 = 64;
    let registry = build_registry(&config(&[]))?;
    let watch = registry.watch("platform").await?;
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
                registry
                    .register(instance("platform", &format!("platform-{n}"), 20000 + n))
                    .await
            })
        })
        .collect();
    for task in tasks {
        let _registration = task.await??;
    }
    let found: HashSet<String> = registry
        .discover("platform")
        .await?
        .into_iter()
        .map(|i| i.id)
        .collect();
    let expected: HashSet<String> = (0..TASKS).map(|n| format!("platform-{n}")).collect();
    assert_eq!(found, expected);
    assert_eq!(
        watch.borrow().len(),
        usize::from(TASKS),
        "the watcher holds the final set"
    );
    Ok(())
}

#[tokio::test]
async fn watchers_are_told_when_the_registry_is_gone() -> TestResult {
    let registry = build_registry(&config(&[]))?;
    let mut watch = registry.watch("audit").await?;
    drop(registry);
    assert!(tokio::time::timeout(PATIENCE, watch.changed()).await?.is_err());
    Ok(())
}

/// A probe whose answers the test decides: instances listed in `down` fail, those in `hang` never
/// answer.
#[derive(Default)]
struct Scripted {
    down: Mutex<HashSet<String>>,
    hang: HashSet<String>,
}

impl Scripted {
    fn set_down(&self, id: &str, down: bool) {
        let mut set = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if down {
            set.insert(id.to_owned());
        } else {
            set.remove(id);
        }
    }
}

#[async_trait]
impl Probe for Scripted {
    async fn probe(&self, instance: &ServiceInstance) -> Result<(), String> {
        if self.hang.contains(&instance.id) {
            std::future::pending::<()>().await;
        }
        let down = self
            .down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&instance.id);
        if down { Err("refused".to_owned()) } else { Ok(()) }
    }
}

const SETTINGS: HealthCheckSettings = HealthCheckSettings {
    interval: Duration::from_secs(2),
    timeout: Duration::from_millis(500),
};

#[tokio::test(start_paused = true)]
async fn an_instance_that_stops_answering_leaves_the_healthy_set_within_one_interval_and_returns()
-> TestResult {
    let registry =
        StaticRegistry::from_config(&config(&[("identity", &["10.0.0.5:8081", "10.0.0.6:8081"])]))?;
    let probe = Arc::new(Scripted::default());
    let checks = registry.spawn_health_checks(probe.clone(), SETTINGS);
    let mut watch = registry.watch("identity").await?;
    tokio::time::sleep(Duration::from_millis(10)).await; // the first round, everyone healthy
    assert!(!watch.has_changed()?, "a probe confirming health tells nobody");

    probe.set_down("10.0.0.6:8081", true);
    let stopped = tokio::time::Instant::now();
    assert_eq!(next(&mut watch).await?, ["10.0.0.5:8081"]);
    assert!(
        stopped.elapsed() <= SETTINGS.interval + SETTINGS.timeout,
        "took {:?}",
        stopped.elapsed()
    );
    assert_eq!(ids(&registry.discover("identity").await?), ["10.0.0.5:8081"]);

    probe.set_down("10.0.0.6:8081", false);
    assert_eq!(next(&mut watch).await?, ["10.0.0.5:8081", "10.0.0.6:8081"]);
    checks.abort();
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn an_instance_that_never_answers_a_probe_is_unhealthy_after_the_timeout() -> TestResult {
    let registry = StaticRegistry::new();
    let _a = registry.register(instance("audit", "audit-1", 18084)).await?;
    let _b = registry.register(instance("audit", "audit-2", 18085)).await?;
    let mut watch = registry.watch("audit").await?;
    let probe = Scripted {
        hang: HashSet::from(["audit-2".to_owned()]),
        ..Scripted::default()
    };
    let started = tokio::time::Instant::now();
    let checks = registry.spawn_health_checks(Arc::new(probe), SETTINGS);
    assert_eq!(next(&mut watch).await?, ["audit-1"]);
    assert_eq!(
        started.elapsed(),
        SETTINGS.timeout,
        "the first round starts at once"
    );
    checks.abort();
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_registered_instance_counts_as_healthy_again_when_it_registers_anew() -> TestResult {
    let registry = StaticRegistry::new();
    let probe = Arc::new(Scripted::default());
    probe.set_down("blog-1", true);
    let _first = registry.register(instance("blog", "blog-1", 18090)).await?;
    let mut watch = registry.watch("blog").await?;
    let checks = registry.spawn_health_checks(probe, SETTINGS);
    assert!(next(&mut watch).await?.is_empty());
    let _again = registry.register(instance("blog", "blog-1", 18091)).await?;
    assert_eq!(next(&mut watch).await?, ["blog-1"]);
    checks.abort();
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn health_checks_stop_when_the_registry_is_dropped() -> TestResult {
    let registry = StaticRegistry::from_config(&config(&[("audit", &["10.0.0.7:8084"])]))?;
    let checks = registry.spawn_health_checks(Arc::new(Scripted::default()), SETTINGS);
    drop(registry);
    tokio::time::timeout(SETTINGS.interval * 2, checks).await??;
    Ok(())
}

#[tokio::test]
async fn configured_health_checks_drop_a_listed_address_that_stops_accepting_and_take_it_back() -> TestResult
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let mut settings = config(&[("audit", &[address.as_str()])]);
    settings.health_check.interval_ms = 100;
    settings.health_check.timeout_ms = 50;
    let registry = start_registry(&settings)?;
    let mut watch = registry.watch("audit").await?;
    assert_eq!(ids(&watch.borrow_and_update()), [address.as_str()]);
    // Accepting connections: it stays through a few rounds of probes.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(ids(&registry.discover("audit").await?), [address.as_str()]);

    drop(listener);
    assert_eq!(
        next(&mut watch).await?,
        Vec::<String>::new(),
        "refused connections take it out"
    );
    let _listener = tokio::net::TcpListener::bind(address.as_str()).await?;
    assert_eq!(
        next(&mut watch).await?,
        [address.as_str()],
        "back at its first answered probe"
    );

    // Off by default: the same listing, never probed, stays whatever happens to it.
    let unprobed = start_registry(&config(&[("audit", &["127.0.0.1:9"])]))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ids(&unprobed.discover("audit").await?), ["127.0.0.1:9"]);
    Ok(())
}
