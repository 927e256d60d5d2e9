//! Record throughput on the embedded store (SQLite, WAL): batches of 1, 10 and 100 records
//! appended through the in-process client, i.e. validation, one transaction, chain hashing and the
//! inserts, without the gRPC hop. Run with `cargo bench -p keel-audit --bench record`.

use std::hint::black_box;
use std::sync::Arc;

use chrono::Utc;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use keel_audit::{AuditDeps, AuditService};
use keel_authn::{JwtSettings, StaticJwks, TokenVerifier};
use keel_clients::{AuditClient, AuditRecord, ServiceClients};
use keel_kernel::Kernel;
use uuid::Uuid;

fn batch(size: usize) -> Vec<AuditRecord> {
    (0..size)
        .map(|i| AuditRecord {
            id: Uuid::now_v7(),
            action: "auth.login.succeeded".to_owned(),
            actor_id: Some(Uuid::now_v7()),
            target_type: Some("user".to_owned()),
            target_id: Some(Uuid::now_v7().to_string()),
            request_id: Some(format!("req-{i}")),
            ip: Some("192.0.2.10".to_owned()),
            user_agent: Some("keel-bench/1.0".to_owned()),
            occurred_at: Utc::now(),
            metadata: serde_json::json!({"method": "password", "attempt": i}),
            source: "auth".to_owned(),
            tenant_id: None,
        })
        .collect()
}

/// An audit service on a SQLite store in `directory`, and its kernel (kept alive by the caller).
async fn service(directory: &std::path::Path) -> anyhow::Result<(Kernel, Arc<dyn AuditClient>)> {
    let url = format!("sqlite:{}", directory.display());
    let config = keel_testkit::test_config(&[
        ("KEEL_DATABASE__URL", &url),
        ("KEEL_AUDIT__VERIFY_INTERVAL_SECS", "0"),
    ]);
    let kernel = Kernel::builder(config).without_global_telemetry().build()?;
    let handle = kernel.handle();
    let verifier = Arc::new(TokenVerifier::new(
        Arc::new(StaticJwks(r#"{"keys":[]}"#.to_owned())),
        JwtSettings::default(),
    ));
    let clients = ServiceClients::connect(handle.registry().clone(), &handle.config().kernel().grpc);
    let service = AuditService::build(&handle, AuditDeps { clients, verifier }).await?;
    Ok((kernel, service.local_client()))
}

fn record_throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime for the benchmark");
    let directory = tempfile::tempdir().expect("a temporary directory for the store");
    let (_kernel, client) = runtime
        .block_on(service(directory.path()))
        .expect("the audit service builds on a fresh SQLite store");
    let mut group = c.benchmark_group("record");
    for size in [1_usize, 10, 100] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("batch_{size}"), |b| {
            b.to_async(&runtime).iter_batched(
                || batch(size),
                |records| {
                    let client = client.clone();
                    async move { black_box(client.record(&records).await.expect("record")) }
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, record_throughput);
criterion_main!(benches);
