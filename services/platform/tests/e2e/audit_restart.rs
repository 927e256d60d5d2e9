//! The audit service is stopped in the middle of a burst of logins (its relays sending, logins
//! still in flight), stays down while more logins happen, and comes back: every login's audit
//! record arrives, exactly once, because each is written to auth's outbox in the login's own
//! transaction and relayed (idempotently, by record id) until the audit service acknowledges.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_clients::{AuditQuery, Origin, PageRequest, ServiceClients};
use keel_events::{EventBus, InProcessBus};
use keel_kernel::{Kernel, KernelHandle};
use keel_platform::{CoreService, CoreServices};
use keel_registry::{ServiceRegistry, StaticRegistry};
use keel_service::SharedRuntime;
use keel_testkit::test_config;
use secrecy::SecretString;

use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD};

struct Running {
    kernel: KernelHandle,
    core: CoreServices,
    task: tokio::task::JoinHandle<Result<(), keel_kernel::KernelError>>,
}

async fn start(
    config: &keel_config::Config,
    registry: &Arc<dyn ServiceRegistry>,
    bus: &Arc<dyn EventBus>,
    which: &[CoreService],
) -> (Running, SharedRuntime) {
    let kernel = Kernel::builder(config.clone())
        .without_global_telemetry()
        .with_registry(registry.clone())
        .build()
        .expect("kernel");
    let handle = kernel.handle();
    let shared = SharedRuntime::new(&handle, bus.clone()).expect("runtime");
    shared
        .spawn_permission_invalidation(&handle)
        .await
        .expect("subscriptions");
    let core = CoreServices::build(&handle, &shared, which)
        .await
        .expect("services build");
    let task = tokio::spawn(kernel.run(core.components()));
    (
        Running {
            kernel: handle,
            core,
            task,
        },
        shared,
    )
}

async fn stop(running: Running) {
    running.kernel.shutdown();
    running.task.await.expect("task").expect("stops cleanly");
}

async fn logins(clients: &ServiceClients, count: usize) -> usize {
    let password = SecretString::from(ADMIN_PASSWORD.to_owned());
    let origin = Origin::default();
    let attempts = (0..count).map(|_| clients.auth.login(ADMIN_EMAIL, &password, &origin));
    futures_util::future::join_all(attempts)
        .await
        .iter()
        .filter(|outcome| outcome.is_ok())
        .count()
}

#[tokio::test]
async fn stopping_the_audit_service_during_a_burst_of_logins_loses_no_audit_record() {
    let data = tempfile::tempdir().expect("data directory");
    let url = format!("sqlite:{}", data.path().display());
    let config = test_config(&[
        ("KEEL_DATABASE__URL", url.as_str()),
        (
            "KEEL_IDENTITY__OUTBOX_DIR",
            &data.path().join("outbox").display().to_string(),
        ),
        ("KEEL_ADMIN_EMAIL", ADMIN_EMAIL),
        ("KEEL_ADMIN_PASSWORD", ADMIN_PASSWORD),
    ]);
    let registry: Arc<dyn ServiceRegistry> = Arc::new(StaticRegistry::new());
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new(4096));

    let (main, shared) = start(
        &config,
        &registry,
        &bus,
        &[CoreService::Authz, CoreService::Identity, CoreService::Auth],
    )
    .await;
    let (Some(identity), Some(authz)) = (&main.core.identity, &main.core.authz) else {
        panic!("built")
    };
    keel_platform::seed::seed(identity, authz, &config)
        .await
        .expect("seeded");
    let (audit, _) = start(&config, &registry, &bus, &[CoreService::Audit]).await;

    let query = || AuditQuery {
        action: Some("auth.login.succeeded".to_owned()),
        page: PageRequest {
            limit: Some(100),
            cursor: None,
        },
        ..AuditQuery::default()
    };
    let mut succeeded = logins(&shared.clients, 15).await;
    let before = audit.core.audit.as_ref().expect("audit built").local_client();
    let delivered_before = eventually(
        || async { before.query(query()).await.map(|page| page.items.len()) },
        15,
    )
    .await;
    assert_eq!(delivered_before, 15, "delivered while the audit service is up");

    // A burst of logins, and the audit service stopped while it is in flight: once the first of its
    // records has arrived (its relays are sending), before its last login has answered.
    let clients = shared.clients.clone();
    let burst = tokio::spawn(async move { logins(&clients, 60).await });
    eventually(
        || async { before.query(query()).await.map(|page| page.items.len()) },
        16,
    )
    .await;
    assert!(
        !burst.is_finished(),
        "the audit service goes down while the burst is still in flight"
    );
    stop(audit).await;
    succeeded += burst.await.expect("burst");
    succeeded += logins(&shared.clients, 15).await;
    assert_eq!(
        succeeded, 90,
        "logins do not depend on the audit service being up"
    );

    let (audit, _) = start(&config, &registry, &bus, &[CoreService::Audit]).await;
    let reader = audit.core.audit.as_ref().expect("audit built").local_client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let records = loop {
        let page = reader.query(query()).await.expect("query");
        if page.items.len() >= succeeded || Instant::now() > deadline {
            break page.items;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(records.len(), succeeded, "every login is audited exactly once");
    let mut ids: Vec<_> = records.iter().map(|r| r.record.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), succeeded, "no record is stored twice");
    assert!(reader.verify_chain().await.expect("verify").intact);

    stop(audit).await;
    stop(main).await;
}

/// What `count` answers once it reaches `at_least`, polled every 10 ms for up to 60 s (its last
/// answer then).
async fn eventually<F, Fut, E>(count: F, at_least: usize) -> usize
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize, E>>,
    E: std::fmt::Debug,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = count().await.expect("count");
        if seen >= at_least || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
