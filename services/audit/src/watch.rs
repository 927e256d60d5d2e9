//! Keeping an eye on the log: the start-up privilege check and the periodic chain verification.
//!
//! Why this module exists: tampering that nobody looks for is tampering that nobody finds. The
//! service verifies its own chain on a schedule and exports the outcome as a gauge an alert can
//! watch, and it says at start-up when its database role is stronger than an audit writer should
//! be (the revoked privileges bind only roles that do not own the table and are not superusers).

use std::time::Duration;

use keel_kernel::KernelHandle;
use sea_orm::{ConnectionTrait as _, DbBackend, Statement};

use crate::store::AuditStore;

/// 1 when the last background verification found the chain intact, 0 when it found a break.
const CHAIN_INTACT: &str = "keel_audit_chain_intact";
/// Records checked by the last background verification.
const CHAIN_RECORDS: &str = "keel_audit_chain_records_checked";

/// Logs a warning when, on PostgreSQL, the service's role holds UPDATE or DELETE on the log
/// (a superuser, or a role granted them): then only the triggers stand in the way.
pub(crate) async fn warn_if_role_can_rewrite(store: &AuditStore) {
    if store.backend() != DbBackend::Postgres {
        return;
    }
    let sql = "SELECT (has_table_privilege('audit_log', 'UPDATE') \
               OR has_table_privilege('audit_log', 'DELETE'))::int4 AS can_rewrite";
    let answer = store
        .connection()
        .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .and_then(|row| row.map(|r| r.try_get::<i32>("", "can_rewrite")).transpose());
    match answer {
        Ok(Some(0)) => {}
        Ok(_) => tracing::warn!(
            "the audit service's database role may UPDATE or DELETE audit_log (it is a superuser or \
             was granted these privileges); only the append-only triggers stop it. Run the audit \
             service with a dedicated role holding SELECT and INSERT only (docs/services/audit.md)"
        ),
        Err(error) => tracing::warn!(%error, "could not check the audit role's privileges"),
    }
}

/// Spawns the periodic verification on the kernel; the first run is one interval after start.
pub(crate) fn start_periodic_verification(kernel: &KernelHandle, store: AuditStore, interval_secs: u64) {
    if interval_secs == 0 {
        tracing::info!("periodic audit chain verification is off (audit.verify_interval_secs = 0)");
        return;
    }
    metrics::describe_gauge!(
        CHAIN_INTACT,
        "1 when the last periodic audit chain verification found no break."
    );
    metrics::describe_gauge!(
        CHAIN_RECORDS,
        "Records checked by the last periodic audit chain verification."
    );
    let period = Duration::from_secs(interval_secs);
    let shutdown = kernel.shutdown_token();
    kernel.spawn("audit-chain-verification", async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok::<(), std::convert::Infallible>(()),
                _ = ticks.tick() => verify_once(&store).await,
            }
        }
    });
}

async fn verify_once(store: &AuditStore) {
    match store.verify_chain().await {
        Ok(report) if report.intact => {
            metrics::gauge!(CHAIN_INTACT).set(1.0);
            metrics::gauge!(CHAIN_RECORDS).set(report.records_checked as f64);
            tracing::info!(records = report.records_checked, "audit chain verified: intact");
        }
        Ok(report) => {
            metrics::gauge!(CHAIN_INTACT).set(0.0);
            metrics::gauge!(CHAIN_RECORDS).set(report.records_checked as f64);
            tracing::error!(
                first_broken_sequence = report.first_broken_sequence,
                detail = %report.detail,
                "AUDIT CHAIN BROKEN: the audit log was altered"
            );
        }
        // A database outage is not evidence of tampering: keep the last verdict, try next time.
        Err(error) => tracing::warn!(%error, "periodic audit chain verification could not run"),
    }
}
