//! Query trace events, in a test binary of their own: `tracing` caches per-callsite interest
//! process-wide, and a capture installed with `set_default` can miss events when other tests on other
//! threads register the same callsites at the same time. Alone in its process, it cannot.

#[path = "db/support.rs"]
#[allow(dead_code)]
mod support;

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

use keel_db::Database;

use crate::support::{add_note, migrations::Migrator};

#[tokio::test]
async fn each_query_emits_a_debug_event_with_its_elapsed_time_but_never_its_values() -> anyhow::Result<()> {
    let logs = keel_testkit::LogCapture::new();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_filter(
                tracing_subscriber::filter::Targets::new().with_target("keel_db", tracing::Level::DEBUG),
            ),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let temp = tempfile::tempdir()?;
    let db = Database::connect(&support::sqlite_config(temp.path()), "traced").await?;
    db.migrate::<Migrator>().await?;
    add_note(&db, "value-that-must-not-be-logged").await?;

    let lines = logs.lines();
    let insert = lines
        .iter()
        .find(|l| l.contains("keel_db::query") && l.contains("operation=\"INSERT\""))
        .unwrap_or_else(|| panic!("no INSERT event in {lines:#?}"));
    assert!(insert.contains("service=\"traced\""), "{insert}");
    assert!(insert.contains("elapsed_ms="), "{insert}");
    assert!(insert.contains("outcome=\"ok\""), "{insert}");
    assert!(
        insert.contains("INSERT INTO"),
        "the statement text with placeholders is there: {insert}"
    );
    assert!(
        !logs.contents().contains("value-that-must-not-be-logged"),
        "{lines:#?}"
    );
    Ok(())
}
