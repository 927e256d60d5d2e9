//! The gRPC API, called through keel-clients' `GrpcAuditClient` found in the registry.

use std::sync::Arc;

use keel_clients::{AuditClient, AuditQuery, GrpcAuditClient, PageRequest, ServiceError};

use crate::support::{TestAudit, on_both_backends, record, violations};

on_both_backends!(
    records_sent_over_grpc_are_stored_once_and_read_back,
    invalid_records_over_grpc_are_rejected_with_field_paths,
    verify_chain_over_grpc_reports_the_chain,
);

async fn grpc_client(audit: &TestAudit) -> anyhow::Result<Arc<dyn AuditClient>> {
    audit.serve_grpc().await?;
    let kernel = audit.kernel();
    let grpc = &kernel.config().kernel().grpc;
    let policy = keel_clients::CallPolicy::from_config(grpc);
    Ok(Arc::new(GrpcAuditClient::new(
        kernel.registry().clone(),
        grpc,
        policy,
    )))
}

async fn records_sent_over_grpc_are_stored_once_and_read_back(audit: &TestAudit) -> anyhow::Result<()> {
    let client = grpc_client(audit).await?;
    let batch = vec![
        record("auth.login.succeeded", None),
        record("auth.logout.succeeded", None),
    ];
    assert_eq!(client.record(&batch).await?, 2);
    assert_eq!(
        client.record(&batch).await?,
        0,
        "a retried Record is not a duplicate"
    );

    let page = client
        .query(AuditQuery {
            page: PageRequest {
                limit: Some(1),
                cursor: None,
            },
            ..Default::default()
        })
        .await?;
    assert_eq!(page.items.len(), 1);
    let newest = &page.items[0];
    assert_eq!(newest.sequence, 2);
    assert_eq!(newest.record.id, batch[1].id);
    assert_eq!(newest.record.metadata, batch[1].metadata);
    assert_eq!(newest.record.target_id, batch[1].target_id);
    let next = client
        .query(AuditQuery {
            page: PageRequest {
                limit: Some(1),
                cursor: page.next_cursor,
            },
            ..Default::default()
        })
        .await?;
    assert_eq!(next.items[0].record.id, batch[0].id);
    assert_eq!(next.next_cursor, None);
    Ok(())
}

async fn invalid_records_over_grpc_are_rejected_with_field_paths(audit: &TestAudit) -> anyhow::Result<()> {
    let client = grpc_client(audit).await?;
    let mut bad = record("Auth.Login", None);
    bad.source = String::new();
    let error = client
        .record(&[record("auth.login.succeeded", None), bad])
        .await
        .expect_err("the request is rejected");
    assert!(matches!(error, ServiceError::InvalidArgument { .. }), "{error:?}");
    assert_eq!(
        violations(&error),
        [
            ("records[1].action".to_owned(), "invalid_format".to_owned()),
            ("records[1].source".to_owned(), "required".to_owned()),
        ]
    );
    assert_eq!(audit.scalar("SELECT COUNT(*) FROM audit_log").await?, 0);

    let too_many: Vec<_> = (0..1001).map(|_| record("auth.login.succeeded", None)).collect();
    let error = client
        .record(&too_many)
        .await
        .expect_err("the request is rejected");
    assert_eq!(
        violations(&error),
        [("records".to_owned(), "too_many".to_owned())]
    );
    Ok(())
}

async fn verify_chain_over_grpc_reports_the_chain(audit: &TestAudit) -> anyhow::Result<()> {
    let client = grpc_client(audit).await?;
    let empty = client.verify_chain().await?;
    assert!(empty.intact);
    assert_eq!(empty.records_checked, 0);
    client
        .record(&[
            record("auth.login.succeeded", None),
            record("auth.login.failed", None),
        ])
        .await?;
    let report = client.verify_chain().await?;
    assert!(report.intact, "{}", report.detail);
    assert_eq!(report.records_checked, 2);
    assert_eq!(report.first_broken_sequence, None);
    Ok(())
}
