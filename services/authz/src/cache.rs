//! The in-process cache of users' effective permissions inside the authz service.
//!
//! Why this module exists: a permission check is asked on nearly every request of every service;
//! answering a warm one from memory keeps its p99 far below a millisecond. Correctness rules:
//!
//! - every write of this instance invalidates what it may have changed, right after its commit
//!   (one user for an assignment, everything for a role or grant change);
//! - a fill that raced with an invalidation is discarded: each fill carries the generation it
//!   started under, and any invalidation bumps the generation, so a set read before a commit can
//!   never be stored after it;
//! - entries expire after the configured TTL (0 disables the cache), which bounds staleness when
//!   another instance's write reaches this one late;
//! - the map is bounded; when full it is cleared rather than grown.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Most users cached at once.
const MAX_ENTRIES: usize = 100_000;

/// A user's effective permissions, shared between the cache and readers.
pub(crate) type PermissionSet = Arc<BTreeSet<String>>;

/// Cached effective permissions per user.
#[derive(Debug)]
pub(crate) struct PermissionCache {
    ttl: Duration,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    generation: u64,
    entries: HashMap<Uuid, Entry>,
}

#[derive(Debug)]
struct Entry {
    permissions: PermissionSet,
    loaded_at: Instant,
}

/// The generation a fill started under; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation(u64);

impl PermissionCache {
    /// A cache whose entries live `ttl`; a zero TTL caches nothing.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            inner: RwLock::default(),
        }
    }

    /// The user's permissions when cached and fresh, else the generation to fill under.
    pub(crate) fn get(&self, user_id: Uuid) -> Result<PermissionSet, Generation> {
        let inner = self.read();
        match inner.entries.get(&user_id) {
            Some(entry) if entry.loaded_at.elapsed() < self.ttl => Ok(entry.permissions.clone()),
            _ => Err(Generation(inner.generation)),
        }
    }

    /// Stores a set loaded under `generation`, unless an invalidation happened since.
    pub(crate) fn fill(&self, user_id: Uuid, permissions: PermissionSet, generation: Generation) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.write();
        if inner.generation != generation.0 {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES && !inner.entries.contains_key(&user_id) {
            inner.entries.clear();
        }
        inner.entries.insert(
            user_id,
            Entry {
                permissions,
                loaded_at: Instant::now(),
            },
        );
    }

    /// Forgets one user's permissions (their roles changed).
    pub(crate) fn invalidate_user(&self, user_id: Uuid) {
        let mut inner = self.write();
        inner.generation += 1;
        inner.entries.remove(&user_id);
    }

    /// Forgets everything (a role's grants changed, or a role was deleted).
    pub(crate) fn invalidate_all(&self) {
        let mut inner = self.write();
        inner.generation += 1;
        inner.entries.clear();
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> PermissionSet {
        Arc::new(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn a_filled_entry_is_served_until_invalidated() {
        let cache = PermissionCache::new(Duration::from_secs(60));
        let user = Uuid::now_v7();
        let generation = cache.get(user).unwrap_err();
        cache.fill(user, set(&["a.b.c"]), generation);
        assert_eq!(cache.get(user).map(|s| s.len()), Ok(1));
        cache.invalidate_user(user);
        assert!(cache.get(user).is_err());
    }

    #[test]
    fn a_fill_that_raced_with_an_invalidation_is_discarded() {
        let cache = PermissionCache::new(Duration::from_secs(60));
        let user = Uuid::now_v7();
        let generation = cache.get(user).unwrap_err();
        cache.invalidate_all();
        cache.fill(user, set(&["stale.per.mission"]), generation);
        assert!(
            cache.get(user).is_err(),
            "a set read before a write must not be stored after it"
        );
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = PermissionCache::new(Duration::ZERO);
        let user = Uuid::now_v7();
        let generation = cache.get(user).unwrap_err();
        cache.fill(user, set(&["a.b.c"]), generation);
        assert!(cache.get(user).is_err());
    }
}
