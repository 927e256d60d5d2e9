//! The embedded default: one SQLite file per service in the configured directory.

use keel_config::{DatabaseOverride, PoolConfig, SecretString};
use keel_db::{Database, DbError, StoreLocation};

use crate::support::{self, add_note, migrations::Migrator, note_bodies};

#[tokio::test]
async fn each_service_gets_its_own_file_in_the_configured_directory_created_if_missing() -> anyhow::Result<()>
{
    let temp = tempfile::tempdir()?;
    let directory = temp.path().join("not/yet/there");
    let config = support::sqlite_config(&directory);

    let identity = Database::connect(&config, "identity").await?;
    let gateway = Database::connect(&config, "api-gateway").await?;

    assert_eq!(
        identity.location(),
        &StoreLocation::SqliteFile(directory.join("identity.db"))
    );
    assert_eq!(
        gateway.location(),
        &StoreLocation::SqliteFile(directory.join("api_gateway.db"))
    );
    assert!(directory.join("identity.db").is_file());
    assert!(directory.join("api_gateway.db").is_file());
    assert_eq!(identity.service(), "identity");
    assert_eq!(identity.backend(), sea_orm::DbBackend::Sqlite);
    Ok(())
}

#[tokio::test]
async fn migrations_run_once_and_written_data_reads_back_after_reconnecting() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let config = support::sqlite_config(temp.path());

    let db = Database::connect(&config, "identity").await?;
    db.migrate::<Migrator>().await?;
    db.migrate::<Migrator>().await?; // nothing pending: a no-op, not a "table exists" error
    add_note(&db, "first").await?;
    add_note(&db, "second").await?;
    db.close().await;

    let reopened = Database::connect(&config, "identity").await?;
    reopened.migrate::<Migrator>().await?;
    assert_eq!(note_bodies(&reopened).await?, ["first", "second"]);
    Ok(())
}

#[tokio::test]
async fn two_services_keep_their_rows_in_separate_files() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let config = support::sqlite_config(temp.path());
    let identity = Database::connect(&config, "identity").await?;
    let audit = Database::connect(&config, "audit").await?;
    identity.migrate::<Migrator>().await?;
    audit.migrate::<Migrator>().await?;

    add_note(&identity, "identity's note").await?;

    assert_eq!(note_bodies(&identity).await?, ["identity's note"]);
    assert!(note_bodies(&audit).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_service_override_replaces_the_url_and_the_pool_for_that_service_only() -> anyhow::Result<()> {
    let shared = tempfile::tempdir()?;
    let own = tempfile::tempdir()?;
    let mut config = support::sqlite_config(shared.path());
    config.services.insert(
        "audit".into(),
        DatabaseOverride {
            url: Some(SecretString::from(format!("sqlite:{}", own.path().display()))),
            pool: Some(PoolConfig {
                acquire_timeout_ms: 1_234,
                ..support::pool(2)
            }),
        },
    );

    let audit = Database::connect(&config, "audit").await?;
    let identity = Database::connect(&config, "identity").await?;

    assert_eq!(
        audit.location(),
        &StoreLocation::SqliteFile(own.path().join("audit.db"))
    );
    assert_eq!(
        identity.location(),
        &StoreLocation::SqliteFile(shared.path().join("identity.db"))
    );
    let options = |db: &keel_db::ServiceDatabase| {
        let options = db.connection().get_sqlite_connection_pool().options();
        (options.get_acquire_timeout(), options.get_max_connections())
    };
    // SQLite pools hold one connection whatever the pool says (writes queue fairly in the pool);
    // the rest of the override applies.
    assert_eq!(options(&audit), (std::time::Duration::from_millis(1_234), 1));
    assert_eq!(options(&identity), (std::time::Duration::from_millis(2_000), 1));
    Ok(())
}

#[tokio::test]
async fn unusable_service_names_and_urls_are_rejected_before_touching_the_disk() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let config = support::sqlite_config(temp.path());
    for name in ["", "../escape", "Identity", "a/b"] {
        let outcome = Database::connect(&config, name).await;
        assert!(
            matches!(outcome, Err(DbError::InvalidServiceName { .. })),
            "{name:?}: {outcome:?}"
        );
    }
    let in_memory = support::config("sqlite::memory:", "keel_");
    let outcome = Database::connect(&in_memory, "identity").await;
    assert!(
        matches!(outcome, Err(DbError::InvalidConfig { .. })),
        "{outcome:?}"
    );
    assert_eq!(std::fs::read_dir(temp.path())?.count(), 0);
    Ok(())
}
