//! The `database:<service>` readiness check.

use std::time::Duration;

use async_trait::async_trait;
use keel_health::HealthCheck;
use sea_orm::DatabaseConnection;
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnection, PgPool};
use tokio::sync::Mutex;

use crate::ServiceDatabase;
use crate::error::Redactor;

/// Readiness of a service's database, for [`keel_health::HealthRegistry`]: named `database:<service>`
/// (several services share one health registry in the all-in-one process), critical. Build it with [`ServiceDatabase::readiness_check`].
///
/// On PostgreSQL it runs `SELECT 1` on a probe connection of its own, outside the pool. The pool
/// retries a refused connection until its acquire timeout and then reports only that it timed
/// out; the probe makes one attempt, so an unreachable server is reported at once with the
/// reason (e.g. "Connection refused"), and a busy pool does not make the service look down.
/// When the probe connection breaks, the next check opens a new one, so readiness comes back by
/// itself with the server. Each check is bounded by the pool's connect timeout (and by the
/// registry's own timeout). On SQLite it pings through the pool.
pub struct DatabaseCheck {
    name: String,
    probe: Probe,
    timeout: Duration,
    redactor: Redactor,
}

enum Probe {
    Pool(DatabaseConnection),
    Postgres {
        pool: PgPool,
        connection: Mutex<Option<PgConnection>>,
    },
}

impl std::fmt::Debug for DatabaseCheck {
    /// Leaves out the pool and the probe connection (sqlx prints connect options, password
    /// included, in `Debug`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseCheck")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ServiceDatabase {
    /// A readiness check for this database, to register with the process's health registry.
    pub fn readiness_check(&self) -> DatabaseCheck {
        let probe = match &self.pg_pool {
            Some(pool) => Probe::Postgres {
                pool: pool.clone(),
                connection: Mutex::new(None),
            },
            None => Probe::Pool(self.connection.clone()),
        };
        DatabaseCheck {
            name: format!("database:{}", self.service()),
            probe,
            timeout: self.pool.connect_timeout,
            redactor: self.redactor.clone(),
        }
    }
}

#[async_trait]
impl HealthCheck for DatabaseCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn critical(&self) -> bool {
        true
    }

    async fn check(&self) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.probe()).await {
            Ok(outcome) => outcome.map_err(|reason| self.redactor.clean(reason)),
            Err(_) => Err(format!(
                "the database did not answer within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

impl DatabaseCheck {
    async fn probe(&self) -> Result<(), String> {
        match &self.probe {
            Probe::Pool(connection) => connection
                .ping()
                .await
                .map_err(|e| format!("database unavailable: {e}")),
            Probe::Postgres { pool, connection } => {
                let mut slot = connection.lock().await;
                if pool.is_closed() {
                    *slot = None;
                    return Err("the connection pool is closed (shutting down)".to_owned());
                }
                if let Some(conn) = slot.as_mut() {
                    if select_one(conn).await.is_ok() {
                        return Ok(());
                    }
                    // Broken (server restarted, network cut): drop it and try one fresh connection.
                    *slot = None;
                }
                let mut conn = pool
                    .connect_options()
                    .connect()
                    .await
                    .map_err(|e| format!("database unreachable: {e}"))?;
                select_one(&mut conn)
                    .await
                    .map_err(|e| format!("database query failed: {e}"))?;
                *slot = Some(conn);
                Ok(())
            }
        }
    }
}

async fn select_one(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(conn).await.map(|_| ())
}
