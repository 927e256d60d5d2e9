//! Query metrics and trace events.

use metrics_exporter_prometheus::PrometheusBuilder;
use sea_orm::{ConnectionTrait as _, Statement};

use keel_db::Database;

use crate::support::{self, add_note, migrations::Migrator, note_bodies};

#[tokio::test]
async fn query_durations_are_recorded_per_service_and_outcome_and_failures_counted() -> anyhow::Result<()> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // Thread-local, and `#[tokio::test]` runs everything on this thread.
    let _guard = metrics::set_default_local_recorder(&recorder);

    let temp = tempfile::tempdir()?;
    let db = Database::connect(&support::sqlite_config(temp.path()), "metered").await?;
    db.migrate::<Migrator>().await?;
    add_note(&db, "hello").await?;
    note_bodies(&db).await?;
    let missing = Statement::from_string(db.backend(), "SELECT * FROM no_such_table");
    assert!(db.connection().query_all_raw(missing).await.is_err());

    let rendered = handle.render();
    let line = |needle: &str| {
        rendered
            .lines()
            .find(|l| l.starts_with(needle))
            .map(str::to_owned)
    };
    let ok = line("keel_db_query_duration_seconds_count{service=\"metered\",outcome=\"ok\"}");
    let error = line("keel_db_query_duration_seconds_count{service=\"metered\",outcome=\"error\"}");
    let failures = line("keel_db_query_errors_total{service=\"metered\"}");
    assert!(ok.is_some_and(|l| !l.ends_with(" 0")), "{rendered}");
    assert_eq!(
        error.as_deref(),
        Some("keel_db_query_duration_seconds_count{service=\"metered\",outcome=\"error\"} 1"),
        "{rendered}"
    );
    assert_eq!(
        failures.as_deref(),
        Some("keel_db_query_errors_total{service=\"metered\"} 1"),
        "{rendered}"
    );
    Ok(())
}
