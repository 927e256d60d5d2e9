//! The in-memory backends' state: a sharded map whose entries expire, with a hard cap on keys.
//!
//! Why sharded `std::sync::Mutex`es and not `dashmap`: a check holds a lock for a hash lookup and a
//! few integer operations, never across an `.await`, so a plain mutex per shard is contention-free
//! enough at gateway rates and adds no dependency. Keys pick a shard by hash.
//!
//! Memory stays bounded two ways. Each entry knows when it stops mattering ([`Expiring`]; a GCRA
//! key once its TAT has passed, a throttle key once its failures are forgotten); a shard drops its
//! expired entries at most once per sweep interval, when it is next touched, and [`ShardedStore::
//! sweep`] does all shards at once. And a shard never holds more than its share of `max_keys`: an
//! insert into a full shard first sweeps it, and if that is not enough evicts the entries closest
//! to expiry, down to three quarters of the cap (so the next full sweep is at least a quarter of
//! the cap away). Evicting a live rate-limit entry forgives part of that key's used budget, which
//! only happens under more distinct keys than the cap allows; it is logged.
//!
//! A key is hashed once per update, with SipHash under a random key (the keys are client
//! addresses and user ids, chosen by whoever sends the requests): the high bits pick the shard,
//! and the same hash finds the entry in the shard's table (hashbrown's `HashTable`).

use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

/// State that stops mattering at some time (microseconds on the store's clock).
pub(crate) trait Expiring {
    /// From this time on the entry means the same as no entry.
    fn expires_at(&self) -> u64;
}

/// What an update does to the entry it looked at.
pub(crate) enum Write<V> {
    /// Leave the stored entry as it is.
    Keep,
    /// Store this value.
    Set(V),
    /// Forget the key.
    Remove,
}

/// A sharded, capped map from string keys to expiring entries.
pub(crate) struct ShardedStore<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    hasher: RandomState,
    max_per_shard: usize,
    sweep_every_us: u64,
}

/// One shard: its entries (each with its key, placed by the key's hash) and when it next drops
/// the expired ones.
struct Shard<V> {
    entries: hashbrown::HashTable<Entry<V>>,
    next_sweep: u64,
}

/// A stored key, the hash it was placed by, and its value.
struct Entry<V> {
    hash: u64,
    key: Box<str>,
    value: V,
}

/// The shape, not the contents: a store may hold 100,000 keys (user ids, IP addresses).
impl<V> std::fmt::Debug for ShardedStore<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedStore")
            .field("shards", &self.shards.len())
            .field("max_per_shard", &self.max_per_shard)
            .field("sweep_every_us", &self.sweep_every_us)
            .finish_non_exhaustive()
    }
}

impl<V: Expiring> ShardedStore<V> {
    /// A store for at most `max_keys` keys (at least 1), sweeping each shard every
    /// `sweep_every_us` microseconds.
    pub(crate) fn new(max_keys: usize, sweep_every_us: u64) -> Self {
        let max_keys = max_keys.max(1);
        let parallelism = std::thread::available_parallelism().map_or(4, usize::from);
        let shard_count = (parallelism * 4).next_power_of_two().clamp(1, 64).min(max_keys);
        let shards = (0..shard_count)
            .map(|_| {
                Mutex::new(Shard {
                    entries: hashbrown::HashTable::new(),
                    next_sweep: sweep_every_us,
                })
            })
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
            max_per_shard: max_keys / shard_count,
            sweep_every_us,
        }
    }

    /// Looks at `key`'s live entry (an expired one reads as absent) and applies what `decide`
    /// returns, all under the shard's lock.
    pub(crate) fn update<R>(
        &self,
        key: &str,
        now: u64,
        decide: impl FnOnce(Option<&V>) -> (Write<V>, R),
    ) -> R {
        let hash = self.hasher.hash_one(key);
        // The high bits: the table inside the shard places entries by the low ones.
        let index = (hash >> 32) as usize % self.shards.len();
        let mut shard = self.shards[index].lock().unwrap_or_else(PoisonError::into_inner);
        if now >= shard.next_sweep {
            shard.drop_expired(now);
            shard.next_sweep = now.saturating_add(self.sweep_every_us);
        }
        let is_key = |entry: &Entry<V>| *entry.key == *key;
        let current = shard
            .entries
            .find(hash, is_key)
            .map(|entry| &entry.value)
            .filter(|value| value.expires_at() > now);
        let (write, result) = decide(current);
        match write {
            Write::Keep => {}
            Write::Remove => {
                if let Ok(entry) = shard.entries.find_entry(hash, is_key) {
                    entry.remove();
                }
            }
            Write::Set(value) => match shard.entries.find_mut(hash, is_key) {
                Some(entry) => entry.value = value,
                None => {
                    if shard.entries.len() >= self.max_per_shard {
                        shard.make_room(now, self.max_per_shard);
                    }
                    let entry = Entry {
                        hash,
                        key: key.into(),
                        value,
                    };
                    shard.entries.insert_unique(hash, entry, |entry| entry.hash);
                }
            },
        }
        result
    }

    /// Drops every expired entry in every shard now.
    pub(crate) fn sweep(&self, now: u64) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.drop_expired(now);
            shard.next_sweep = now.saturating_add(self.sweep_every_us);
        }
    }

    /// Keys currently held, expired or not.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).entries.len())
            .sum()
    }
}

impl<V: Expiring> Shard<V> {
    fn drop_expired(&mut self, now: u64) {
        self.entries.retain(|entry| entry.value.expires_at() > now);
    }

    /// Frees room for one insert into a full shard: drop expired entries, then, if the shard is
    /// still over three quarters full, the entries closest to expiry.
    fn make_room(&mut self, now: u64, max: usize) {
        self.drop_expired(now);
        let target = max - max / 4 - 1;
        if self.entries.len() <= target {
            return;
        }
        let excess = self.entries.len() - target;
        let mut expiries: Vec<u64> = self
            .entries
            .iter()
            .map(|entry| entry.value.expires_at())
            .collect();
        let (_, cutoff, _) = expiries.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        let before = self.entries.len();
        self.entries.retain(|entry| entry.value.expires_at() > cutoff);
        tracing::warn!(
            evicted = before - self.entries.len(),
            max_keys_per_shard = max,
            "rate-limit store full: evicted live keys closest to expiry (raise max_keys?)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry that expires at its value.
    struct Until(u64);

    impl Expiring for Until {
        fn expires_at(&self) -> u64 {
            self.0
        }
    }

    fn set(store: &ShardedStore<Until>, key: &str, now: u64, until: u64) {
        store.update(key, now, |_| (Write::Set(Until(until)), ()));
    }

    fn get(store: &ShardedStore<Until>, key: &str, now: u64) -> Option<u64> {
        store.update(key, now, |v| (Write::Keep, v.map(|v| v.0)))
    }

    #[test]
    fn an_expired_entry_reads_as_absent() {
        let store = ShardedStore::new(100, 1_000);
        set(&store, "k", 0, 10);
        assert_eq!(get(&store, "k", 9), Some(10));
        assert_eq!(get(&store, "k", 10), None);
    }

    #[test]
    fn a_touched_shard_drops_expired_entries_once_per_sweep_interval() {
        let store = ShardedStore::new(1, 1_000);
        set(&store, "a", 0, 10);
        set(&store, "a", 0, 10);
        assert_eq!(store.len(), 1);
        assert_eq!(get(&store, "b", 999), None);
        assert_eq!(store.len(), 1, "no sweep before the interval");
        assert_eq!(get(&store, "b", 1_000), None);
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn a_full_store_evicts_the_entries_closest_to_expiry() {
        let store = ShardedStore::new(8, u64::MAX);
        for i in 0..1_000u64 {
            set(&store, &format!("key-{i}"), 0, 1_000_000 + i);
            assert!(store.len() <= 8);
        }
        assert_eq!(get(&store, "key-999", 0), Some(1_000_999), "the newest key stays");
        assert_eq!(get(&store, "key-0", 0), None, "the oldest key was evicted");
    }

    #[test]
    fn remove_forgets_the_key() {
        let store = ShardedStore::new(10, u64::MAX);
        set(&store, "k", 0, 10);
        store.update("k", 1, |_| (Write::<Until>::Remove, ()));
        assert_eq!(store.len(), 0);
    }
}
