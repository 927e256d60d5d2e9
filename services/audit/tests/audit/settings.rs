//! The `audit` configuration section: its bounds, verification over many small pages, and the
//! periodic background verification.

use keel_audit::AuditError;

use crate::append_only::append;
use crate::support::{TestAudit, on_sqlite_with};

#[tokio::test]
async fn an_out_of_range_verify_page_size_stops_the_service_from_building() {
    for size in ["0", "10001"] {
        let outcome = on_sqlite_with(
            &[("KEEL_AUDIT__VERIFY_PAGE_SIZE", size)],
            async |_: &TestAudit| Ok(()),
        )
        .await;
        let error = outcome.expect_err(size);
        assert!(
            matches!(error.downcast_ref::<AuditError>(), Some(AuditError::Settings(_))),
            "{size}: {error:#}"
        );
        assert!(error.to_string().contains("audit.verify_page_size"), "{error}");
    }
}

#[tokio::test]
async fn a_verify_interval_beyond_a_year_stops_the_service_from_building() {
    // u64::MAX seconds, meant as "rarely", would overflow the next run's instant.
    for interval in ["31536001", "18446744073709551615"] {
        let outcome = on_sqlite_with(
            &[("KEEL_AUDIT__VERIFY_INTERVAL_SECS", interval)],
            async |_: &TestAudit| Ok(()),
        )
        .await;
        let error = outcome.expect_err(interval);
        assert!(
            matches!(error.downcast_ref::<AuditError>(), Some(AuditError::Settings(_))),
            "{interval}: {error:#}"
        );
        assert!(
            error.to_string().contains("audit.verify_interval_secs"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn verification_in_pages_of_two_walks_the_whole_chain_and_finds_a_break_on_a_page_edge()
-> anyhow::Result<()> {
    on_sqlite_with(
        &[("KEEL_AUDIT__VERIFY_PAGE_SIZE", "2")],
        async |audit: &TestAudit| {
            append(audit, 7).await?;
            let report = audit.client.verify_chain().await?;
            assert!(report.intact, "{}", report.detail);
            assert_eq!(report.records_checked, 7);

            audit.sql("DROP TRIGGER audit_log_reject_delete").await?;
            // Record 5 opens the third page: the walk must carry the hash of 4 across the edge.
            audit.sql("DELETE FROM audit_log WHERE sequence = 5").await?;
            let report = audit.client.verify_chain().await?;
            assert!(!report.intact);
            assert_eq!(report.first_broken_sequence, Some(5));
            Ok(())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_verification_flags_a_broken_chain_in_the_metrics() -> anyhow::Result<()> {
    on_sqlite_with(
        &[("KEEL_AUDIT__VERIFY_INTERVAL_SECS", "1")],
        async |audit: &TestAudit| {
            append(audit, 3).await?;
            audit.sql("DROP TRIGGER audit_log_reject_update").await?;
            audit
                .sql(r#"UPDATE audit_log SET metadata = '{"reason":"forged"}' WHERE sequence = 2"#)
                .await?;
            audit.service.start_background(&audit.kernel());
            // Only this test starts the background check, so the process-wide gauge is its own.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let text = audit.kernel().metrics().render();
                if text.lines().any(|line| line == "keel_audit_chain_intact 0") {
                    assert!(
                        text.lines()
                            .any(|line| line == "keel_audit_chain_records_checked 2"),
                        "{text}"
                    );
                    return Ok(());
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no verdict within 10 s:\n{text}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        },
    )
    .await
}
