//! How long a permission check takes inside the authz service, on SQLite: warm (answered from the
//! in-process cache, the common case) and uncached (`authz.cache_ttl_secs: 0`, one indexed join
//! per check). Run with `cargo bench -p keel-authz --bench has_permission`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use keel_authn::{JwtSettings, StaticJwks, TokenVerifier};
use keel_authz::{AuthzDeps, AuthzService};
use keel_clients::{AuthzClient, ServiceClients};
use keel_events::InProcessBus;
use keel_kernel::Kernel;
use uuid::Uuid;

/// A seeded service on a fresh SQLite directory with an admin, and that admin's id.
struct Fixture {
    client: Arc<dyn AuthzClient>,
    admin: Uuid,
    _kernel: Kernel,
    _service: AuthzService,
    _dir: tempfile::TempDir,
}

async fn fixture(cache_ttl_secs: &str) -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite:{}", dir.path().display());
    let config = keel_testkit::test_config(&[
        ("KEEL_DATABASE__URL", url.as_str()),
        ("KEEL_AUTHZ__CACHE_TTL_SECS", cache_ttl_secs),
    ]);
    let kernel = Kernel::builder(config.clone())
        .without_global_telemetry()
        .build()?;
    let handle = kernel.handle();
    // The peers are never called: no background work runs and no REST request is made.
    let clients = ServiceClients::connect(handle.registry().clone(), &config.kernel().grpc);
    let verifier = Arc::new(TokenVerifier::new(
        Arc::new(StaticJwks(r#"{"keys":[]}"#.to_owned())),
        JwtSettings::default(),
    ));
    let deps = AuthzDeps {
        clients,
        events: Arc::new(InProcessBus::new(16)),
        verifier,
    };
    let service = AuthzService::build(&handle, deps).await?;
    service.seed_roles().await?;
    let admin = Uuid::now_v7();
    service.assign_roles_by_name(admin, &["admin", "user"]).await?;
    let client = service.local_client();
    anyhow::ensure!(client.has_permission(admin, "platform.role.manage").await?);
    Ok(Fixture {
        client,
        admin,
        _kernel: kernel,
        _service: service,
        _dir: dir,
    })
}

fn has_permission(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (name, ttl) in [("has_permission/warm", "60"), ("has_permission/uncached", "0")] {
        let fixture = runtime.block_on(fixture(ttl)).unwrap();
        c.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let allowed = fixture
                    .client
                    .has_permission(fixture.admin, "platform.role.manage")
                    .await;
                assert!(matches!(allowed, Ok(true)));
            });
        });
    }
}

criterion_group!(benches, has_permission);
criterion_main!(benches);
