//! The audit store's schema: the `audit_log` table, its query indexes, and the database-side
//! guards that make it append-only.
//!
//! Why this module exists: "append-only" must hold even for code that is not ours. The service
//! has no update or delete path, and this migration makes the database itself refuse one:
//!
//! - on both backends, `BEFORE UPDATE` / `BEFORE DELETE` triggers abort the statement (SQLite
//!   `RAISE(ABORT, …)`, PostgreSQL a PL/pgSQL function raising `insufficient_privilege`), and on
//!   PostgreSQL a `BEFORE TRUNCATE` trigger does the same for `TRUNCATE`;
//! - on PostgreSQL, `UPDATE`, `DELETE` and `TRUNCATE` are revoked from `PUBLIC` and from the role
//!   running the migration. For a role that does not own the table that is a hard limit; the owner
//!   (and any superuser) could grant the privilege back or drop the trigger, so for them the
//!   trigger is the guard, and the hash chain is what makes a change by them detectable.
//!
//! There is no `down` migration on purpose: rolling the schema back would delete the log.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

/// The audit service's migrations, applied by [`keel_db::ServiceDatabase::migrate`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateAuditLog)]
    }
}

struct CreateAuditLog;

impl MigrationName for CreateAuditLog {
    fn name(&self) -> &str {
        "m20260101_000001_create_audit_log"
    }
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Sequence,
    Id,
    Action,
    ActorId,
    TargetType,
    TargetId,
    RequestId,
    Ip,
    UserAgent,
    OccurredAt,
    Metadata,
    Source,
    TenantId,
    RecordedAt,
    PreviousHash,
    Hash,
}

/// SQLite: one trigger per rejected statement kind.
const SQLITE_GUARDS: [&str; 2] = [
    "CREATE TRIGGER audit_log_reject_update BEFORE UPDATE ON audit_log \
     BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE is not allowed'); END",
    "CREATE TRIGGER audit_log_reject_delete BEFORE DELETE ON audit_log \
     BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE is not allowed'); END",
];

/// PostgreSQL: one function raising for any operation, fired per row on UPDATE/DELETE and per
/// statement on TRUNCATE; then the privileges. Unqualified names resolve to the service's schema
/// (keel-db sets `search_path` to it alone).
const POSTGRES_GUARDS: [&str; 5] = [
    "CREATE OR REPLACE FUNCTION audit_log_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
       RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP \
         USING ERRCODE = 'insufficient_privilege'; \
     END $$",
    "CREATE TRIGGER audit_log_reject_update_delete BEFORE UPDATE OR DELETE ON audit_log \
     FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change()",
    "CREATE TRIGGER audit_log_reject_truncate BEFORE TRUNCATE ON audit_log \
     FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change()",
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC",
    // As the owner this drops the owner's own ordinary privileges (it keeps the right to grant
    // them back); as a non-owner holding grant options it removes them for good.
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM CURRENT_USER",
];

// The trait's `&SchemaManager` has an elided, late-bound lifetime; spelling it `<'_>` here makes
// it early-bound and the impl no longer matches.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateAuditLog {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(table()).await?;
        for index in indexes() {
            manager.create_index(index).await?;
        }
        let guards: &[&str] = match manager.get_database_backend() {
            DbBackend::Sqlite => &SQLITE_GUARDS,
            DbBackend::Postgres => &POSTGRES_GUARDS,
            other => {
                return Err(DbErr::Migration(format!(
                    "the audit log supports SQLite and PostgreSQL, not {other:?}"
                )));
            }
        };
        for statement in guards {
            manager.get_connection().execute_unprepared(statement).await?;
        }
        Ok(())
    }

    /// Table, indexes and triggers appear together or not at all, on SQLite too.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}

fn table() -> TableCreateStatement {
    let text = |column: AuditLog| ColumnDef::new(column).text().not_null().to_owned();
    let optional_text = |column: AuditLog| ColumnDef::new(column).text().null().to_owned();
    let timestamp = |column: AuditLog| {
        ColumnDef::new(column)
            .timestamp_with_time_zone()
            .not_null()
            .to_owned()
    };
    Table::create()
        .table(AuditLog::Table)
        .col(
            ColumnDef::new(AuditLog::Sequence)
                .big_integer()
                .not_null()
                .primary_key(),
        )
        .col(ColumnDef::new(AuditLog::Id).uuid().not_null().unique_key())
        .col(text(AuditLog::Action))
        .col(ColumnDef::new(AuditLog::ActorId).uuid().null())
        .col(optional_text(AuditLog::TargetType))
        .col(optional_text(AuditLog::TargetId))
        .col(optional_text(AuditLog::RequestId))
        .col(optional_text(AuditLog::Ip))
        .col(optional_text(AuditLog::UserAgent))
        .col(timestamp(AuditLog::OccurredAt))
        .col(text(AuditLog::Metadata))
        .col(text(AuditLog::Source))
        .col(optional_text(AuditLog::TenantId))
        .col(timestamp(AuditLog::RecordedAt))
        .col(text(AuditLog::PreviousHash))
        .col(text(AuditLog::Hash))
        .to_owned()
}

/// One index per query filter. Lists are read newest first by `sequence`, so the equality
/// filters are paired with it and a page is an index range scan.
fn indexes() -> Vec<IndexCreateStatement> {
    let paired = |name: &str, column: AuditLog| {
        Index::create()
            .name(name)
            .table(AuditLog::Table)
            .col(column)
            .col(AuditLog::Sequence)
            .to_owned()
    };
    vec![
        paired("audit_log_actor_idx", AuditLog::ActorId),
        paired("audit_log_action_idx", AuditLog::Action),
        paired("audit_log_target_idx", AuditLog::TargetId),
        paired("audit_log_request_idx", AuditLog::RequestId),
        Index::create()
            .name("audit_log_occurred_at_idx")
            .table(AuditLog::Table)
            .col(AuditLog::OccurredAt)
            .to_owned(),
    ]
}
