//! Per-query metrics and trace events, fed by sea-orm's metric callback.
//!
//! sea-orm calls the callback after every statement it runs through the pool or a transaction
//! with the elapsed time and whether it failed. It does not call it for
//! `ConnectionTrait::execute_unprepared` (raw multi-statement SQL) nor when no connection could be
//! acquired from the pool (the acquire happens before the timed part), so those are not counted.
//!
//! The metric descriptions (HELP texts) are registered by `keel-telemetry` with the others.

use std::sync::Arc;
use std::time::Duration;

use metrics::SharedString;
use sea_orm::metric::Info;

/// Histogram of query durations in seconds, labelled `service` and `outcome` (`ok` / `error`).
pub(crate) const QUERY_DURATION: &str = "keel_db_query_duration_seconds";
/// Counter of failed queries, labelled `service`.
pub(crate) const QUERY_ERRORS: &str = "keel_db_query_errors_total";
/// A query slower than this is logged at `warn` instead of `debug`.
const SLOW_QUERY: Duration = Duration::from_secs(1);

/// The callback to install on a service's connection.
pub(crate) fn observer(service: &str) -> impl Fn(&Info<'_>) + Send + Sync + 'static {
    let service = SharedString::from_shared(Arc::<str>::from(service));
    move |info: &Info<'_>| record(&service, info)
}

fn record(service: &SharedString, info: &Info<'_>) {
    let outcome = if info.failed { "error" } else { "ok" };
    metrics::histogram!(QUERY_DURATION, "service" => service.clone(), "outcome" => outcome)
        .record(info.elapsed.as_secs_f64());
    if info.failed {
        metrics::counter!(QUERY_ERRORS, "service" => service.clone()).increment(1);
    }

    let elapsed_ms = info.elapsed.as_secs_f64() * 1000.0;
    let operation = operation(&info.statement.sql);
    // A statement with bound values carries placeholders (`$1`, `?`) in its text, never the
    // values; one without may have literals inlined (raw SQL), so its text is left out.
    let statement = if info.statement.values.is_some() {
        info.statement.sql.as_str()
    } else {
        "(not parameterised: not logged)"
    };
    let service = service.as_ref();
    if info.elapsed >= SLOW_QUERY {
        tracing::warn!(target: "keel_db::query", service, operation, outcome, elapsed_ms, statement, "slow query");
    } else {
        tracing::debug!(target: "keel_db::query", service, operation, outcome, elapsed_ms, statement, "query");
    }
}

/// The statement's first keyword, upper-cased (`SELECT`, `INSERT`, …), or `OTHER`.
fn operation(sql: &str) -> &'static str {
    let first = sql.split_whitespace().next().unwrap_or_default();
    [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "CREATE",
        "ALTER",
        "DROP",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "PRAGMA",
    ]
    .into_iter()
    .find(|keyword| first.eq_ignore_ascii_case(keyword))
    .unwrap_or("OTHER")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_is_the_first_keyword() {
        assert_eq!(operation("  select * from t"), "SELECT");
        assert_eq!(operation("INSERT INTO t VALUES ($1)"), "INSERT");
        assert_eq!(operation("VACUUM"), "OTHER");
        assert_eq!(operation(""), "OTHER");
    }
}
