//! The identity store's schema, in order. The outbox table (events and audit records written in
//! the same transaction as the change) comes from keel-events.

use sea_orm_migration::prelude::*;

/// The identity service's migrations.
pub(crate) struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(keel_events::OutboxMigration),
            Box::new(CreateUsersAndTokens),
            Box::new(UniqueLowerCaseEmail),
        ]
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    DisplayName,
    EmailVerified,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Id,
    UserId,
    Kind,
    TokenHash,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

struct CreateUsersAndTokens;

impl MigrationName for CreateUsersAndTokens {
    fn name(&self) -> &str {
        "m20261101_000001_identity_users_and_tokens"
    }
}

// The trait's `&SchemaManager` has an elided, late-bound lifetime; spelling it `<'_>` here makes
// it early-bound and the impl no longer matches.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateUsersAndTokens {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(users()).await?;
        manager.create_table(tokens()).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tokens_user_kind")
                    .table(Tokens::Table)
                    .col(Tokens::UserId)
                    .col(Tokens::Kind)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Tokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

/// `users`; the UNIQUE e-mail (stored lower-cased) is what makes registration races safe.
fn users() -> TableCreateStatement {
    Table::create()
        .table(Users::Table)
        .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
        .col(
            ColumnDef::new(Users::Email)
                .string_len(254)
                .not_null()
                .unique_key(),
        )
        .col(ColumnDef::new(Users::PasswordHash).text().not_null())
        .col(ColumnDef::new(Users::DisplayName).string_len(100).not_null())
        .col(ColumnDef::new(Users::EmailVerified).boolean().not_null())
        .col(
            ColumnDef::new(Users::CreatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(Users::UpdatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .to_owned()
}

/// `tokens`, deleted with their user.
fn tokens() -> TableCreateStatement {
    Table::create()
        .table(Tokens::Table)
        .col(ColumnDef::new(Tokens::Id).uuid().not_null().primary_key())
        .col(ColumnDef::new(Tokens::UserId).uuid().not_null())
        .col(ColumnDef::new(Tokens::Kind).string_len(16).not_null())
        .col(
            ColumnDef::new(Tokens::TokenHash)
                .string_len(64)
                .not_null()
                .unique_key(),
        )
        .col(
            ColumnDef::new(Tokens::ExpiresAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(ColumnDef::new(Tokens::UsedAt).timestamp_with_time_zone().null())
        .col(
            ColumnDef::new(Tokens::CreatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_tokens_user")
                .from(Tokens::Table, Tokens::UserId)
                .to(Users::Table, Users::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

/// A UNIQUE index on `lower(email)`: the service stores addresses lower-cased, and this makes the
/// database itself refuse a second spelling of a stored address (`Ada@…` beside `ada@…`) from any
/// writer, not only from this service's code. (SQLite's `lower` folds ASCII letters, PostgreSQL's
/// every letter.)
struct UniqueLowerCaseEmail;

impl MigrationName for UniqueLowerCaseEmail {
    fn name(&self) -> &str {
        "m20261127_000001_identity_users_unique_lower_email"
    }
}

#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for UniqueLowerCaseEmail {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS users_email_lower_key ON users (lower(email))",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS users_email_lower_key")
            .await
            .map(|_| ())
    }
}
