//! Running a service's sea-orm migrations on its own store.

use sea_orm_migration::MigratorTrait;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::{DbError, ServiceDatabase, StoreLocation};

impl ServiceDatabase {
    /// Applies the pending migrations of `M`, in order, on this service's store.
    ///
    /// On PostgreSQL everything, the `seaql_migrations` bookkeeping table included, lands in the
    /// service's schema (the pool's `search_path` holds only that schema). Instances of the same
    /// service starting together take turns on a PostgreSQL advisory lock named after the schema,
    /// so each migration is applied once. Each PostgreSQL migration runs in its own transaction
    /// (sea-orm's default); a failure leaves the earlier ones applied.
    pub async fn migrate<M: MigratorTrait>(&self) -> Result<(), DbError> {
        let lock = match (&self.location, &self.pg_pool) {
            (StoreLocation::PostgresSchema(schema), Some(pool)) => {
                Some(MigrationLock::acquire(&pool.connect_options(), schema, self).await?)
            }
            _ => None,
        };
        let outcome = M::up(&self.connection, None).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        outcome.map_err(|e| self.migration_error(e))?;
        tracing::info!(service = %self.service, "database migrations applied");
        Ok(())
    }

    fn migration_error(&self, error: impl std::fmt::Display) -> DbError {
        DbError::Migration {
            service: self.service.to_string(),
            reason: self.redactor.clean(error),
        }
    }
}

/// A session-level advisory lock held on a connection of its own (outside the pool, so a pool of
/// one connection can still run the migrations). Dropping the connection releases it too.
struct MigrationLock {
    connection: PgConnection,
    key: i64,
}

impl MigrationLock {
    async fn acquire(
        options: &PgConnectOptions,
        schema: &str,
        db: &ServiceDatabase,
    ) -> Result<Self, DbError> {
        let key = lock_key(schema);
        let mut connection = tokio::time::timeout(db.pool.connect_timeout, options.connect())
            .await
            .map_err(|_| {
                db.migration_error("no connection for the migration lock within the connect timeout")
            })?
            .map_err(|e| db.migration_error(e))?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut connection)
            .await
            .map_err(|e| db.migration_error(e))?;
        Ok(Self { connection, key })
    }

    async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut self.connection)
            .await;
        let _ = self.connection.close().await;
    }
}

/// A stable 64-bit key for the schema's lock (FNV-1a), the same in every process and version.
fn lock_key(schema: &str) -> i64 {
    let hash = format!("keel_db.migrate:{schema}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_differ_per_schema() {
        assert_eq!(lock_key("keel_identity"), lock_key("keel_identity"));
        assert_ne!(lock_key("keel_identity"), lock_key("keel_audit"));
    }
}
