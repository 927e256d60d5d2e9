//! A caller-side cache of permission checks.
//!
//! Why this module exists: every protected request asks whether its user holds a permission, and a
//! network round trip per request would dominate its latency (the goal is a check p99 under 1 ms).
//! [`CachedAuthzClient`] keeps each user's whole permission set, fetched once with
//! `user_permissions`, and answers checks from it with one hash lookup under a read lock: no call,
//! no allocation. Freshness comes from two sides: a TTL bounds how long a set is trusted, and
//! invalidation drops sets the moment authz says they changed (the composer subscribes to the role
//! and permission events and calls [`CachedAuthzClient::invalidate_user`] or
//! [`CachedAuthzClient::invalidate_all`]). Changes made through this client invalidate by
//! themselves, so its own caller sees them on its very next check.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use uuid::Uuid;

use crate::{
    AuthzClient, NewRole, Origin, Page, PageRequest, Permission, Role, RoleChanges, RoleSelector,
    ServiceError,
};

/// Users whose sets are kept at most; past it, expired sets are dropped, then all if need be.
const MAX_USERS: usize = 100_000;

/// An [`AuthzClient`] answering permission checks from a per-user cache; every other method is
/// passed through to the inner client.
pub struct CachedAuthzClient {
    inner: Arc<dyn AuthzClient>,
    ttl: Duration,
    users: RwLock<HashMap<Uuid, Entry>>,
    /// Bumped by every invalidation, so a set fetched before one is not stored after it.
    epoch: AtomicU64,
}

struct Entry {
    permissions: Arc<Permissions>,
    expires_at: Instant,
}

/// One user's permissions, as a set for checks and sorted for listing.
struct Permissions {
    set: HashSet<String>,
    sorted: Vec<String>,
}

impl std::fmt::Debug for CachedAuthzClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedAuthzClient")
            .field("ttl", &self.ttl)
            .field("users", &self.read().len())
            .finish_non_exhaustive()
    }
}

impl CachedAuthzClient {
    /// The longest `ttl` a cache keeps: callers validate `authz.cache_ttl_secs` against it, and a
    /// longer one given to [`CachedAuthzClient::new`] is cut to it (an expiry instant must stay
    /// representable; `u64::MAX` seconds "for ever" would overflow it).
    pub const MAX_TTL: Duration = Duration::from_secs(86_400);

    /// A cache in front of `inner` trusting a user's permissions for `ttl` (at most
    /// [`CachedAuthzClient::MAX_TTL`]) after they were fetched.
    pub fn new(inner: Arc<dyn AuthzClient>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl: ttl.min(Self::MAX_TTL),
            users: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        }
    }

    /// Forgets one user's permissions (their roles changed).
    pub fn invalidate_user(&self, user_id: Uuid) {
        let mut users = self.write();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        users.remove(&user_id);
    }

    /// Forgets every user's permissions (a role's permissions changed, or a role was deleted).
    pub fn invalidate_all(&self) {
        let mut users = self.write();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        users.clear();
    }

    /// The user's fresh cached set, counting the hit or miss.
    fn cached(&self, user_id: Uuid) -> Option<Arc<Permissions>> {
        let found = self
            .read()
            .get(&user_id)
            .filter(|entry| Instant::now() < entry.expires_at)
            .map(|entry| Arc::clone(&entry.permissions));
        match found {
            Some(_) => metrics::counter!("keel_authz_cache_hits_total").increment(1),
            None => metrics::counter!("keel_authz_cache_misses_total").increment(1),
        }
        found
    }

    /// The user's set, from the cache or fetched (and then cached unless invalidated meanwhile).
    async fn permissions(&self, user_id: Uuid) -> Result<Arc<Permissions>, ServiceError> {
        if let Some(permissions) = self.cached(user_id) {
            return Ok(permissions);
        }
        self.load(user_id).await
    }

    /// Asks authz for the user's set and caches it unless an invalidation happened meanwhile.
    async fn load(&self, user_id: Uuid) -> Result<Arc<Permissions>, ServiceError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut sorted = self.inner.user_permissions(user_id).await?;
        sorted.sort_unstable();
        sorted.dedup();
        let permissions = Arc::new(Permissions {
            set: sorted.iter().cloned().collect(),
            sorted,
        });
        let mut users = self.write();
        if self.epoch.load(Ordering::Acquire) == epoch {
            let now = Instant::now();
            if users.len() >= MAX_USERS {
                users.retain(|_, entry| now < entry.expires_at);
                if users.len() >= MAX_USERS {
                    users.clear();
                }
            }
            let entry = Entry {
                permissions: Arc::clone(&permissions),
                expires_at: now + self.ttl,
            };
            users.insert(user_id, entry);
        }
        Ok(permissions)
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Uuid, Entry>> {
        self.users.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Uuid, Entry>> {
        self.users
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl AuthzClient for CachedAuthzClient {
    /// Allows are answered from the cache; a denial is confirmed with authz first, so a grant
    /// applies to the very next request even before its invalidation event arrives (revocations
    /// apply when the event evicts the user, or at the TTL at worst).
    async fn has_permission(&self, user_id: Uuid, permission: &str) -> Result<bool, ServiceError> {
        if self
            .cached(user_id)
            .is_some_and(|cached| cached.set.contains(permission))
        {
            return Ok(true);
        }
        Ok(self.load(user_id).await?.set.contains(permission))
    }

    async fn user_permissions(&self, user_id: Uuid) -> Result<Vec<String>, ServiceError> {
        Ok(self.permissions(user_id).await?.sorted.clone())
    }

    async fn list_permissions(&self) -> Result<Vec<Permission>, ServiceError> {
        self.inner.list_permissions().await
    }

    async fn register_permissions(&self, permissions: Vec<Permission>) -> Result<u32, ServiceError> {
        let outcome = self.inner.register_permissions(permissions).await;
        // A role may hold every permission (admin), so new ones can change anybody's set.
        self.invalidate_all();
        outcome
    }

    async fn create_role(&self, role: NewRole, origin: &Origin) -> Result<Role, ServiceError> {
        // Nobody holds a new role yet: no set changes.
        self.inner.create_role(role, origin).await
    }

    async fn get_role(&self, id: Uuid) -> Result<Role, ServiceError> {
        self.inner.get_role(id).await
    }

    async fn list_roles(&self, name: Option<String>, page: PageRequest) -> Result<Page<Role>, ServiceError> {
        self.inner.list_roles(name, page).await
    }

    async fn update_role(
        &self,
        id: Uuid,
        changes: RoleChanges,
        origin: &Origin,
    ) -> Result<Role, ServiceError> {
        // Name and description only: no set changes.
        self.inner.update_role(id, changes, origin).await
    }

    // The writes below invalidate whatever their outcome: a call that failed as unavailable or
    // timed out may still have been applied.

    async fn delete_role(&self, id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
        let outcome = self.inner.delete_role(id, origin).await;
        self.invalidate_all();
        outcome
    }

    async fn grant_permissions(
        &self,
        role_id: Uuid,
        permissions: Vec<String>,
        origin: &Origin,
    ) -> Result<Role, ServiceError> {
        let outcome = self.inner.grant_permissions(role_id, permissions, origin).await;
        self.invalidate_all();
        outcome
    }

    async fn revoke_permission(
        &self,
        role_id: Uuid,
        permission: &str,
        origin: &Origin,
    ) -> Result<Role, ServiceError> {
        let outcome = self.inner.revoke_permission(role_id, permission, origin).await;
        self.invalidate_all();
        outcome
    }

    async fn assign_roles(
        &self,
        user_id: Uuid,
        roles: RoleSelector,
        origin: &Origin,
    ) -> Result<Vec<Role>, ServiceError> {
        let outcome = self.inner.assign_roles(user_id, roles, origin).await;
        self.invalidate_user(user_id);
        outcome
    }

    async fn revoke_role(&self, user_id: Uuid, role_id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
        let outcome = self.inner.revoke_role(user_id, role_id, origin).await;
        self.invalidate_user(user_id);
        outcome
    }

    async fn revoke_all_roles(&self, user_id: Uuid, origin: &Origin) -> Result<u32, ServiceError> {
        let outcome = self.inner.revoke_all_roles(user_id, origin).await;
        self.invalidate_user(user_id);
        outcome
    }

    async fn user_roles(&self, user_id: Uuid) -> Result<Vec<Role>, ServiceError> {
        self.inner.user_roles(user_id).await
    }
}
