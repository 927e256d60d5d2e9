//! Appending: the chain, idempotency, concurrency, validation.

use std::collections::HashSet;

use crate::support::{TestAudit, all_records, on_both_backends, record, violations};

on_both_backends!(
    records_are_chained_in_order_from_the_genesis_hash,
    resending_a_batch_stores_only_the_new_records,
    concurrent_appenders_keep_one_consistent_chain,
    concurrent_identical_batches_are_stored_once,
    a_batch_with_one_invalid_record_stores_nothing,
    appends_are_counted_in_the_metrics,
);

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

async fn records_are_chained_in_order_from_the_genesis_hash(audit: &TestAudit) -> anyhow::Result<()> {
    let first = vec![
        record("auth.login.succeeded", None),
        record("auth.logout.succeeded", None),
    ];
    let second = vec![record("identity.user.registered", None)];
    assert_eq!(audit.client.record(&first).await?, 2);
    assert_eq!(audit.client.record(&second).await?, 1);

    let stored = all_records(audit.client.as_ref()).await?;
    let sent: Vec<_> = first.iter().chain(&second).collect();
    assert_eq!(stored.len(), 3);
    for (index, (stored, sent)) in stored.iter().zip(sent).enumerate() {
        assert_eq!(stored.sequence, index as u64 + 1);
        assert_eq!(stored.record.id, sent.id);
        assert_eq!(stored.record.action, sent.action);
        assert_eq!(stored.record.metadata, sent.metadata);
        assert_eq!(stored.record.target_id, sent.target_id);
        assert_eq!(stored.hash.len(), 64);
    }
    assert_eq!(stored[0].previous_hash, GENESIS);
    assert_eq!(stored[1].previous_hash, stored[0].hash);
    assert_eq!(stored[2].previous_hash, stored[1].hash);

    let report = audit.client.verify_chain().await?;
    assert!(report.intact, "{}", report.detail);
    assert_eq!(report.records_checked, 3);
    assert_eq!(report.first_broken_sequence, None);
    Ok(())
}

async fn resending_a_batch_stores_only_the_new_records(audit: &TestAudit) -> anyhow::Result<()> {
    let batch = vec![
        record("auth.login.failed", None),
        record("auth.login.failed", None),
        record("auth.login.succeeded", None),
    ];
    assert_eq!(audit.client.record(&batch).await?, 3);
    assert_eq!(
        audit.client.record(&batch).await?,
        0,
        "a re-send is acknowledged, not stored"
    );

    let mut mixed = batch.clone();
    mixed.push(record("auth.logout.succeeded", None));
    let newcomer = mixed[3].clone();
    mixed.push(newcomer); // the same id twice in one batch
    assert_eq!(audit.client.record(&mixed).await?, 1);

    let stored = all_records(audit.client.as_ref()).await?;
    assert_eq!(stored.len(), 4);
    assert_eq!(
        stored.iter().map(|r| r.record.id).collect::<HashSet<_>>().len(),
        4
    );
    assert!(audit.client.verify_chain().await?.intact);
    Ok(())
}

async fn concurrent_appenders_keep_one_consistent_chain(audit: &TestAudit) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = audit.client.clone();
        let batch: Vec<_> = (0..5).map(|_| record("authz.role.assigned", None)).collect();
        tasks.push(tokio::spawn(async move { client.record(&batch).await }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += task.await??;
    }
    assert_eq!(stored, 100);

    let records = all_records(audit.client.as_ref()).await?;
    let sequences: Vec<u64> = records.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, (1..=100).collect::<Vec<_>>(), "one gap-free sequence");
    let report = audit.client.verify_chain().await?;
    assert!(report.intact, "{}", report.detail);
    assert_eq!(report.records_checked, 100);
    Ok(())
}

async fn concurrent_identical_batches_are_stored_once(audit: &TestAudit) -> anyhow::Result<()> {
    let batch: Vec<_> = (0..10).map(|_| record("auth.login.succeeded", None)).collect();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = audit.client.clone();
        let batch = batch.clone();
        tasks.push(tokio::spawn(async move { client.record(&batch).await }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += task.await??;
    }
    assert_eq!(stored, 10, "exactly one of the senders stored the batch");
    assert_eq!(audit.scalar("SELECT COUNT(*) FROM audit_log").await?, 10);
    assert!(audit.client.verify_chain().await?.intact);
    Ok(())
}

async fn a_batch_with_one_invalid_record_stores_nothing(audit: &TestAudit) -> anyhow::Result<()> {
    let mut bad = record("login", None);
    bad.metadata = serde_json::json!("not an object");
    let batch = vec![record("auth.login.succeeded", None), bad];
    let error = audit
        .client
        .record(&batch)
        .await
        .expect_err("the request is rejected");
    assert_eq!(
        violations(&error),
        [
            ("records[1].action".to_owned(), "invalid_format".to_owned()),
            ("records[1].metadata".to_owned(), "invalid_type".to_owned()),
        ]
    );
    assert_eq!(audit.scalar("SELECT COUNT(*) FROM audit_log").await?, 0);
    Ok(())
}

async fn appends_are_counted_in_the_metrics(audit: &TestAudit) -> anyhow::Result<()> {
    let batch: Vec<_> = (0..3).map(|_| record("auth.login.succeeded", None)).collect();
    audit.client.record(&batch).await?;
    audit.client.record(&batch).await?;
    // The recorder is process-wide and other tests add to it: the counters are at least ours.
    let text = audit.kernel().metrics().render();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    assert!(value("keel_audit_records_stored_total") >= 3.0, "{text}");
    assert!(value("keel_audit_duplicates_total") >= 3.0, "{text}");
    assert!(text.contains("keel_audit_batch_size"), "{text}");
    Ok(())
}
