//! `GrpcAuditClient` against a served audit fake: records stored once, queried, chain verified.

use chrono::Utc;
use keel_clients::{AuditClient, AuditQuery, AuditRecord, GrpcAuditClient, PageRequest};
use uuid::Uuid;

use crate::fakes::audit::FakeAudit;
use crate::support::{grpc_config, lock, policy, register, registry, serve};

fn record(action: &str, actor: Uuid) -> AuditRecord {
    AuditRecord {
        id: Uuid::now_v7(),
        action: action.into(),
        actor_id: Some(actor),
        target_type: Some("user".into()),
        target_id: Some(actor.to_string()),
        request_id: Some("req-7".into()),
        ip: Some("192.0.2.1".into()),
        user_agent: Some("curl/8".into()),
        occurred_at: Utc::now(),
        metadata: serde_json::json!({"method": "password"}),
        source: "auth".into(),
        tenant_id: None,
    }
}

#[tokio::test]
async fn records_are_stored_once_and_read_back_newest_first() -> anyhow::Result<()> {
    let fake = FakeAudit::default();
    let server = fake.server();
    let running = serve(move |router| router.add_service(server)).await?;
    let (registry, shared) = registry();
    register(&registry, "audit", running.port).await?;
    let client = GrpcAuditClient::new(shared, &grpc_config(), policy());

    let actor = Uuid::now_v7();
    let batch = [
        record("auth.login.succeeded", actor),
        record("auth.logout.succeeded", actor),
    ];
    assert_eq!(client.record(&batch).await?, 2);
    assert_eq!(
        client.record(&batch).await?,
        0,
        "a repeated batch is acknowledged, not stored again"
    );
    assert_eq!(lock(&fake.log).len(), 2);

    let query = AuditQuery {
        actor_id: Some(actor),
        page: PageRequest {
            limit: Some(1),
            cursor: None,
        },
        ..AuditQuery::default()
    };
    let page = client.query(query).await?;
    assert_eq!(page.items.len(), 1);
    assert_eq!((page.items[0].sequence, &page.items[0].record), (2, &batch[1]));
    assert!(page.next_cursor.is_some());
    let logins = AuditQuery {
        action: Some("auth.login.succeeded".into()),
        ..AuditQuery::default()
    };
    let page = client.query(logins).await?;
    assert_eq!(
        page.items.iter().map(|s| &s.record).collect::<Vec<_>>(),
        [&batch[0]]
    );
    assert_eq!(page.next_cursor, None);

    let report = client.verify_chain().await?;
    assert!(report.intact);
    assert_eq!((report.records_checked, report.first_broken_sequence), (2, None));
    Ok(())
}
