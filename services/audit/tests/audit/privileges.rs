//! PostgreSQL privileges on the log: what the migration revokes, and what that means for a
//! service running as the schema's owner (no superuser), the recommended deployment.

use crate::append_only::append;
use crate::support::{TestAudit, admin, on_postgres, on_postgres_as_schema_owner};

/// Privileges recorded in the table's ACL of kind `privilege`, for any grantee.
async fn granted(audit: &TestAudit, privilege: &str) -> anyhow::Result<i64> {
    audit
        .scalar(&format!(
            "SELECT COUNT(*) FROM pg_class c, aclexplode(c.relacl) acl \
             WHERE c.oid = 'audit_log'::regclass AND acl.privilege_type = '{privilege}'"
        ))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_role_keeps_update_delete_or_truncate_on_the_log() -> anyhow::Result<()> {
    on_postgres(async |audit: &TestAudit| {
        for privilege in ["UPDATE", "DELETE", "TRUNCATE"] {
            assert_eq!(granted(audit, privilege).await?, 0, "{privilege}");
        }
        assert_eq!(granted(audit, "INSERT").await?, 1, "the owner keeps INSERT");
        assert_eq!(granted(audit, "SELECT").await?, 1, "the owner keeps SELECT");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_role_that_drops_the_trigger_is_still_refused_update_and_delete() -> anyhow::Result<()> {
    on_postgres_as_schema_owner(async |audit: &TestAudit| {
        append(audit, 2).await?;
        // The owner may drop the trigger...
        audit
            .sql("DROP TRIGGER audit_log_reject_update_delete ON audit_log")
            .await?;
        // ...but its own UPDATE and DELETE privileges were revoked by the migration.
        for sql in [
            "UPDATE audit_log SET action = 'auth.login.failed'",
            "DELETE FROM audit_log",
        ] {
            let error = audit.sql(sql).await.expect_err(sql);
            assert!(error.to_string().contains("permission denied"), "{sql}: {error}");
        }
        assert_eq!(audit.scalar("SELECT COUNT(*) FROM audit_log").await?, 2);
        assert!(audit.client.verify_chain().await?.intact);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_role_granted_only_what_the_docs_list_runs_the_service_and_cannot_rewrite()
-> anyhow::Result<()> {
    on_postgres(async |owner: &TestAudit| {
        let Some(url) = keel_testkit::server_url("DATABASE_URL") else {
            return Ok(());
        };
        let writer = keel_testkit::unique_name("kta_writer");
        let outcome = writer_scenario(owner, &writer).await;
        admin(
            &url,
            &[
                format!(r#"DROP OWNED BY "{writer}""#),
                format!(r#"DROP ROLE IF EXISTS "{writer}""#),
            ],
        )
        .await?;
        outcome
    })
    .await
}

/// The grants of docs/services/audit.md ("A dedicated writer role"), then the writer at work.
async fn writer_scenario(owner: &TestAudit, writer: &str) -> anyhow::Result<()> {
    append(owner, 1).await?;
    let schema: String = owner.text("SELECT current_schema()::text").await?;
    for grant in [
        format!(r#"CREATE ROLE "{writer}" LOGIN"#),
        format!(r#"GRANT USAGE, CREATE ON SCHEMA "{schema}" TO "{writer}""#),
        format!(r#"GRANT SELECT, INSERT ON audit_log TO "{writer}""#),
        format!(r#"GRANT SELECT ON seaql_migrations TO "{writer}""#),
    ] {
        owner.sql(&grant).await?;
    }
    let audit = owner.connect_as(writer).await?;
    let outcome = async {
        append(&audit, 2).await?;
        for sql in [
            "UPDATE audit_log SET action = 'auth.login.failed'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ] {
            let error = audit.sql(sql).await.expect_err(sql);
            assert!(error.to_string().contains("permission denied"), "{sql}: {error}");
        }
        for sql in [
            "DROP TRIGGER audit_log_reject_update_delete ON audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER ALL",
            "DROP TABLE audit_log",
        ] {
            let error = audit.sql(sql).await.expect_err(sql);
            assert!(error.to_string().contains("must be owner"), "{sql}: {error}");
        }
        let report = audit.client.verify_chain().await?;
        assert!(report.intact, "{}", report.detail);
        assert_eq!(report.records_checked, 3);
        Ok(())
    }
    .await;
    audit.shut_down().await;
    outcome
}
