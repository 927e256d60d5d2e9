//! Production layout: one PostgreSQL schema per service on a shared server.

use std::collections::BTreeSet;

use anyhow::Context as _;
use keel_db::{Database, ServiceDatabase, StoreLocation};
use sea_orm::{ConnectionTrait as _, Statement};

use crate::support::{self, add_note, database_url, drop_schemas, migrations::Migrator, note_bodies};

/// Runs `body` against services connected with a fresh schema prefix, then drops their schemas
/// whatever the outcome.
async fn with_services<F>(url: &str, services: &[&str], body: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&[ServiceDatabase]) -> anyhow::Result<()>,
{
    let prefix = support::unique_prefix();
    let config = support::config(url, &prefix);
    let schemas: Vec<String> = services
        .iter()
        .map(|s| format!("{prefix}{}", s.replace('-', "_")))
        .collect();
    let outcome = async {
        let mut dbs = Vec::new();
        for service in services {
            dbs.push(Database::connect(&config, service).await?);
        }
        body(&dbs).await
    }
    .await;
    drop_schemas(url, &schemas).await?;
    outcome
}

async fn scalar_string(db: &ServiceDatabase, sql: &str) -> anyhow::Result<String> {
    let row = db
        .connection()
        .query_one_raw(Statement::from_string(db.backend(), sql))
        .await?
        .context("no row")?;
    Ok(row.try_get_by_index::<String>(0)?)
}

async fn count(db: &ServiceDatabase, sql: &str) -> anyhow::Result<i64> {
    let row = db
        .connection()
        .query_one_raw(Statement::from_string(db.backend(), sql))
        .await?
        .context("no row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

#[tokio::test]
async fn services_get_their_own_schema_and_cannot_see_each_others_tables() -> anyhow::Result<()> {
    let Some(url) = database_url() else { return Ok(()) };
    with_services(&url, &["alpha", "beta"], async |dbs| {
        let [alpha, beta] = dbs else { unreachable!() };
        let StoreLocation::PostgresSchema(alpha_schema) = alpha.location() else {
            panic!("not a schema")
        };
        assert!(alpha_schema.ends_with("_alpha"));
        assert_eq!(
            scalar_string(alpha, "SELECT current_schema()::text").await?,
            *alpha_schema
        );

        for db in [alpha, beta] {
            db.connection()
                .execute_unprepared("CREATE TABLE items (id int PRIMARY KEY, label text)")
                .await?;
        }
        alpha
            .connection()
            .execute_unprepared("INSERT INTO items VALUES (1, 'alpha''s row')")
            .await?;
        alpha
            .connection()
            .execute_unprepared("CREATE TABLE alpha_only (id int)")
            .await?;

        assert_eq!(count(alpha, "SELECT count(*) FROM items").await?, 1);
        assert_eq!(
            count(beta, "SELECT count(*) FROM items").await?,
            0,
            "beta sees only its own `items`"
        );
        let hidden = beta
            .connection()
            .execute_unprepared("SELECT * FROM alpha_only")
            .await;
        let message = hidden
            .err()
            .context("beta must not resolve alpha's table")?
            .to_string();
        assert!(message.contains("does not exist"), "{message}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn search_path_holds_on_every_pooled_connection() -> anyhow::Result<()> {
    let Some(url) = database_url() else { return Ok(()) };
    with_services(&url, &["gamma"], async |dbs| {
        let db = &dbs[0];
        let StoreLocation::PostgresSchema(schema) = db.location() else {
            panic!("not a schema")
        };
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let db = db.clone();
            tasks.spawn(async move {
                // The sleep keeps connections busy so the pool has to open all of them.
                let sql = "SELECT current_schema()::text || ',' || pg_backend_pid() FROM pg_sleep(0.05)";
                scalar_string(&db, sql).await
            });
        }
        let mut backends = BTreeSet::new();
        while let Some(result) = tasks.join_next().await {
            let line = result??;
            let (found, pid) = line.split_once(',').context("malformed")?;
            assert_eq!(found, schema);
            backends.insert(pid.to_owned());
        }
        assert_eq!(
            backends.len(),
            5,
            "all five pooled connections were used: {backends:?}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn migrations_and_their_bookkeeping_table_live_in_the_service_schema() -> anyhow::Result<()> {
    let Some(url) = database_url() else { return Ok(()) };
    with_services(&url, &["delta", "epsilon"], async |dbs| {
        let [delta, epsilon] = dbs else { unreachable!() };
        let StoreLocation::PostgresSchema(schema) = delta.location() else {
            panic!("not a schema")
        };
        delta.migrate::<Migrator>().await?;
        delta.migrate::<Migrator>().await?; // nothing pending: a no-op

        let tables = format!(
            "SELECT string_agg(table_name::text, ',' ORDER BY table_name) FROM information_schema.tables \
             WHERE table_schema = '{schema}'"
        );
        assert_eq!(scalar_string(delta, &tables).await?, "notes,seaql_migrations");
        assert_eq!(count(delta, "SELECT count(*) FROM seaql_migrations").await?, 1);

        add_note(delta, "kept").await?;
        assert_eq!(note_bodies(delta).await?, ["kept"]);
        // The other service has neither the table nor the bookkeeping until it migrates.
        assert!(
            epsilon
                .connection()
                .execute_unprepared("SELECT 1 FROM seaql_migrations")
                .await
                .is_err()
        );
        epsilon.migrate::<Migrator>().await?;
        assert!(note_bodies(epsilon).await?.is_empty());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn instances_of_one_service_migrating_at_once_apply_each_migration_once() -> anyhow::Result<()> {
    let Some(url) = database_url() else { return Ok(()) };
    let prefix = support::unique_prefix();
    let config = support::config(&url, &prefix);
    let outcome = async {
        // Four "replicas" of the same service, each with its own pool, starting together.
        let mut replicas = Vec::new();
        for _ in 0..4 {
            replicas.push(Database::connect(&config, "zeta").await?);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for replica in replicas.clone() {
            tasks.spawn(async move { replica.migrate::<Migrator>().await });
        }
        while let Some(result) = tasks.join_next().await {
            result??;
        }
        assert_eq!(
            count(&replicas[0], "SELECT count(*) FROM seaql_migrations").await?,
            1
        );
        anyhow::Ok(())
    }
    .await;
    drop_schemas(&url, &[format!("{prefix}zeta")]).await?;
    outcome
}

#[tokio::test]
async fn an_existing_schema_is_reused_with_its_data() -> anyhow::Result<()> {
    let Some(url) = database_url() else { return Ok(()) };
    let prefix = support::unique_prefix();
    let config = support::config(&url, &prefix);
    let outcome = async {
        let first = Database::connect(&config, "eta").await?;
        first.migrate::<Migrator>().await?;
        add_note(&first, "survives").await?;
        first.close().await;

        let second = Database::connect(&config, "eta").await?;
        second.migrate::<Migrator>().await?;
        assert_eq!(note_bodies(&second).await?, ["survives"]);
        anyhow::Ok(())
    }
    .await;
    drop_schemas(&url, &[format!("{prefix}eta")]).await?;
    outcome
}
