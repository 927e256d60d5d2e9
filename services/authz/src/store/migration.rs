//! The authz schema's migrations.
//!
//! Why this module exists: the tables, keys and indexes that make permission checks one indexed
//! join, and the transactional outbox (`keel_events::OutboxMigration`) that carries every change's
//! event and audit record out of the same transaction.
//!
//! - `permissions(name PK, description, module, created_at)`
//! - `roles(id PK, name UNIQUE, description, system, created_at, updated_at)`; names are stored
//!   lowercase, so the unique index makes them unique regardless of case.
//! - `role_permissions(role_id → roles ON DELETE CASCADE, permission → permissions ON DELETE
//!   CASCADE, granted_at; PK (role_id, permission))`, index on `permission`.
//! - `user_roles(user_id, role_id → roles ON DELETE CASCADE, assigned_at, assigned_by;
//!   PK (user_id, role_id))`, index on `role_id`. `user_id` is not a foreign key: users live in the
//!   identity service; their deletion reaches authz as a `platform.user.deleted` event.
//!
//! A permission check is `user_roles` by its primary key prefix `user_id`, joined to
//! `role_permissions` by its primary key `(role_id, permission)`.

use sea_orm_migration::prelude::*;

/// The migrations of the authz store, in order.
pub(crate) struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(keel_events::OutboxMigration),
            Box::new(CreateAuthzTables),
        ]
    }
}

#[derive(DeriveIden)]
enum Permissions {
    Table,
    Name,
    Description,
    Module,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    Id,
    Name,
    Description,
    System,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RolePermissions {
    Table,
    RoleId,
    Permission,
    GrantedAt,
}

#[derive(DeriveIden)]
enum UserRoles {
    Table,
    UserId,
    RoleId,
    AssignedAt,
    AssignedBy,
}

/// Creates the four authz tables.
struct CreateAuthzTables;

impl MigrationName for CreateAuthzTables {
    fn name(&self) -> &str {
        "m20260101_000001_authz_tables"
    }
}

// The trait's `&SchemaManager` has an elided, late-bound lifetime; spelling it `<'_>` makes it
// early-bound and the impl no longer matches.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateAuthzTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(permissions_table()).await?;
        manager.create_table(roles_table()).await?;
        manager.create_table(role_permissions_table()).await?;
        manager
            .create_index(
                Index::create()
                    .name("role_permissions_permission_idx")
                    .table(RolePermissions::Table)
                    .col(RolePermissions::Permission)
                    .to_owned(),
            )
            .await?;
        manager.create_table(user_roles_table()).await?;
        manager
            .create_index(
                Index::create()
                    .name("user_roles_role_id_idx")
                    .table(UserRoles::Table)
                    .col(UserRoles::RoleId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            UserRoles::Table.into_iden(),
            RolePermissions::Table.into_iden(),
            Roles::Table.into_iden(),
            Permissions::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

fn permissions_table() -> TableCreateStatement {
    Table::create()
        .table(Permissions::Table)
        .col(
            ColumnDef::new(Permissions::Name)
                .string_len(128)
                .not_null()
                .primary_key(),
        )
        .col(ColumnDef::new(Permissions::Description).text().not_null())
        .col(ColumnDef::new(Permissions::Module).string_len(64).not_null())
        .col(
            ColumnDef::new(Permissions::CreatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .to_owned()
}

fn roles_table() -> TableCreateStatement {
    Table::create()
        .table(Roles::Table)
        .col(ColumnDef::new(Roles::Id).uuid().not_null().primary_key())
        .col(ColumnDef::new(Roles::Name).string_len(64).not_null().unique_key())
        .col(ColumnDef::new(Roles::Description).text().not_null())
        .col(ColumnDef::new(Roles::System).boolean().not_null().default(false))
        .col(
            ColumnDef::new(Roles::CreatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(Roles::UpdatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .to_owned()
}

fn role_permissions_table() -> TableCreateStatement {
    Table::create()
        .table(RolePermissions::Table)
        .col(ColumnDef::new(RolePermissions::RoleId).uuid().not_null())
        .col(
            ColumnDef::new(RolePermissions::Permission)
                .string_len(128)
                .not_null(),
        )
        .col(
            ColumnDef::new(RolePermissions::GrantedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .primary_key(
            Index::create()
                .col(RolePermissions::RoleId)
                .col(RolePermissions::Permission),
        )
        .foreign_key(
            ForeignKey::create()
                .name("role_permissions_role_fk")
                .from(RolePermissions::Table, RolePermissions::RoleId)
                .to(Roles::Table, Roles::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .foreign_key(
            ForeignKey::create()
                .name("role_permissions_permission_fk")
                .from(RolePermissions::Table, RolePermissions::Permission)
                .to(Permissions::Table, Permissions::Name)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

fn user_roles_table() -> TableCreateStatement {
    Table::create()
        .table(UserRoles::Table)
        .col(ColumnDef::new(UserRoles::UserId).uuid().not_null())
        .col(ColumnDef::new(UserRoles::RoleId).uuid().not_null())
        .col(
            ColumnDef::new(UserRoles::AssignedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(ColumnDef::new(UserRoles::AssignedBy).uuid().null())
        .primary_key(Index::create().col(UserRoles::UserId).col(UserRoles::RoleId))
        .foreign_key(
            ForeignKey::create()
                .name("user_roles_role_fk")
                .from(UserRoles::Table, UserRoles::RoleId)
                .to(Roles::Table, Roles::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}
