//! One service's effective settings: the shared [`DatabaseConfig`] with its override applied.

use std::path::PathBuf;
use std::time::Duration;

use keel_config::{DatabaseConfig, ExposeSecret, PoolConfig};

use crate::DbError;
use crate::error::Redactor;
use crate::name;

/// Where a service's data lives, decided from the URL.
pub(crate) enum Target {
    /// `sqlite:<directory>`: the file `<directory>/<store>.db`.
    Sqlite { file: PathBuf },
    /// `postgres://…`: the schema `<prefix><store>` on that server.
    Postgres { url: String, schema: String },
}

impl std::fmt::Debug for Target {
    /// Leaves the URL out: it may hold the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { file } => f.debug_struct("Sqlite").field("file", file).finish(),
            Self::Postgres { schema, .. } => f
                .debug_struct("Postgres")
                .field("schema", schema)
                .finish_non_exhaustive(),
        }
    }
}

/// Pool settings as durations, checked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pool {
    pub(crate) max_connections: u32,
    pub(crate) min_connections: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) acquire_timeout: Duration,
    /// `None` keeps idle connections open (configured as 0).
    pub(crate) idle_timeout: Option<Duration>,
}

/// Everything [`crate::Database::connect`] needs for one service.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) target: Target,
    pub(crate) pool: Pool,
    pub(crate) redactor: Redactor,
}

impl Settings {
    pub(crate) fn resolve(config: &DatabaseConfig, service: &str, store: &str) -> Result<Self, DbError> {
        let overrides = config.services.get(service);
        let url = overrides
            .and_then(|o| o.url.as_ref())
            .unwrap_or(&config.url)
            .expose_secret();
        let pool = overrides.and_then(|o| o.pool.as_ref()).unwrap_or(&config.pool);
        Ok(Self {
            target: Target::parse(url, &config.schema_prefix, store, service)?,
            pool: Pool::from_config(pool, service)?,
            redactor: Redactor::for_url(url),
        })
    }
}

impl Target {
    fn parse(url: &str, schema_prefix: &str, store: &str, service: &str) -> Result<Self, DbError> {
        let invalid = |reason: &str| DbError::InvalidConfig {
            service: service.to_owned(),
            reason: reason.to_owned(),
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let schema = name::schema_name(schema_prefix, store, service)?;
            return Ok(Self::Postgres {
                url: url.to_owned(),
                schema,
            });
        }
        let Some(rest) = url.strip_prefix("sqlite:") else {
            return Err(invalid(
                "the database URL must start with `sqlite:` or `postgres://`",
            ));
        };
        // Accept `sqlite:data`, `sqlite:./data`, `sqlite://data` and `sqlite:///var/lib/keel`.
        let directory = rest.strip_prefix("//").unwrap_or(rest);
        if directory.is_empty() {
            return Err(invalid("`sqlite:` needs a directory, e.g. `sqlite:data`"));
        }
        if directory.contains(":memory:") || directory.contains(['?', '#']) {
            return Err(invalid(
                "`sqlite:` takes a directory only (one file per service is created in it); \
                 in-memory databases and URL parameters are not supported",
            ));
        }
        Ok(Self::Sqlite {
            file: PathBuf::from(directory).join(format!("{store}.db")),
        })
    }
}

impl Pool {
    fn from_config(pool: &PoolConfig, service: &str) -> Result<Self, DbError> {
        let invalid = |reason: &str| DbError::InvalidConfig {
            service: service.to_owned(),
            reason: reason.to_owned(),
        };
        if pool.max_connections == 0 {
            return Err(invalid("pool.max_connections must be positive"));
        }
        if pool.min_connections > pool.max_connections {
            return Err(invalid(
                "pool.min_connections must not exceed pool.max_connections",
            ));
        }
        if pool.connect_timeout_ms == 0 || pool.acquire_timeout_ms == 0 {
            return Err(invalid(
                "pool.connect_timeout_ms and pool.acquire_timeout_ms must be positive",
            ));
        }
        Ok(Self {
            max_connections: pool.max_connections,
            min_connections: pool.min_connections,
            connect_timeout: Duration::from_millis(pool.connect_timeout_ms),
            acquire_timeout: Duration::from_millis(pool.acquire_timeout_ms),
            idle_timeout: (pool.idle_timeout_secs > 0).then(|| Duration::from_secs(pool.idle_timeout_secs)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<Target, DbError> {
        Target::parse(url, "keel_", "identity", "identity")
    }

    #[test]
    fn sqlite_urls_name_a_directory_holding_one_file_per_service() {
        for (url, file) in [
            ("sqlite:data", "data/identity.db"),
            ("sqlite:./data", "./data/identity.db"),
            ("sqlite://data", "data/identity.db"),
            ("sqlite:///var/lib/keel", "/var/lib/keel/identity.db"),
        ] {
            match target(url) {
                Ok(Target::Sqlite { file: found }) => assert_eq!(found, PathBuf::from(file), "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn in_memory_and_parameterised_sqlite_urls_are_rejected() {
        for url in [
            "sqlite::memory:",
            "sqlite:",
            "sqlite:data?mode=ro",
            "mysql://db/keel",
        ] {
            assert!(matches!(target(url), Err(DbError::InvalidConfig { .. })), "{url}");
        }
    }

    #[test]
    fn postgres_urls_give_the_prefixed_schema() {
        match target("postgresql://u:p@db/keel") {
            Ok(Target::Postgres { schema, .. }) => assert_eq!(schema, "keel_identity"),
            other => panic!("{other:?}"),
        }
    }
}
