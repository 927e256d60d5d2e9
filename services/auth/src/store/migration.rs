//! The auth store's migrations, and the outbox table of keel-events beside them.

use sea_orm_migration::prelude::*;

/// The auth service's migrations, in order.
pub(crate) struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateAuthTables),
            Box::new(keel_events::OutboxMigration),
            Box::new(CreateSessionWatermarks),
        ]
    }
}

/// Signing keys, sessions, refresh tokens.
struct CreateAuthTables;

impl MigrationName for CreateAuthTables {
    fn name(&self) -> &str {
        "m0001_auth_tables"
    }
}

fn name(text: &'static str) -> Alias {
    Alias::new(text)
}

fn timestamp(column: &'static str) -> ColumnDef {
    ColumnDef::new(name(column))
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn optional_timestamp(column: &'static str) -> ColumnDef {
    ColumnDef::new(name(column))
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

fn signing_keys() -> TableCreateStatement {
    Table::create()
        .table(name("signing_keys"))
        .col(
            ColumnDef::new(name("kid"))
                .string_len(64)
                .not_null()
                .primary_key(),
        )
        .col(
            ColumnDef::new(name("generation"))
                .big_integer()
                .not_null()
                .unique_key(),
        )
        .col(ColumnDef::new(name("algorithm")).string_len(16).not_null())
        .col(ColumnDef::new(name("private_key")).text().null())
        .col(ColumnDef::new(name("public_key")).text().not_null())
        .col(timestamp("created_at"))
        .col(optional_timestamp("retire_after"))
        .col(optional_timestamp("expires_at"))
        .to_owned()
}

fn sessions() -> TableCreateStatement {
    Table::create()
        .table(name("sessions"))
        .col(ColumnDef::new(name("id")).uuid().not_null().primary_key())
        .col(ColumnDef::new(name("user_id")).uuid().not_null())
        .col(timestamp("created_at"))
        .col(timestamp("last_used_at"))
        .col(timestamp("expires_at"))
        .col(optional_timestamp("revoked_at"))
        .col(ColumnDef::new(name("revoke_reason")).string_len(32).null())
        .col(ColumnDef::new(name("ip")).string_len(64).null())
        .col(ColumnDef::new(name("user_agent")).string_len(512).null())
        .to_owned()
}

fn refresh_tokens() -> TableCreateStatement {
    Table::create()
        .table(name("refresh_tokens"))
        .col(
            ColumnDef::new(name("hash"))
                .string_len(64)
                .not_null()
                .primary_key(),
        )
        .col(ColumnDef::new(name("family_id")).uuid().not_null())
        .col(timestamp("issued_at"))
        .col(timestamp("expires_at"))
        .col(optional_timestamp("used_at"))
        .col(ColumnDef::new(name("replaced_by")).string_len(64).null())
        .foreign_key(
            ForeignKey::create()
                .name("fk_refresh_tokens_family")
                .from(name("refresh_tokens"), name("family_id"))
                .to(name("sessions"), name("id"))
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn index(index_name: &'static str, table: &'static str, columns: &[&'static str]) -> IndexCreateStatement {
    let mut statement = Index::create().name(index_name).table(name(table)).to_owned();
    for column in columns {
        statement.col(name(column));
    }
    statement
}

// The trait's `&SchemaManager` has an elided, late-bound lifetime; spelling it `<'_>` here makes it
// early-bound and the impl no longer matches.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateAuthTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(signing_keys()).await?;
        manager.create_table(sessions()).await?;
        manager.create_table(refresh_tokens()).await?;
        manager
            .create_index(index("ix_sessions_user", "sessions", &["user_id", "created_at"]))
            .await?;
        manager
            .create_index(index("ix_sessions_expiry", "sessions", &["expires_at"]))
            .await?;
        manager
            .create_index(index(
                "ix_refresh_tokens_family",
                "refresh_tokens",
                &["family_id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["refresh_tokens", "sessions", "signing_keys"] {
            manager
                .drop_table(Table::drop().table(name(table)).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// `session_watermarks` (see `store::session_watermark`).
struct CreateSessionWatermarks;

impl MigrationName for CreateSessionWatermarks {
    fn name(&self) -> &str {
        "m0002_session_watermarks"
    }
}

// See `CreateAuthTables` for the lifetime.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateSessionWatermarks {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(name("session_watermarks"))
                    .col(ColumnDef::new(name("user_id")).uuid().not_null().primary_key())
                    .col(timestamp("not_before"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(name("session_watermarks")).to_owned())
            .await
    }
}
