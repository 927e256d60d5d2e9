//! Helpers every backend's tests use.

use std::time::Duration;

use keel_registry::{InstanceWatch, ServiceInstance};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// How long a test waits for a change before failing: far longer than a change takes (a task
/// switch, a round trip to etcd or a stub, a lease expiry), short enough to fail fast.
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);

pub(crate) fn instance(service: &str, id: &str, http: u16) -> ServiceInstance {
    ServiceInstance::new(service, id, "127.0.0.1")
        .with_port(ServiceInstance::HTTP, http)
        .with_version("0.1.0")
}

pub(crate) fn ids(instances: &[ServiceInstance]) -> Vec<&str> {
    instances.iter().map(|i| i.id.as_str()).collect()
}

/// Waits for the next change, failing the test if none comes; returns the ids then watched.
pub(crate) async fn next(watch: &mut InstanceWatch) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    tokio::time::timeout(PATIENCE, watch.changed()).await??;
    Ok(ids(&watch.borrow_and_update())
        .into_iter()
        .map(str::to_owned)
        .collect())
}

/// Waits until the watched ids are `expected`, whatever steps lead there; fails after
/// [`PATIENCE`].
pub(crate) async fn until(
    watch: &mut InstanceWatch,
    expected: &[&str],
) -> Result<(), Box<dyn std::error::Error>> {
    let reached = tokio::time::timeout(PATIENCE, watch.wait_for(|instances| ids(instances) == expected))
        .await
        .map(|outcome| outcome.is_ok());
    match reached {
        Ok(true) => Ok(()),
        Ok(false) => Err("the registry is gone".into()),
        Err(_) => Err(format!(
            "the watch never showed {expected:?}; last {:?}",
            ids(&watch.borrow())
        )
        .into()),
    }
}
