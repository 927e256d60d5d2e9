//! The audit service's metrics.
//!
//! Why this module exists: metric names are part of the operational contract (dashboards and
//! alerts use them), so they are spelled once, with their help texts.

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};

/// Records newly appended to the log.
const RECORDS_STORED: &str = "keel_audit_records_stored_total";
/// Records received whose id was already stored (retries and redeliveries), so not stored again.
const DUPLICATES: &str = "keel_audit_duplicates_total";
/// Records per Record call.
const BATCH_SIZE: &str = "keel_audit_batch_size";

/// Registers the help texts (idempotent).
pub(crate) fn describe() {
    describe_counter!(RECORDS_STORED, Unit::Count, "Audit records appended to the log.");
    describe_counter!(
        DUPLICATES,
        Unit::Count,
        "Audit records received again (same id) and acknowledged without storing them twice."
    );
    describe_histogram!(BATCH_SIZE, Unit::Count, "Audit records per Record call.");
}

/// Accounts one appended batch.
pub(crate) fn batch_appended(received: usize, stored: usize) {
    histogram!(BATCH_SIZE).record(received as f64);
    counter!(RECORDS_STORED).increment(stored as u64);
    counter!(DUPLICATES).increment(received.saturating_sub(stored) as u64);
}
