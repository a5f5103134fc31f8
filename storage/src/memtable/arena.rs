//! A memtable's entries: each key, its record's fields and its value in one
//! place, bump-allocated through chunks that are freed (or reused) whole.
//!
//! Why: an entry used to be four allocations (the key, the value, a record
//! slot and a key slot), so a flush walking keys in order read five or six
//! random cache lines per entry, and the core keeps only about ten misses in
//! flight: the flush was bound by them (perf/RESULTS.md, "Memory, not
//! code"). Here an entry is one run of bytes, two or three lines for a
//! 100-byte value, and the lines after the first come from the adjacent-line
//! prefetcher. A write allocates nothing from the global allocator, and a
//! flushed memtable is freed a chunk at a time instead of an allocation per
//! key.
//!
//! Chunks are 2 MiB for an engine's memtables, 64 KiB for small budgets. A
//! torn-down memtable hands its chunks to a [`ChunkPool`] the engine's next
//! memtables take them from, so a shard faults its memtable memory in while
//! its first memtables fill and not after. A new 2 MiB chunk is a huge page
//! faulted in by the prefaulter's thread when one is ready ([`Prefaulter`]),
//! else heap memory on small pages. Huge pages cut SET's TLB misses (+10 %
//! SET P16: perf/RESULTS.md, "Hints that follow the probe run, and the
//! memtable on huge pages"); taken in the shard's own thread, each first
//! touch was a 3 ms stall in the request path ("A memtable arena"), hence
//! the thread.
//!
//! An entry's layout (little-endian, 8-byte aligned):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | version: hybrid logical clock |
//! | 8..12 | version: node |
//! | 12..16 | key length |
//! | 16..24 | expiry (ms since the epoch, 0 = never) |
//! | 24..28 | value length, or `u32::MAX` for a tombstone |
//! | 28..32 | room: bytes after the header the entry owns (key + value) |
//! | 32.. | key, then value |
//!
//! Entries are written only through `&mut Arena`, so no reader's borrow can
//! see one change; an overwrite that fits the entry's room reuses it (an
//! overwrite of the same size, the common case, grows nothing).

use crate::huge_pages::{HugeRegion, HUGE_PAGE_BYTES};
use crate::le::{u32_at, u64_at};
use crate::prefaulted::Prefaulter;
use crate::types::{RecordRef, Version};
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::rc::Rc;

/// Bytes of an entry's header.
pub(crate) const HEADER_BYTES: usize = 32;

/// Entries start at multiples of this many bytes.
const ENTRY_ALIGN: usize = 8;

/// The value length that marks a tombstone.
const TOMBSTONE: u32 = u32::MAX;

/// Bytes of a chunk of an engine's memtables: one huge page, so a chunk
/// can be a prefaulted huge region.
const LARGE_CHUNK_BYTES: usize = HUGE_PAGE_BYTES;

/// Budgets from which memtables take large chunks; a smaller memtable
/// (tests, a hint store) would hold most of a 2 MiB chunk empty.
const LARGE_CHUNK_BUDGET_MIN: usize = 4 * LARGE_CHUNK_BYTES;

/// Bytes of a chunk for the memtables under that budget.
const SMALL_CHUNK_BYTES: usize = 64 << 10;

/// An entry larger than a chunk's share `1 / OVERSIZE_SHARE` gets its own
/// allocation: a chunk's tail skipped for it is at most that share wasted.
const OVERSIZE_SHARE: usize = 4;

/// Bytes an entry of `key_len` and `value_len` takes in an arena.
pub(crate) fn entry_bytes(key_len: usize, value_len: usize) -> usize {
    (HEADER_BYTES + key_len + value_len).next_multiple_of(ENTRY_ALIGN)
}

/// A heap allocation of whole words, uninitialized (the arena writes every
/// byte it reads), freed on drop. Kept as a raw pointer (not a `Box`)
/// because entries point into it while it is moved around.
#[derive(Debug)]
struct HeapBlock {
    words: NonNull<[MaybeUninit<u64>]>,
}

impl HeapBlock {
    /// A block of at least `bytes` bytes (at least one word). Not zeroed: a
    /// reused allocation would be cleared in the request path for nothing.
    fn new(bytes: usize) -> HeapBlock {
        let words = Box::<[u64]>::new_uninit_slice(bytes.div_ceil(8).max(1));
        HeapBlock {
            words: NonNull::from(Box::leak(words)),
        }
    }

    fn base(&self) -> NonNull<u8> {
        self.words.cast()
    }

    fn len(&self) -> usize {
        self.words.len() * 8
    }
}

impl Drop for HeapBlock {
    fn drop(&mut self) {
        // SAFETY: `words` came from `Box::leak` in `new` and is freed once,
        // here; the arena's contract keeps entries from outliving it.
        drop(unsafe { Box::from_raw(self.words.as_ptr()) });
    }
}

/// Memory an arena carves entries from: a huge region faulted in ahead of
/// need (see [`Prefaulter`]) when one is ready, else a heap block.
#[derive(Debug)]
enum Chunk {
    Heap(HeapBlock),
    Huge(HugeRegion),
}

impl Chunk {
    fn base(&self) -> NonNull<u8> {
        match self {
            Chunk::Heap(block) => block.base(),
            Chunk::Huge(region) => region.base(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Chunk::Heap(block) => block.len(),
            Chunk::Huge(_) => HUGE_PAGE_BYTES,
        }
    }
}

#[derive(Debug)]
struct PoolState {
    /// Bytes of each chunk this pool hands out.
    chunk_bytes: usize,
    /// The budget of the memtables this pool serves.
    budget_bytes: usize,
    /// The emptied key vectors of a torn-down memtable, for the next one
    /// (see [`ChunkPool::keep_key_vectors`]).
    key_vectors: Option<super::KeyVectors>,
    /// Memtables that took kept key vectors.
    key_vectors_reused: u64,
    /// Chunks given back and not yet taken again.
    idle: Vec<Chunk>,
    /// Most idle chunks kept; past it, a chunk given back is freed.
    idle_max: usize,
    /// Where new large chunks come from when one is ready.
    prefaulter: Option<&'static Prefaulter>,
    /// New chunks taken from `prefaulter`.
    huge_taken: u64,
}

/// The chunks of one engine's memtables: a torn-down memtable gives its
/// chunks back, and the next memtables take them before new ones are
/// allocated, so memory is faulted in once, not once per memtable. Holds at
/// most its `kept_bytes` idle (chunks given back past that are freed). A
/// cheap handle: clones share the pool. Single thread.
#[derive(Clone, Debug)]
pub struct ChunkPool(Rc<RefCell<PoolState>>);

impl ChunkPool {
    /// A pool for memtables of `budget_bytes` that keeps up to
    /// `kept_bytes` of chunks idle: 2 MiB chunks when the budget holds at
    /// least four, else 64 KiB ones.
    pub fn for_budget(budget_bytes: usize, kept_bytes: usize) -> ChunkPool {
        let large = budget_bytes >= LARGE_CHUNK_BUDGET_MIN;
        let chunk_bytes = if large {
            LARGE_CHUNK_BYTES
        } else {
            SMALL_CHUNK_BYTES
        };
        ChunkPool(Rc::new(RefCell::new(PoolState {
            chunk_bytes,
            budget_bytes,
            key_vectors: None,
            key_vectors_reused: 0,
            idle: Vec::new(),
            idle_max: kept_bytes / chunk_bytes,
            // Started with the first large pool, so regions are ready by
            // the first writes.
            prefaulter: if large { Prefaulter::global() } else { None },
            huge_taken: 0,
        })))
    }

    /// Chunks held idle for the next memtables.
    pub fn idle_chunks(&self) -> usize {
        self.0.borrow().idle.len()
    }

    fn chunk_bytes(&self) -> usize {
        self.0.borrow().chunk_bytes
    }

    /// An idle chunk, or a new one: for large chunks, a huge region already
    /// faulted in if the prefaulter has one ready, else a heap block (its
    /// small pages fault in as entries fill it).
    fn take(&self) -> Chunk {
        let mut pool = self.0.borrow_mut();
        if let Some(chunk) = pool.idle.pop() {
            return chunk;
        }
        let huge = pool.prefaulter.and_then(Prefaulter::try_take);
        match huge {
            Some(region) => {
                pool.huge_taken += 1;
                Chunk::Huge(region)
            }
            None => Chunk::Heap(HeapBlock::new(pool.chunk_bytes)),
        }
    }

    /// How many new chunks this pool took from the prefaulter (the rest of
    /// those it made are heap blocks).
    pub fn huge_chunks_taken(&self) -> u64 {
        self.0.borrow().huge_taken
    }

    /// The budget of the memtables this pool serves.
    pub(crate) fn budget_bytes(&self) -> usize {
        self.0.borrow().budget_bytes
    }

    /// Keeps `vectors` (emptied) for the next memtable, unless the pool
    /// already holds a set: at most one is kept, so a pool holds at most
    /// one memtable's key vectors besides those in use.
    pub(crate) fn keep_key_vectors(&self, vectors: super::KeyVectors) {
        let mut pool = self.0.borrow_mut();
        if pool.key_vectors.is_none() {
            pool.key_vectors = Some(vectors);
        }
    }

    /// The key vectors kept by [`keep_key_vectors`](Self::keep_key_vectors),
    /// if they are the size a memtable for `keys` keys is made with (kept
    /// vectors of another size are freed).
    pub(crate) fn take_key_vectors(&self, keys: usize) -> Option<super::KeyVectors> {
        let mut pool = self.0.borrow_mut();
        let kept = pool.key_vectors.take().filter(|kept| kept.fit(keys));
        pool.key_vectors_reused += u64::from(kept.is_some());
        kept
    }

    /// Memtables that took the key vectors of one torn down before them,
    /// rather than fresh memory.
    pub fn key_vectors_reused(&self) -> u64 {
        self.0.borrow().key_vectors_reused
    }

    /// Whether the pool holds a set of key vectors for the next memtable.
    pub fn holds_key_vectors(&self) -> bool {
        self.0.borrow().key_vectors.is_some()
    }

    /// Keeps `chunk` for the next memtables, or frees it when enough are
    /// idle.
    fn give_back(&self, chunk: Chunk) {
        let mut pool = self.0.borrow_mut();
        if pool.idle.len() < pool.idle_max {
            pool.idle.push(chunk);
        }
    }
}

/// Where one entry lives in an [`Arena`]. Plain data: only the arena that
/// stored it can read it (see [`Arena::entry`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryPtr(NonNull<u8>);

impl EntryPtr {
    /// The entry's address as a number (kept in the memtable's key index),
    /// its provenance exposed so [`from_bits`](Self::from_bits) can rebuild it.
    pub(crate) fn to_bits(self) -> u64 {
        self.0.as_ptr().expose_provenance() as u64
    }

    /// The entry whose [`to_bits`](Self::to_bits) gave `bits`.
    ///
    /// # Safety
    ///
    /// `bits` came from `to_bits` of an entry of an arena that is still
    /// alive (reading it then is as safe as through the original pointer).
    pub(crate) unsafe fn from_bits(bits: u64) -> EntryPtr {
        let at = std::ptr::with_exposed_provenance_mut::<u8>(bits as usize);
        // SAFETY: the caller's contract: an entry's address, never null.
        EntryPtr(unsafe { NonNull::new_unchecked(at) })
    }

    /// Hints into the cache every line holding one of the first `bytes`
    /// bytes of the entry at `bits` (from [`to_bits`](Self::to_bits); any
    /// number is harmless: a hint never faults). Changes nothing.
    pub(crate) fn prefetch_bits(bits: u64, bytes: usize) {
        crate::prefetch::prefetch_bytes(std::ptr::without_provenance::<u8>(bits as usize), bytes);
    }
}

/// One memtable's entry memory. Entries stay where they are stored until
/// the arena is dropped or taken apart: pointers to them ([`EntryPtr`]) are
/// stable, and a key's bytes never change after it is stored.
#[derive(Debug)]
pub(crate) struct Arena {
    pool: ChunkPool,
    /// The pool's chunk size (read once: `alloc` runs for every write).
    chunk_bytes: usize,
    /// Chunks in use; entries are carved from the last one.
    chunks: Vec<Chunk>,
    /// Offset of the first free byte of the last chunk.
    next: usize,
    /// Entries too large for a chunk, each in its own allocation.
    oversize: Vec<HeapBlock>,
    /// Bytes taken: entries, chunk tails skipped, oversize allocations.
    used: usize,
}

impl Arena {
    /// The pool the arena takes its chunks from.
    pub(crate) fn pool(&self) -> &ChunkPool {
        &self.pool
    }

    /// An empty arena taking its chunks from `pool`; takes none yet.
    pub(crate) fn new(pool: ChunkPool) -> Arena {
        Arena {
            chunk_bytes: pool.chunk_bytes(),
            pool,
            chunks: Vec::new(),
            next: 0,
            oversize: Vec::new(),
            used: 0,
        }
    }

    /// Bytes of memory the arena's entries take (what a memtable budget
    /// charges for them).
    pub(crate) fn used_bytes(&self) -> usize {
        self.used
    }

    /// `bytes` (a multiple of [`ENTRY_ALIGN`]) for a new entry, aligned and
    /// owned by the arena until it is dropped. Contents unspecified.
    fn alloc(&mut self, bytes: usize) -> NonNull<u8> {
        if bytes > self.chunk_bytes / OVERSIZE_SHARE {
            let block = HeapBlock::new(bytes);
            let base = block.base();
            self.used += block.len();
            self.oversize.push(block);
            return base;
        }
        let room = self.chunks.last().map_or(0, |c| c.len() - self.next);
        if bytes > room {
            // The tail is skipped: counted as used, since it is held.
            self.used += room;
            self.chunks.push(self.pool.take());
            self.next = 0;
        }
        let chunk = self.chunks.last().expect("a chunk was just pushed");
        // SAFETY: `next + bytes <= chunk.len()` (checked above; a fresh
        // chunk holds at least a quarter's worth), so the result is inside
        // the chunk.
        let at = unsafe { chunk.base().add(self.next) };
        self.next += bytes;
        self.used += bytes;
        at
    }

    /// Stores `key` and `record` in a new entry.
    ///
    /// # Panics
    ///
    /// If the key and value take more than `u32::MAX - 7` bytes (the
    /// header's 32-bit fields; this also keeps a value's length off the
    /// tombstone mark), before anything is allocated.
    pub(crate) fn store(&mut self, key: &[u8], record: RecordRef<'_>) -> EntryPtr {
        let value_len = record.value.map_or(0, <[u8]>::len);
        let bytes = entry_bytes(key.len(), value_len);
        // `room` is a multiple of 8, so at most `u32::MAX - 7`: the key
        // and value lengths fit their fields and no value length is
        // `TOMBSTONE`.
        assert!(
            bytes - HEADER_BYTES <= u32::MAX as usize,
            "a memtable entry under 4 GiB"
        );
        let at = self.alloc(bytes);
        // SAFETY: `alloc` handed out these `bytes` bytes to this entry alone
        // and nothing refers to them yet. They are cleared first (a chunk's
        // memory is not initialized), so the slice covers initialized bytes,
        // the padding after the value included.
        let entry = unsafe {
            at.as_ptr().write_bytes(0, bytes);
            std::slice::from_raw_parts_mut(at.as_ptr(), bytes)
        };
        write_entry(entry, key, record);
        EntryPtr(at)
    }

    /// Writes `record` over the record of `entry` (keeping its key) when it
    /// fits the entry's room; returns whether it did. When it does not, the
    /// entry is unchanged.
    ///
    /// # Safety
    ///
    /// `entry` was returned by this arena's [`store`](Self::store), and
    /// [`release_some`](Self::release_some) has not been called since.
    pub(crate) unsafe fn overwrite(&mut self, entry: EntryPtr, record: RecordRef<'_>) -> bool {
        // SAFETY: the caller's contract.
        let h = unsafe { header(entry) };
        let value_len = record.value.map_or(0, <[u8]>::len);
        if entry_bytes(h.key_len, value_len) > HEADER_BYTES + h.room {
            return false;
        }
        // SAFETY: the caller's contract; `&mut self` means no reader holds
        // a view of the entry. The two slices cover the header and the
        // room after the key, never the key's bytes: an `OrderedKey` may
        // point at those, and a `&mut` over them would invalidate it
        // (Stacked Borrows; found by Miri).
        let (head, value_area) = unsafe {
            let at = entry.0.as_ptr();
            (
                std::slice::from_raw_parts_mut(at, HEADER_BYTES),
                std::slice::from_raw_parts_mut(
                    at.add(HEADER_BYTES + h.key_len),
                    h.room - h.key_len,
                ),
            )
        };
        write_record(head, value_area, h.key_len, h.room, record);
        true
    }

    /// The key and record stored at `entry`, borrowed from the arena.
    ///
    /// # Safety
    ///
    /// `entry` was returned by this arena's [`store`](Self::store), and
    /// [`release_some`](Self::release_some) has not been called since.
    pub(crate) unsafe fn entry(&self, entry: EntryPtr) -> (&[u8], RecordRef<'_>) {
        // SAFETY: the caller's contract: the entry lies in memory this
        // arena owns, written by `store` or `overwrite` (its header, then
        // `room` bytes), and unchanged while `&self` is borrowed.
        let h = unsafe { header(entry) };
        let bytes: &[u8] =
            unsafe { std::slice::from_raw_parts(entry.0.as_ptr(), HEADER_BYTES + h.room) };
        let key = &bytes[HEADER_BYTES..HEADER_BYTES + h.key_len];
        let value = (h.value_len != TOMBSTONE).then(|| {
            let start = HEADER_BYTES + h.key_len;
            &bytes[start..start + h.value_len as usize]
        });
        let record = RecordRef {
            version: h.version,
            expires_at_ms: h.expires_at_ms,
            value,
        };
        (key, record)
    }

    /// The key stored at `entry`.
    ///
    /// # Safety
    ///
    /// As for [`entry`](Self::entry).
    pub(crate) unsafe fn key(&self, entry: EntryPtr) -> &[u8] {
        // SAFETY: the caller's contract.
        unsafe { self.entry(entry) }.0
    }

    /// Hints into the cache every line holding one of the first `bytes`
    /// bytes of `entry`. Never faults; changes nothing.
    pub(crate) fn prefetch(entry: EntryPtr, bytes: usize) {
        crate::prefetch::prefetch_bytes(entry.0.as_ptr(), bytes);
    }

    /// Frees up to `max` chunks' worth of the arena's memory: oversize
    /// entries first (each counted as the chunks it spans, at least one),
    /// then chunks given back to its pool (or freed). Returns whether
    /// anything is left. For a memtable freed in steps: every
    /// [`EntryPtr`] of this arena is dangling once this is called (the
    /// contracts of [`entry`](Self::entry) and
    /// [`overwrite`](Self::overwrite) exclude it).
    pub(crate) fn release_some(&mut self, max: usize) -> bool {
        let chunk_bytes = self.chunk_bytes;
        let mut budget = max;
        while budget > 0 {
            let Some(block) = self.oversize.pop() else {
                break;
            };
            budget = budget.saturating_sub(block.len().div_ceil(chunk_bytes));
        }
        for _ in 0..budget {
            match self.chunks.pop() {
                Some(chunk) => self.pool.give_back(chunk),
                None => break,
            }
        }
        self.next = self.chunks.last().map_or(0, Chunk::len);
        !self.chunks.is_empty() || !self.oversize.is_empty()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        while self.release_some(usize::MAX) {}
    }
}

/// The fixed fields of an entry.
struct Header {
    version: Version,
    key_len: usize,
    expires_at_ms: u64,
    value_len: u32,
    room: usize,
}

/// The header of `entry`.
///
/// # Safety
///
/// `entry` points at a live entry written by `write_entry`.
unsafe fn header(entry: EntryPtr) -> Header {
    // SAFETY: the caller's contract; every entry has a full header.
    let h = unsafe { std::slice::from_raw_parts(entry.0.as_ptr(), HEADER_BYTES) };
    Header {
        version: Version {
            hlc: u64_at(h, 0),
            node: u32_at(h, 8),
        },
        key_len: u32_at(h, 12) as usize,
        expires_at_ms: u64_at(h, 16),
        value_len: u32_at(h, 24),
        room: u32_at(h, 28) as usize,
    }
}

/// Writes `key` and `record` into `entry` (at least their
/// [`entry_bytes`]); the room recorded is all of `entry` past the header.
fn write_entry(entry: &mut [u8], key: &[u8], record: RecordRef<'_>) {
    let room = entry.len() - HEADER_BYTES;
    let (head, rest) = entry.split_at_mut(HEADER_BYTES);
    let (key_area, value_area) = rest.split_at_mut(key.len());
    key_area.copy_from_slice(key);
    write_record(head, value_area, key.len(), room, record);
}

/// Writes `record` into an entry of `key_len` bytes of key and `room`
/// bytes after its header: the header into `head`, the value into
/// `value_area` (the room after the key). The key is not touched.
fn write_record(
    head: &mut [u8],
    value_area: &mut [u8],
    key_len: usize,
    room: usize,
    record: RecordRef<'_>,
) {
    let value = record.value.unwrap_or_default();
    let value_len = match record.value {
        Some(v) => u32::try_from(v.len())
            .ok()
            .filter(|&n| n != TOMBSTONE)
            .expect("a memtable value under 4 GiB"),
        None => TOMBSTONE,
    };
    let field = |n: usize| u32::try_from(n).expect("a memtable entry under 4 GiB");
    let h = &mut head[..HEADER_BYTES];
    h[0..8].copy_from_slice(&record.version.hlc.to_le_bytes());
    h[8..12].copy_from_slice(&record.version.node.to_le_bytes());
    h[12..16].copy_from_slice(&field(key_len).to_le_bytes());
    h[16..24].copy_from_slice(&record.expires_at_ms.to_le_bytes());
    h[24..28].copy_from_slice(&value_len.to_le_bytes());
    h[28..32].copy_from_slice(&field(room).to_le_bytes());
    value_area[..value.len()].copy_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: &[u8]) -> RecordRef<'_> {
        RecordRef {
            version: Version { hlc: 1, node: 2 },
            expires_at_ms: 3,
            value: Some(value),
        }
    }

    /// A large pool's new chunk is a region the prefaulter faulted in when
    /// one is ready, and entries stored in it read back; a small pool's
    /// never is.
    #[test]
    fn a_large_pools_new_chunk_is_a_prefaulted_huge_region_when_one_is_ready() {
        let prefaulter = Prefaulter::global().expect("a prefault thread");
        // Other tests take regions from the same prefaulter: retry until
        // this one's take finds one ready, for 20 s at most.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let (pool, mut arena) = loop {
            assert!(std::time::Instant::now() < deadline, "no region ready");
            prefaulter.wait_ready(1);
            let pool = ChunkPool::for_budget(64 << 20, 64 << 20);
            let mut arena = Arena::new(pool.clone());
            arena.store(b"first", rec(b"v"));
            if pool.huge_chunks_taken() == 1 {
                break (pool, arena);
            }
        };
        assert!(matches!(arena.chunks[0], Chunk::Huge(_)));
        let entries: Vec<_> = (0..1000u32)
            .map(|i| (arena.store(&i.to_be_bytes(), rec(&[i as u8; 100])), i))
            .collect();
        for (entry, i) in entries {
            // SAFETY: stored by this arena, which is alive and unchanged.
            let (key, record) = unsafe { arena.entry(entry) };
            assert_eq!(
                (key, record.value),
                (&i.to_be_bytes()[..], Some(&[i as u8; 100][..]))
            );
        }
        drop(arena);
        assert_eq!(pool.idle_chunks(), 1, "the huge chunk is kept for reuse");
        let small = ChunkPool::for_budget(1 << 20, 1 << 20);
        Arena::new(small.clone()).store(b"k", rec(b"v"));
        assert_eq!(small.huge_chunks_taken(), 0);
    }

    /// An entry exactly filling the rest of a chunk stays in it; the next
    /// takes a new chunk with no tail to skip. One 8 bytes too large skips
    /// the tail, which is charged.
    #[test]
    fn an_entry_exactly_filling_a_chunks_rest_stays_in_it() {
        let mut a = Arena::new(ChunkPool::for_budget(0, 0));
        let chunk = SMALL_CHUNK_BYTES;
        let quarter = chunk / OVERSIZE_SHARE;
        // Three quarters, then 64 bytes short of the fourth.
        let mut stored = Vec::new();
        for i in 0..3u8 {
            let v = vec![i; quarter - HEADER_BYTES - 1];
            stored.push((a.store(&[i], rec(&v)), vec![i], v));
        }
        let v = vec![9; quarter - 64 - HEADER_BYTES - 1];
        stored.push((a.store(&[9], rec(&v)), vec![9], v));
        assert_eq!(a.next, chunk - 64);
        // Exactly the rest: 32 + 1 + 31.
        let v = vec![7; 31];
        stored.push((a.store(&[7], rec(&v)), vec![7], v));
        assert_eq!((a.chunks.len(), a.next, a.used), (1, chunk, chunk));
        // The next one: a new chunk, nothing skipped.
        let v = vec![6; 7];
        stored.push((a.store(&[6], rec(&v)), vec![6], v));
        assert_eq!((a.chunks.len(), a.next, a.used), (2, 40, chunk + 40));
        // Fill to 40 short of the end, then store 48: the 40 are skipped.
        for (i, bytes) in [quarter, quarter, quarter, chunk - 80 - 3 * quarter]
            .into_iter()
            .enumerate()
        {
            let v = vec![5; bytes - HEADER_BYTES - 1];
            stored.push((a.store(&[i as u8 + 100], rec(&v)), vec![i as u8 + 100], v));
        }
        assert_eq!(a.next, chunk - 40);
        let v = vec![4; 48 - HEADER_BYTES - 1];
        stored.push((a.store(&[4], rec(&v)), vec![4], v));
        assert_eq!((a.chunks.len(), a.next), (3, 48));
        assert_eq!(a.used, 2 * chunk + 48, "the 40-byte tail is charged");
        for (entry, key, value) in &stored {
            // SAFETY: stored by `a`.
            let (k, r) = unsafe { a.entry(*entry) };
            assert_eq!((k, r.value), (&key[..], Some(&value[..])));
            assert_eq!((r.version.node, r.expires_at_ms), (2, 3));
        }
    }

    /// `release_some` in steps, then the drop, hand every chunk back once
    /// and free the oversize blocks with the first step.
    #[test]
    fn release_some_then_drop_gives_back_each_chunk_once() {
        let pool = ChunkPool::for_budget(1 << 20, 1 << 20);
        let mut a = Arena::new(pool.clone());
        let v = vec![1u8; 16_000];
        for _ in 0..12 {
            a.store(b"k", rec(&v));
        }
        a.store(b"big", rec(&[2; 20_000]));
        assert_eq!((a.chunks.len(), a.oversize.len()), (3, 1));
        // The oversize block is the first step's chunk's worth.
        assert!(a.release_some(1));
        assert_eq!((a.chunks.len(), a.oversize.len()), (3, 0));
        assert!(a.release_some(1));
        assert_eq!(a.chunks.len(), 2);
        assert_eq!(pool.idle_chunks(), 1);
        drop(a);
        assert_eq!(pool.idle_chunks(), 3);
    }

    /// An in-place overwrite keeps the key and the room, whatever it was
    /// (a tombstone included), and refuses a record over the room without
    /// changing the entry.
    #[test]
    fn overwrite_keeps_the_key_and_refuses_what_does_not_fit() {
        let mut a = Arena::new(ChunkPool::for_budget(0, 0));
        let e = a.store(b"key", rec(&[1; 13])); // 32 + 3 + 13 = 48
        let tomb = RecordRef {
            version: Version { hlc: 9, node: 9 },
            expires_at_ms: 0,
            value: None,
        };
        // SAFETY (all): `e` was stored by `a`.
        assert!(unsafe { a.overwrite(e, tomb) });
        assert_eq!(unsafe { a.entry(e) }, (&b"key"[..], tomb));
        assert!(unsafe { a.overwrite(e, rec(&[2; 13])) });
        assert_eq!(unsafe { a.entry(e) }, (&b"key"[..], rec(&[2; 13])));
        assert!(!unsafe { a.overwrite(e, rec(&[3; 14])) });
        assert_eq!(unsafe { a.entry(e) }, (&b"key"[..], rec(&[2; 13])));
        assert!(unsafe { a.overwrite(e, rec(&[])) });
        assert_eq!(unsafe { a.entry(e) }, (&b"key"[..], rec(&[])));
        assert_eq!(a.used_bytes(), 48);
    }
}
