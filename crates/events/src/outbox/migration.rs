//! The migration that creates the outbox table in a service's store.

use sea_orm_migration::prelude::*;

use super::entity::TABLE;

/// Creates the `keel_outbox` table (and its index) in the store of the service whose
/// [`MigratorTrait`] lists it: put `Box::new(keel_events::OutboxMigration)` in the list. Works on
/// PostgreSQL and SQLite; see the [crate documentation](crate) for the table's shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxMigration;

impl MigrationName for OutboxMigration {
    fn name(&self) -> &str {
        "m20260101_000000_keel_events_create_outbox"
    }
}

// The trait's `&SchemaManager` has an elided, late-bound lifetime; spelling it `<'_>` here makes it
// early-bound and the impl no longer matches.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for OutboxMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = |name: &str| ColumnDef::new(Alias::new(name));
        manager
            .create_table(
                Table::create()
                    .table(Alias::new(TABLE))
                    .col(column("id").uuid().not_null().primary_key())
                    .col(column("kind").string_len(16).not_null())
                    .col(column("topic").string_len(200).not_null())
                    .col(column("payload").text().not_null())
                    .col(column("created_at").timestamp_with_time_zone().not_null())
                    .col(column("attempts").integer().not_null().default(0))
                    .col(column("next_attempt_at").timestamp_with_time_zone().not_null())
                    .col(column("last_error").text().null())
                    .to_owned(),
            )
            .await?;
        // The relay reads each kind oldest first.
        manager
            .create_index(
                Index::create()
                    .name("keel_outbox_kind_id")
                    .table(Alias::new(TABLE))
                    .col(Alias::new("kind"))
                    .col(Alias::new("id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Alias::new(TABLE)).to_owned())
            .await
    }
}
