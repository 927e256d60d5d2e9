//! The authz engine: every read and write of roles, grants and assignments, whatever edge (REST,
//! gRPC, the local client, event handlers, seeding) asked for it.
//!
//! Why this module exists: the rules (validation with field paths, system-role protection,
//! idempotent grants and assignments, one transaction per write carrying its events and audit
//! records, cache invalidation after commit) must hold the same way on every path, so the edges
//! only translate requests and errors and call in here.

mod assignments;
mod catalogue;
pub(crate) mod changes;
mod grants;
mod roles;
mod seed;

pub(crate) use assignments::KeepAdmin;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keel_clients::{Page, PageRequest, Permission, Role};
use keel_events::RelayWaker;
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

pub use seed::SeedReport;

use crate::AuthzError;

/// Longest a write waits for the outbox relay to publish its events before answering anyway (the
/// events still go out; other services' caches then learn of the change a little later).
const EVENT_FLUSH_LIMIT: Duration = Duration::from_secs(2);
use crate::cache::{PermissionCache, PermissionSet};
use crate::names::{PermissionName, RoleName};
use crate::store::queries;

/// Page size when a list request names none.
const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page a list request may ask for.
const MAX_PAGE_SIZE: u32 = 100;

/// What a committed write may have changed in users' effective permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invalidate {
    /// Nothing (a rename, a no-op).
    Nothing,
    /// One user's roles.
    User(Uuid),
    /// A role's grants, or a role's existence: any user.
    Everyone,
}

/// The engine over one authz store.
pub(crate) struct Authz {
    db: DatabaseConnection,
    cache: PermissionCache,
    relay: RelayWaker,
}

impl Authz {
    /// Where authz's REST routes record authenticated changes no handler audited (denials, for
    /// instance): authz's own outbox.
    pub(crate) fn mutation_auditor(&self) -> keel_service::MutationAuditor {
        keel_service::MutationAuditor::new(self.db.clone(), crate::SERVICE_NAME, self.relay.clone())
    }

    /// An engine over `db`, caching permissions for `cache_ttl` and waking `relay` after commits.
    pub(crate) fn new(db: DatabaseConnection, cache_ttl: Duration, relay: RelayWaker) -> Self {
        Self {
            db,
            cache: PermissionCache::new(cache_ttl),
            relay,
        }
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads first and writes later fails with `SQLITE_BUSY_SNAPSHOT`
    /// whenever another connection (the outbox relay, another request) committed in between, and
    /// the busy timeout cannot help it. PostgreSQL ignores the mode.
    async fn begin(&self) -> Result<DatabaseTransaction, AuthzError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        Ok(self.db.begin_with_options(options).await?)
    }

    /// Commits a write, drops what the write made stale here, and waits (briefly) for the outbox
    /// relay to have published the write's events, so other services' permission caches are
    /// invalidated before the caller sees the answer: a change applies to the very next request.
    async fn commit(&self, tx: DatabaseTransaction, invalidate: Invalidate) -> Result<(), AuthzError> {
        tx.commit().await?;
        match invalidate {
            Invalidate::Nothing => {}
            Invalidate::User(user_id) => self.cache.invalidate_user(user_id),
            Invalidate::Everyone => self.cache.invalidate_all(),
        }
        if !self.relay.flush(EVENT_FLUSH_LIMIT).await {
            self.relay.wake();
        }
        Ok(())
    }

    /// Drops every cached permission set (another instance changed roles or grants).
    pub(crate) fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    /// Drops one user's cached permission set (another instance changed their roles).
    pub(crate) fn invalidate_user(&self, user_id: Uuid) {
        self.cache.invalidate_user(user_id);
    }

    /// A user's effective permissions, from the cache when warm.
    async fn effective_permissions(&self, user_id: Uuid) -> Result<PermissionSet, AuthzError> {
        match self.cache.get(user_id) {
            Ok(permissions) => Ok(permissions),
            Err(generation) => {
                let permissions = Arc::new(queries::user_permissions(&self.db, user_id).await?);
                self.cache.fill(user_id, permissions.clone(), generation);
                Ok(permissions)
            }
        }
    }

    /// Does the user hold `permission` through any of their roles? A malformed name is a 422 on
    /// the field `permission` (it could never be granted, so it is a caller's bug).
    pub(crate) async fn has_permission(&self, user_id: Uuid, permission: &str) -> Result<bool, AuthzError> {
        let name =
            PermissionName::parse(permission, "permission").map_err(|v| AuthzError::Invalid(vec![v]))?;
        Ok(self.effective_permissions(user_id).await?.contains(name.as_str()))
    }

    /// The user's effective permissions, sorted.
    pub(crate) async fn user_permissions(&self, user_id: Uuid) -> Result<Vec<String>, AuthzError> {
        Ok(self
            .effective_permissions(user_id)
            .await?
            .iter()
            .cloned()
            .collect())
    }

    /// The catalogue, sorted by name.
    pub(crate) async fn list_permissions(&self) -> Result<Vec<Permission>, AuthzError> {
        Ok(queries::catalogue(&self.db).await?)
    }

    /// One role with its permissions.
    pub(crate) async fn get_role(&self, id: Uuid) -> Result<Role, AuthzError> {
        queries::role(&self.db, id)
            .await?
            .ok_or_else(|| AuthzError::RoleNotFound(id.to_string()))
    }

    /// Roles ordered by name, a page at a time; `name` keeps only the role of that name (any case).
    pub(crate) async fn list_roles(
        &self,
        name: Option<String>,
        page: PageRequest,
    ) -> Result<Page<Role>, AuthzError> {
        let limit = page_size(page.limit)?;
        let after = page.cursor.as_deref().map(decode_cursor).transpose()?;
        let name = match name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            // A malformed name cannot match any role: an empty page, not an error.
            Some(raw) => match RoleName::parse(raw, "name") {
                Ok(name) => Some(name.into_string()),
                Err(_) => {
                    return Ok(Page {
                        items: Vec::new(),
                        next_cursor: None,
                    });
                }
            },
            None => None,
        };
        let mut rows =
            queries::roles_page(&self.db, name.as_deref(), after.as_deref(), u64::from(limit)).await?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|row| encode_cursor(&row.name))
        } else {
            None
        };
        let items = queries::with_grants(&self.db, rows).await?;
        Ok(Page { items, next_cursor })
    }

    /// The roles a user holds, by name.
    pub(crate) async fn user_roles(&self, user_id: Uuid) -> Result<Vec<Role>, AuthzError> {
        Ok(queries::user_roles(&self.db, user_id).await?)
    }
}

fn page_size(limit: Option<u32>) -> Result<u32, AuthzError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit) if (1..=MAX_PAGE_SIZE).contains(&limit) => Ok(limit),
        Some(_) => Err(AuthzError::field(
            "limit",
            "out_of_range",
            "limit is between 1 and 100",
        )),
    }
}

/// The cursor after a role: its name, opaque to clients.
fn encode_cursor(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(name.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<String, AuthzError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            AuthzError::field(
                "cursor",
                "invalid_cursor",
                "the cursor is not one this API returned",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_outside_1_to_100_are_rejected_on_the_limit_field() {
        assert_eq!(page_size(None).ok(), Some(20));
        assert_eq!(page_size(Some(100)).ok(), Some(100));
        for bad in [0, 101] {
            match page_size(Some(bad)) {
                Err(AuthzError::Invalid(v)) => assert_eq!(v[0].field, "limit"),
                other => panic!("expected a violation, got {other:?}"),
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_rejected() {
        assert_eq!(
            decode_cursor(&encode_cursor("editor")).ok().as_deref(),
            Some("editor")
        );
        assert!(matches!(decode_cursor("!!"), Err(AuthzError::Invalid(_))));
    }
}
