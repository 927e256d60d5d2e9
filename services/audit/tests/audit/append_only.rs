//! The append-only guards, and what the hash chain reveals when someone gets past them.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::support::{TestAudit, on_both_backends, record};

on_both_backends!(
    update_and_delete_are_rejected_by_the_database,
    a_changed_record_is_reported_by_verify,
    a_removed_record_is_reported_by_verify,
    a_changed_and_rehashed_record_breaks_the_link_to_its_successor,
    the_documented_recipe_reproduces_every_stored_hash,
);

pub(crate) async fn append(audit: &TestAudit, count: usize) -> anyhow::Result<()> {
    let batch: Vec<_> = (0..count).map(|_| record("auth.login.succeeded", None)).collect();
    assert_eq!(audit.client.record(&batch).await? as usize, count);
    Ok(())
}

/// Drops the append-only triggers, as an attacker with DDL rights on the store would.
async fn drop_guards(audit: &TestAudit) -> anyhow::Result<()> {
    let statements: &[&str] = match audit.raw.backend() {
        DbBackend::Postgres => &["DROP TRIGGER audit_log_reject_update_delete ON audit_log"],
        _ => &[
            "DROP TRIGGER audit_log_reject_update",
            "DROP TRIGGER audit_log_reject_delete",
        ],
    };
    for statement in statements {
        audit.sql(statement).await?;
    }
    Ok(())
}

async fn update_and_delete_are_rejected_by_the_database(audit: &TestAudit) -> anyhow::Result<()> {
    append(audit, 2).await?;
    let mut attempts = vec![
        "UPDATE audit_log SET action = 'auth.login.failed' WHERE sequence = 1",
        "UPDATE audit_log SET metadata = '{}'",
        "DELETE FROM audit_log WHERE sequence = 2",
        "DELETE FROM audit_log",
    ];
    if audit.raw.backend() == DbBackend::Postgres {
        attempts.push("TRUNCATE audit_log");
    }
    for sql in attempts {
        let error = audit.sql(sql).await.expect_err(sql);
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    assert_eq!(audit.scalar("SELECT COUNT(*) FROM audit_log").await?, 2);
    assert_eq!(
        audit
            .scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'auth.login.succeeded'")
            .await?,
        2
    );
    assert!(audit.client.verify_chain().await?.intact);
    Ok(())
}

async fn a_changed_record_is_reported_by_verify(audit: &TestAudit) -> anyhow::Result<()> {
    append(audit, 5).await?;
    drop_guards(audit).await?;
    let changed = audit
        .sql(r#"UPDATE audit_log SET metadata = '{"reason":"forged"}' WHERE sequence = 3"#)
        .await?;
    assert_eq!(changed, 1);

    let report = audit.client.verify_chain().await?;
    assert!(!report.intact);
    assert_eq!(report.first_broken_sequence, Some(3));
    assert_eq!(report.records_checked, 3);
    assert!(report.detail.contains("changed"), "{}", report.detail);

    // The operator's path (`platformctl audit verify`) sees the same.
    let offline = keel_audit::verify_store(audit.kernel().config()).await?;
    assert_eq!(offline, report);
    Ok(())
}

async fn a_removed_record_is_reported_by_verify(audit: &TestAudit) -> anyhow::Result<()> {
    append(audit, 4).await?;
    drop_guards(audit).await?;
    assert_eq!(audit.sql("DELETE FROM audit_log WHERE sequence = 2").await?, 1);

    let report = audit.client.verify_chain().await?;
    assert!(!report.intact);
    assert_eq!(report.first_broken_sequence, Some(2));
    assert!(report.detail.contains("missing"), "{}", report.detail);
    Ok(())
}

async fn a_changed_and_rehashed_record_breaks_the_link_to_its_successor(
    audit: &TestAudit,
) -> anyhow::Result<()> {
    append(audit, 5).await?;
    drop_guards(audit).await?;
    // A careful forger recomputes the changed record's hash; its successor still names the old one.
    let mut row = stored_row(audit, 3).await?;
    row.metadata = r#"{"reason":"forged"}"#.to_owned();
    let forged_hash = documented_hash(&row);
    let sql = format!(
        r#"UPDATE audit_log SET metadata = '{{"reason":"forged"}}', hash = '{forged_hash}' WHERE sequence = 3"#
    );
    assert_eq!(audit.sql(&sql).await?, 1);

    let report = audit.client.verify_chain().await?;
    assert!(!report.intact);
    assert_eq!(report.first_broken_sequence, Some(4));
    assert!(report.detail.contains("previous_hash"), "{}", report.detail);
    Ok(())
}

async fn the_documented_recipe_reproduces_every_stored_hash(audit: &TestAudit) -> anyhow::Result<()> {
    let mut with_everything = record("identity.user.registered", Some(Uuid::now_v7()));
    with_everything.metadata =
        serde_json::json!({"email": "ünïcode@example.org", "quote": "\"", "n": [1, 2.5]});
    with_everything.tenant_id = Some("tenant-1".to_owned());
    let mut with_nothing = record("auth.login.failed", None);
    with_nothing.target_type = None;
    with_nothing.target_id = None;
    with_nothing.request_id = None;
    with_nothing.ip = None;
    with_nothing.user_agent = None;
    audit.client.record(&[with_everything, with_nothing]).await?;
    for sequence in 1..=2 {
        let row = stored_row(audit, sequence).await?;
        assert_eq!(documented_hash(&row), row.hash, "record {sequence}");
    }
    Ok(())
}

/// A stored row, read with raw SQL.
struct Row {
    sequence: i64,
    id: Uuid,
    action: String,
    actor_id: Option<Uuid>,
    target_type: Option<String>,
    target_id: Option<String>,
    request_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    occurred_at: DateTime<Utc>,
    metadata: String,
    source: String,
    tenant_id: Option<String>,
    recorded_at: DateTime<Utc>,
    previous_hash: String,
    hash: String,
}

async fn stored_row(audit: &TestAudit, sequence: i64) -> anyhow::Result<Row> {
    let sql = format!("SELECT * FROM audit_log WHERE sequence = {sequence}");
    let statement = Statement::from_string(audit.raw.backend(), sql);
    let row = audit
        .raw
        .connection()
        .query_one_raw(statement)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no record {sequence}"))?;
    Ok(Row {
        sequence: row.try_get("", "sequence")?,
        id: row.try_get("", "id")?,
        action: row.try_get("", "action")?,
        actor_id: row.try_get("", "actor_id")?,
        target_type: row.try_get("", "target_type")?,
        target_id: row.try_get("", "target_id")?,
        request_id: row.try_get("", "request_id")?,
        ip: row.try_get("", "ip")?,
        user_agent: row.try_get("", "user_agent")?,
        occurred_at: row.try_get("", "occurred_at")?,
        metadata: row.try_get("", "metadata")?,
        source: row.try_get("", "source")?,
        tenant_id: row.try_get("", "tenant_id")?,
        recorded_at: row.try_get("", "recorded_at")?,
        previous_hash: row.try_get("", "previous_hash")?,
        hash: row.try_get("", "hash")?,
    })
}

/// The hash as docs/services/audit.md tells an operator to compute it, written independently of
/// the service's code.
fn documented_hash(row: &Row) -> String {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let canonical = serde_json::json!([
        "keel.audit.v1",
        row.sequence,
        row.id.to_string(),
        row.action,
        row.actor_id.map(|id| id.to_string()),
        row.target_type,
        row.target_id,
        row.request_id,
        row.ip,
        row.user_agent,
        time(row.occurred_at),
        row.metadata,
        row.source,
        row.tenant_id,
        time(row.recorded_at),
    ])
    .to_string();
    let digest = Sha256::new()
        .chain_update(row.previous_hash.as_bytes())
        .chain_update(canonical.as_bytes())
        .finalize();
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}
