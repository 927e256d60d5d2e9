//! Access tokens the gateway has already verified, so each is verified once, not on every request.
//!
//! Why it exists: an Ed25519 signature check costs tens of microseconds, several times the rest of
//! the gateway's work on a request, and a client sends the same token with every request for its
//! whole lifetime. The outcome of a successful verification is a pure function of the token, the
//! keys and the time, so it can be remembered until the token expires.
//!
//! - Entries are keyed by the SHA-256 digest of the token: no token is kept in memory, and two
//!   tokens cannot share an entry.
//! - An entry lives until the token's `exp`, and at most [`MAX_ENTRY_AGE_SECS`], which bounds how
//!   long a signing key withdrawn from the JWKS keeps admitting tokens here beyond the verifier's
//!   own key cache.
//! - Only successes are remembered: a flood of invalid tokens cannot fill the cache.
//! - The cache is bounded: when it is full, expired entries go first, then an arbitrary tenth.
//!
//! Time is a parameter (Unix seconds), so tests control it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use keel_authn::Principal;
use sha2::{Digest, Sha256};

/// Longest an entry is trusted, whatever the token's expiry.
pub(crate) const MAX_ENTRY_AGE_SECS: i64 = 300;

/// The SHA-256 digest of a token, the cache key.
pub(crate) type TokenDigest = [u8; 32];

/// Digests `token`.
pub(crate) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A bounded map of token digests to the principals they were verified as.
#[derive(Debug)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<TokenDigest, Entry>>,
    capacity: usize,
}

#[derive(Debug)]
struct Entry {
    principal: Arc<Principal>,
    /// Unix seconds after which the entry is no longer used.
    until: i64,
}

impl TokenCache {
    /// A cache of at most `capacity` entries; 0 remembers nothing.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::with_capacity(capacity.min(1024))),
            capacity,
        }
    }

    /// The principal `digest` was verified as, if that is still valid at `now`.
    pub(crate) fn get(&self, digest: &TokenDigest, now: i64) -> Option<Arc<Principal>> {
        if self.capacity == 0 {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(digest) {
            Some(entry) if now < entry.until => Some(Arc::clone(&entry.principal)),
            Some(_) => {
                entries.remove(digest);
                None
            }
            None => None,
        }
    }

    /// Remembers that the token of `digest` was verified as `principal` at `now`.
    pub(crate) fn insert(&self, digest: TokenDigest, principal: Arc<Principal>, now: i64) {
        let until = principal
            .expires_at
            .timestamp()
            .min(now.saturating_add(MAX_ENTRY_AGE_SECS));
        if self.capacity == 0 || until <= now {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(&digest) {
            make_room(&mut entries, self.capacity, now);
        }
        entries.insert(digest, Entry { principal, until });
    }

    /// Entries held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// Drops the expired entries, then, if the map is still full, an arbitrary tenth of it (at least
/// one), so that filling a full cache costs one sweep per tenth of its capacity.
fn make_room(entries: &mut HashMap<TokenDigest, Entry>, capacity: usize, now: i64) {
    entries.retain(|_, entry| now < entry.until);
    if entries.len() < capacity {
        return;
    }
    let doomed: Vec<TokenDigest> = entries.keys().take((capacity / 10).max(1)).copied().collect();
    for digest in doomed {
        entries.remove(&digest);
    }
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;
    use uuid::Uuid;

    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn principal(expires: i64) -> Arc<Principal> {
        Arc::new(Principal {
            user_id: Uuid::now_v7(),
            session_id: Uuid::now_v7(),
            token_id: "jti".to_owned(),
            expires_at: DateTime::from_timestamp(expires, 0).unwrap_or_default(),
        })
    }

    #[test]
    fn a_verified_token_is_remembered_until_it_expires() {
        let cache = TokenCache::new(10);
        let key = digest("token-a");
        let verified = principal(NOW + 60);
        cache.insert(key, Arc::clone(&verified), NOW);
        assert_eq!(cache.get(&key, NOW + 59), Some(verified));
        assert_eq!(cache.get(&key, NOW + 60), None, "gone at exp");
        assert_eq!(cache.len(), 0, "and dropped");
        assert_eq!(cache.get(&digest("token-b"), NOW), None);
    }

    #[test]
    fn an_entry_is_trusted_for_five_minutes_at_most() {
        let cache = TokenCache::new(10);
        let key = digest("long-lived");
        cache.insert(key, principal(NOW + 86_400), NOW);
        assert!(cache.get(&key, NOW + MAX_ENTRY_AGE_SECS - 1).is_some());
        assert!(cache.get(&key, NOW + MAX_ENTRY_AGE_SECS).is_none());
    }

    #[test]
    fn expired_tokens_and_a_zero_capacity_remember_nothing() {
        let cache = TokenCache::new(10);
        cache.insert(digest("expired"), principal(NOW), NOW);
        assert_eq!(cache.len(), 0);
        let off = TokenCache::new(0);
        off.insert(digest("a"), principal(NOW + 60), NOW);
        assert_eq!(off.get(&digest("a"), NOW), None);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first_then_a_tenth() {
        let cache = TokenCache::new(20);
        for i in 0..10 {
            cache.insert(digest(&format!("short-{i}")), principal(NOW + 10), NOW);
        }
        for i in 0..10 {
            cache.insert(digest(&format!("long-{i}")), principal(NOW + 100), NOW);
        }
        assert_eq!(cache.len(), 20);
        cache.insert(digest("late"), principal(NOW + 100), NOW + 20);
        assert_eq!(cache.len(), 11, "the ten expired ones made room");
        for i in 0..9 {
            cache.insert(digest(&format!("more-{i}")), principal(NOW + 100), NOW + 20);
        }
        assert_eq!(cache.len(), 20);
        cache.insert(digest("overflow"), principal(NOW + 100), NOW + 20);
        assert_eq!(cache.len(), 19, "two dropped, one added");
        assert!(cache.get(&digest("overflow"), NOW + 20).is_some());
    }
}
