//! Shared fixtures: configuration builders, a migrator and an entity, PostgreSQL URL helpers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use keel_config::{DatabaseConfig, PoolConfig, SecretString};
use sqlx::Connection as _;

/// Pool settings small enough for tests, with short timeouts.
pub(crate) fn pool(max_connections: u32) -> PoolConfig {
    PoolConfig {
        max_connections,
        min_connections: 0,
        connect_timeout_ms: 2_000,
        acquire_timeout_ms: 2_000,
        idle_timeout_secs: 60,
    }
}

/// Settings putting every service's SQLite file in `directory`.
pub(crate) fn sqlite_config(directory: &Path) -> DatabaseConfig {
    config(&format!("sqlite:{}", directory.display()), "keel_")
}

/// Settings for `url` with schema prefix `prefix`.
pub(crate) fn config(url: &str, schema_prefix: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: SecretString::from(url.to_owned()),
        schema_prefix: schema_prefix.to_owned(),
        pool: pool(5),
        services: BTreeMap::new(),
    }
}

/// `DATABASE_URL`, or `None` (printed skip) when unset.
pub(crate) fn database_url() -> Option<String> {
    keel_testkit::server_url("DATABASE_URL")
}

/// A schema prefix no other test uses, e.g. `kt_1a2b3c4d5e6f_`.
pub(crate) fn unique_prefix() -> String {
    format!("{}_", keel_testkit::unique_name("kt"))
}

/// Drops the schemas (and everything in them), so tests leave nothing behind.
pub(crate) async fn drop_schemas(url: &str, schemas: &[String]) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    for schema in schemas {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#
        )))
        .execute(&mut conn)
        .await?;
    }
    conn.close().await?;
    Ok(())
}

/// The parts of a `postgres://user[:password]@host:port/database` URL this file needs.
pub(crate) struct PgUrl {
    scheme: String,
    user: String,
    host_port: String,
    path: String,
}

impl PgUrl {
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let (scheme, rest) = url.split_once("://").context("no scheme")?;
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        let (userinfo, host_port) = authority.rsplit_once('@').unwrap_or(("postgres", authority));
        let user = userinfo.split(':').next().unwrap_or("postgres");
        Ok(Self {
            scheme: scheme.into(),
            user: user.into(),
            host_port: host_port.into(),
            path: path.into(),
        })
    }

    /// The server's socket address.
    pub(crate) async fn address(&self) -> anyhow::Result<SocketAddr> {
        tokio::net::lookup_host(&self.host_port)
            .await?
            .next()
            .context("host did not resolve")
    }

    /// The same user and database at `address`, with `password` in the URL (the local server
    /// trusts connections, so it never asks for it, but error messages could still show it).
    pub(crate) fn at(&self, address: SocketAddr, password: &str) -> String {
        format!(
            "{}://{}:{password}@{address}{}",
            self.scheme, self.user, self.path
        )
    }
}

/// The migrations of the test service: one table, `notes`.
pub(crate) mod migrations {
    use sea_orm_migration::prelude::*;

    pub(crate) struct Migrator;

    #[async_trait::async_trait]
    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(CreateNotes)]
        }
    }

    struct CreateNotes;

    impl MigrationName for CreateNotes {
        fn name(&self) -> &str {
            "m20250101_000001_create_notes"
        }
    }

    // The trait's `&SchemaManager` has an elided, late-bound lifetime; spelling it `<'_>` here
    // makes it early-bound and the impl no longer matches.
    #[allow(elided_lifetimes_in_paths)]
    #[async_trait::async_trait]
    impl MigrationTrait for CreateNotes {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            // No `IF NOT EXISTS`: applying this twice must fail, so the concurrency test means
            // something.
            manager
                .create_table(
                    Table::create()
                        .table(Alias::new("notes"))
                        .col(
                            ColumnDef::new(Alias::new("id"))
                                .integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(Alias::new("body")).string().not_null())
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table(Alias::new("notes")).to_owned())
                .await
        }
    }
}

/// The `notes` table as a sea-orm entity.
pub(crate) mod note {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notes")]
    pub(crate) struct Model {
        #[sea_orm(primary_key)]
        pub(crate) id: i32,
        pub(crate) body: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Inserts a note with `body`.
pub(crate) async fn add_note(db: &keel_db::ServiceDatabase, body: &str) -> anyhow::Result<()> {
    use sea_orm::{ActiveModelTrait as _, ActiveValue::Set};
    note::ActiveModel {
        body: Set(body.to_owned()),
        ..Default::default()
    }
    .insert(db.connection())
    .await?;
    Ok(())
}

/// Every note's body, in id order.
pub(crate) async fn note_bodies(db: &keel_db::ServiceDatabase) -> anyhow::Result<Vec<String>> {
    use sea_orm::{EntityTrait as _, QueryOrder as _};
    let notes = note::Entity::find()
        .order_by_asc(note::Column::Id)
        .all(db.connection())
        .await?;
    Ok(notes.into_iter().map(|n| n.body).collect())
}
