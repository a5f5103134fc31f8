//! The shard's row cache: for recently read keys, the record a point read
//! returns (the highest version across every memtable and table), so a
//! repeated read costs one hash lookup instead of memtable probes, bloom
//! checks, an index search and a block search.
//!
//! The idea is ScyllaDB's row cache (a read-through cache of merged rows in
//! front of the SSTables, kept current by writes); a hit here is the same work
//! as a Redis GET: hash the key, compare it once, copy the value.
//!
//! Invariant (the engine keeps it): a cached record is the highest-version
//! record of its key across all the engine's sources. It holds because
//! - it is filled only with the merged result of a full read, re-merged with
//!   the memtables at fill time and dropped if the table set changed while
//!   the read waited for I/O (see `engine::read`), and
//! - every record the engine accepts afterwards goes through
//!   [`RowCache::observe_write`] before any reader can see it.
//!
//! Compaction drops older versions (no effect here) and purges tombstones and
//! expired values nothing older hides: the engine makes the cache
//! [`forget`](RowCache::forget) those keys when the compaction installs, so
//! a read answers the same with or without the cache. One owner, one thread:
//! no locks.
//!
//! Bounded by a byte budget; evicted with CLOCK (second chance), like the
//! block cache.

use crate::cache::CacheStats;
use crate::types::{Record, Version};
use hashbrown::HashTable;

/// Bookkeeping charged per entry besides its key and value bytes: the slot,
/// the hash-table bucket and the allocator's headers, estimated.
const ENTRY_OVERHEAD_BYTES: usize = std::mem::size_of::<Entry>() + 32;

/// Records larger than this share of the budget are not cached: one of them
/// would evict thousands of small ones for a single hit.
const MAX_ENTRY_SHARE: usize = 64;

/// One cached key. Key and value share one allocation (`bytes`), so a hit
/// touches the hash bucket, the slot and one heap block.
struct Entry {
    hash: u64,
    /// The key, then the value (empty for a tombstone).
    bytes: Box<[u8]>,
    key_len: u32,
    tombstone: bool,
    referenced: bool,
    version: Version,
    expires_at_ms: u64,
    charge: usize,
}

impl Entry {
    fn new(hash: u64, key: &[u8], record: &Record) -> Entry {
        let value = record.value.as_deref().unwrap_or(&[]);
        let mut bytes = Vec::with_capacity(key.len() + value.len());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        Entry {
            hash,
            bytes: bytes.into_boxed_slice(),
            // Keys are at most `limits::KEY_SIZE_MAX` bytes.
            key_len: key.len() as u32,
            tombstone: record.value.is_none(),
            referenced: false,
            version: record.version,
            expires_at_ms: record.expires_at_ms,
            charge: charge_of(key, record),
        }
    }

    fn key(&self) -> &[u8] {
        &self.bytes[..self.key_len as usize]
    }

    fn record(&self) -> Record {
        Record {
            version: self.version,
            expires_at_ms: self.expires_at_ms,
            value: (!self.tombstone).then(|| self.bytes[self.key_len as usize..].to_vec()),
        }
    }
}

/// A byte-bounded map from key to its current record, for one shard.
pub struct RowCache {
    /// Indices into `slots`, hashed by their entry's key.
    table: HashTable<u32>,
    slots: Vec<Option<Entry>>,
    /// Indices of empty slots, reused before `slots` grows.
    free: Vec<u32>,
    hasher: ahash::RandomState,
    /// The CLOCK hand: the next slot eviction looks at.
    hand: usize,
    bytes: usize,
    capacity_bytes: usize,
    /// Larger entries are not cached (a share of the budget).
    max_entry_bytes: usize,
    hits: u64,
    misses: u64,
}

fn charge_of(key: &[u8], record: &Record) -> usize {
    key.len() + record.value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD_BYTES
}

impl RowCache {
    /// A cache holding at most `capacity_bytes` (0 disables it).
    pub fn new(capacity_bytes: usize) -> Self {
        RowCache {
            table: HashTable::new(),
            slots: Vec::new(),
            free: Vec::new(),
            hasher: ahash::RandomState::new(),
            hand: 0,
            bytes: 0,
            capacity_bytes,
            max_entry_bytes: capacity_bytes / MAX_ENTRY_SHARE,
            hits: 0,
            misses: 0,
        }
    }

    /// Whether the cache can hold anything.
    pub fn is_enabled(&self) -> bool {
        self.capacity_bytes > 0
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        let slots = &self.slots;
        self.table
            .find(hash, |&i| {
                slots[i as usize]
                    .as_ref()
                    .is_some_and(|e| e.hash == hash && e.key() == key)
            })
            .copied()
    }

    /// The cached record of `key` (a copy); counts a hit or a miss.
    pub fn get(&mut self, key: &[u8]) -> Option<Record> {
        if !self.is_enabled() {
            return None;
        }
        let hash = self.hasher.hash_one(key);
        match self.find(hash, key) {
            Some(i) => {
                self.hits += 1;
                let entry = self.slots[i as usize].as_mut()?;
                entry.referenced = true;
                Some(entry.record())
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Caches `record` as the current record of `key` (after a full read),
    /// unless a higher or equal version is cached already. Evicts as needed;
    /// a record over the per-entry limit is not cached.
    pub fn fill(&mut self, key: &[u8], record: &Record) {
        if !self.is_enabled() {
            return;
        }
        let hash = self.hasher.hash_one(key);
        if let Some(i) = self.find(hash, key) {
            self.raise(i, key, record);
            return;
        }
        let charge = charge_of(key, record);
        if charge > self.max_entry_bytes {
            return;
        }
        while self.bytes + charge > self.capacity_bytes && !self.table.is_empty() {
            self.evict_one();
        }
        let entry = Entry::new(hash, key, record);
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(entry);
                i
            }
            None => {
                // Slot indices are u32: a cache of 4G entries would need
                // hundreds of GiB of budget; refuse rather than wrap.
                let Ok(i) = u32::try_from(self.slots.len()) else {
                    return;
                };
                self.slots.push(Some(entry));
                i
            }
        };
        let slots = &self.slots;
        self.table.insert_unique(hash, index, |&i| {
            slots[i as usize].as_ref().map_or(0, |e| e.hash)
        });
        self.bytes += charge;
    }

    /// A write the engine accepted: if `key` is cached and `record` is newer,
    /// it becomes the cached record. Keys not cached stay out (a write does
    /// not say the key will be read).
    pub fn observe_write(&mut self, key: &[u8], record: &Record) {
        if self.table.is_empty() {
            return;
        }
        let hash = self.hasher.hash_one(key);
        if let Some(i) = self.find(hash, key) {
            self.raise(i, key, record);
        }
    }

    /// Replaces slot `i`'s record with `record` if `record` is newer.
    fn raise(&mut self, i: u32, key: &[u8], record: &Record) {
        let Some(entry) = self.slots[i as usize].as_mut() else {
            return;
        };
        if record.version <= entry.version {
            return;
        }
        let referenced = entry.referenced;
        let old_charge = entry.charge;
        *entry = Entry::new(entry.hash, key, record);
        entry.referenced = referenced;
        self.bytes = self.bytes - old_charge + entry.charge;
        if self.bytes > self.capacity_bytes {
            // A bigger value took the budget over: make room, which may
            // evict this very entry (correct: absent is always safe).
            while self.bytes > self.capacity_bytes && !self.table.is_empty() {
                self.evict_one();
            }
        }
    }

    /// Drops `key`'s entry, if cached.
    pub fn forget(&mut self, key: &[u8]) {
        if self.table.is_empty() {
            return;
        }
        let hash = self.hasher.hash_one(key);
        if let Some(index) = self.find(hash, key) {
            self.remove_slot(index as usize);
        }
    }

    /// Removes the entry in slot `index` from the table and frees the slot.
    fn remove_slot(&mut self, index: usize) {
        let Some(entry) = self.slots[index].take() else {
            return;
        };
        if let Ok(bucket) = self.table.find_entry(entry.hash, |&i| i as usize == index) {
            bucket.remove();
        }
        self.bytes -= entry.charge;
        self.free.push(index as u32);
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.table.clear();
        self.slots.clear();
        self.free.clear();
        self.hand = 0;
        self.bytes = 0;
    }

    /// CLOCK: clears reference bits until it finds an unreferenced entry, and
    /// evicts it. Call only with at least one entry cached.
    fn evict_one(&mut self) {
        debug_assert!(!self.table.is_empty());
        loop {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let index = self.hand;
            self.hand += 1;
            let Some(entry) = self.slots[index].as_mut() else {
                continue;
            };
            if entry.referenced {
                entry.referenced = false;
                continue;
            }
            self.remove_slot(index);
            return;
        }
    }

    /// Entries cached now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Hits, misses, bytes charged and budget.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits,
            misses: self.misses,
            bytes: self.bytes as u64,
            capacity_bytes: self.capacity_bytes as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Version;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn put(hlc: u64, value: &[u8]) -> Record {
        Record::put(Version::new(hlc, 0, 1), value.to_vec(), 0)
    }

    #[test]
    fn fill_then_hit_and_writes_only_raise_cached_keys() {
        let mut c = RowCache::new(1 << 20);
        assert!(c.get(b"a").is_none());
        c.fill(b"a", &put(5, b"five"));
        assert_eq!(c.get(b"a"), Some(put(5, b"five")));
        // An older write (a replica catching up) does not replace it.
        c.observe_write(b"a", &put(3, b"three"));
        assert_eq!(c.get(b"a"), Some(put(5, b"five")));
        c.observe_write(b"a", &Record::tombstone(Version::new(7, 0, 1)));
        assert!(c.get(b"a").is_some_and(|r| r.is_tombstone()));
        // A write of an uncached key does not cache it.
        c.observe_write(b"b", &put(1, b"one"));
        assert!(c.get(b"b").is_none());
        assert_eq!((c.stats().hits, c.stats().misses), (3, 2));
    }

    #[test]
    fn stays_within_budget_and_clock_keeps_the_referenced_entry() {
        let one = charge_of(b"k0", &put(1, &[0; 100]));
        let mut c = RowCache::new(one * 3);
        c.max_entry_bytes = one; // a tiny budget: lift the per-entry share
        for i in 0..3u8 {
            c.fill(&[b'k', b'0' + i], &put(1, &[i; 100]));
        }
        assert_eq!(c.len(), 3);
        assert!(c.get(b"k0").is_some());
        c.fill(b"k3", &put(1, &[3; 100]));
        assert!(c.stats().bytes <= c.stats().capacity_bytes);
        assert_eq!(c.len(), 3);
        assert!(c.get(b"k0").is_some(), "the referenced entry survives");
        assert!(c.get(b"k3").is_some());
        assert!(c.get(b"k1").is_none(), "the first unreferenced entry goes");
    }

    #[test]
    fn oversized_records_are_not_cached() {
        let mut c = RowCache::new(64 * 1024);
        c.fill(b"big", &put(1, &[0; 2048]));
        assert!(c.is_empty());
        c.fill(b"small", &put(1, &[0; 100]));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn disabled_cache_holds_nothing() {
        let mut c = RowCache::new(0);
        c.fill(b"a", &put(1, b"x"));
        assert!(c.get(b"a").is_none() && c.is_empty());
    }

    proptest! {
        /// Against a model map: whatever is cached is the newest version
        /// written or filled for that key, and the budget always holds.
        #[test]
        fn cached_records_are_always_the_newest(
            ops in proptest::collection::vec((0u8..4, 0u8..24, 1u64..50, 0usize..300), 1..400),
            budget in 2_000usize..40_000,
        ) {
            let mut c = RowCache::new(budget);
            c.max_entry_bytes = budget;
            let mut newest: HashMap<Vec<u8>, Record> = HashMap::new();
            for (op, k, hlc, len) in ops {
                let key = vec![b'k', k];
                let record = put(hlc, &vec![k; len]);
                let keep = |m: &mut HashMap<Vec<u8>, Record>, r: &Record| {
                    let e = m.entry(key.clone()).or_insert_with(|| r.clone());
                    if r.version > e.version {
                        *e = r.clone();
                    }
                };
                match op {
                    0 => {
                        keep(&mut newest, &record);
                        c.fill(&key, newest.get(&key).unwrap_or(&record));
                    }
                    1 => {
                        keep(&mut newest, &record);
                        c.observe_write(&key, &record);
                    }
                    2 if hlc % 7 == 0 => c.forget(&key),
                    _ => {
                        if let Some(r) = c.get(&key) {
                            prop_assert_eq!(Some(&r), newest.get(&key));
                        }
                    }
                }
                prop_assert!(c.stats().bytes <= budget as u64);
                prop_assert_eq!(c.len(), c.slots.iter().filter(|s| s.is_some()).count());
            }
        }
    }
}
