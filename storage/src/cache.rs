//! The shard's block cache: decoded data blocks keyed by `(FileId, offset)`,
//! bounded by a byte budget, evicted with CLOCK (second chance).
//!
//! One cache per shard, used from that shard's thread only, so it needs no
//! lock: interior mutability through `RefCell`, shared as `Rc<BlockCache>`
//! by every open table. A hit is one ahash lookup, one flag store and one
//! `Rc` clone; blocks are handed out as `Rc<Block>`, so an evicted block
//! stays alive for readers that still hold it.
//!
//! Invariants: `bytes` is the sum of the charges of the cached blocks and
//! stays `<= capacity_bytes` after every insert (a block larger than the
//! whole budget is not cached); `map` and `ring` hold the same keys.

use crate::sstable::block::Block;
use crate::types::FileId;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Counters of a [`BlockCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that found their block.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Bytes charged by the blocks cached now.
    pub bytes: u64,
    /// The byte budget.
    pub capacity_bytes: u64,
}

impl CacheStats {
    /// Hits over lookups, 0 when there were none.
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

type Key = (FileId, u64);

/// A cached block. Lives in the map itself, so a hit touches one bucket.
struct Slot {
    block: Rc<Block>,
    charge: usize,
    referenced: bool,
}

/// Charge of a block against the budget: its bytes plus bookkeeping.
fn charge_of(block: &Block) -> usize {
    block.memory_bytes() + std::mem::size_of::<(Key, Slot)>() + std::mem::size_of::<Key>() + 16
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Slot, ahash::RandomState>,
    /// The CLOCK ring: every cached key once, in no particular order.
    ring: Vec<Key>,
    hand: usize,
    bytes: usize,
}

/// A byte-bounded cache of decoded blocks for one shard.
pub struct BlockCache {
    inner: RefCell<Inner>,
    capacity_bytes: usize,
    hits: Cell<u64>,
    misses: Cell<u64>,
}

impl BlockCache {
    /// A cache holding at most `capacity_bytes` of blocks (0 caches nothing).
    pub fn new(capacity_bytes: usize) -> Self {
        BlockCache {
            inner: RefCell::new(Inner::default()),
            capacity_bytes,
            hits: Cell::new(0),
            misses: Cell::new(0),
        }
    }

    /// The block at `offset` of file `id`, if cached; counts a hit or a miss.
    pub fn get(&self, id: FileId, offset: u64) -> Option<Rc<Block>> {
        let found = self.peek(id, offset);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.set(counter.get() + 1);
        found
    }

    /// Like [`get`](Self::get) but counts nothing (for scans that bypass the cache).
    pub fn peek(&self, id: FileId, offset: u64) -> Option<Rc<Block>> {
        let mut inner = self.inner.borrow_mut();
        let slot = inner.map.get_mut(&(id, offset))?;
        slot.referenced = true;
        Some(Rc::clone(&slot.block))
    }

    /// Caches `block` as the block at `offset` of file `id`, evicting others
    /// as needed. A block larger than the whole budget is not cached.
    pub fn insert(&self, id: FileId, offset: u64, block: Rc<Block>) {
        let charge = charge_of(&block);
        if charge > self.capacity_bytes {
            return;
        }
        let mut inner = self.inner.borrow_mut();
        let key = (id, offset);
        if let Some(slot) = inner.map.get_mut(&key) {
            // Another reader loaded it meanwhile; keep the cached one.
            slot.referenced = true;
            return;
        }
        while inner.bytes + charge > self.capacity_bytes && !inner.ring.is_empty() {
            inner.evict_one();
        }
        inner.ring.push(key);
        inner.map.insert(
            key,
            Slot {
                block,
                charge,
                referenced: false,
            },
        );
        inner.bytes += charge;
    }

    /// Drops every cached block of file `id` (call when the file is deleted).
    pub fn forget_file(&self, id: FileId) {
        let mut inner = self.inner.borrow_mut();
        let mut freed = 0;
        inner.map.retain(|k, slot| {
            if k.0 == id {
                freed += slot.charge;
            }
            k.0 != id
        });
        inner.ring.retain(|k| k.0 != id);
        inner.bytes -= freed;
        inner.hand = 0;
    }

    /// Current counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            bytes: self.inner.borrow().bytes as u64,
            capacity_bytes: self.capacity_bytes as u64,
        }
    }
}

impl Inner {
    /// CLOCK: clears reference bits until it finds an unreferenced block,
    /// and evicts it.
    fn evict_one(&mut self) {
        assert!(!self.ring.is_empty(), "evict from an empty cache");
        loop {
            if self.hand >= self.ring.len() {
                self.hand = 0;
            }
            let key = self.ring[self.hand];
            let slot = self.map.get_mut(&key);
            assert!(slot.is_some(), "the ring and the map hold the same keys");
            if let Some(slot) = slot {
                if slot.referenced {
                    slot.referenced = false;
                    self.hand += 1;
                    continue;
                }
            }
            if let Some(slot) = self.map.remove(&key) {
                self.bytes -= slot.charge;
            }
            self.ring.swap_remove(self.hand);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sstable::block::{decode, BlockBuilder};
    use crate::sstable::Compression;
    use crate::types::{Record, Version};

    fn block(tag: u8) -> Rc<Block> {
        let mut b = BlockBuilder::new();
        b.add(
            &[tag],
            &Record::put(Version::new(1, 0, 1), vec![tag; 100], 0),
        );
        let mut out = Vec::new();
        b.finish(Compression::None, &mut out);
        Rc::new(decode(&out).expect("a fresh block decodes"))
    }

    #[test]
    fn cache_stays_within_its_budget_and_counts_hits() {
        let one = charge_of(&block(0));
        let cache = BlockCache::new(one * 3);
        for i in 0..10u8 {
            cache.insert(1, u64::from(i) * 4096, block(i));
            assert!(cache.stats().bytes <= cache.stats().capacity_bytes);
        }
        assert_eq!(cache.inner.borrow().ring.len(), 3);
        assert!(cache.get(1, 9 * 4096).is_some());
        assert!(cache.get(1, 0).is_none());
        assert_eq!((cache.stats().hits, cache.stats().misses), (1, 1));
    }

    #[test]
    fn clock_keeps_a_referenced_block_over_an_unreferenced_one() {
        let one = charge_of(&block(0));
        let cache = BlockCache::new(one * 2);
        cache.insert(1, 0, block(0));
        cache.insert(1, 4096, block(1));
        assert!(cache.get(1, 0).is_some());
        cache.insert(1, 8192, block(2));
        assert!(cache.peek(1, 0).is_some());
        assert!(cache.peek(1, 4096).is_none());
    }

    #[test]
    fn forget_file_drops_only_that_files_blocks() {
        let cache = BlockCache::new(1 << 20);
        for i in 0..4u8 {
            cache.insert(u64::from(i % 2), u64::from(i) * 4096, block(i));
        }
        cache.forget_file(0);
        assert!(cache.peek(0, 0).is_none() && cache.peek(0, 8192).is_none());
        assert!(cache.peek(1, 4096).is_some() && cache.peek(1, 3 * 4096).is_some());
        let expected: usize = cache.inner.borrow().map.values().map(|s| s.charge).sum();
        assert_eq!(cache.inner.borrow().ring.len(), 2);
        assert_eq!(cache.stats().bytes as usize, expected);
    }
}
