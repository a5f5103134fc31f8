//! The shard's row cache: for recently read keys, the record a point read
//! returns (the highest version across every memtable and table), so a
//! repeated read costs one hash lookup instead of memtable probes, bloom
//! checks, an index search and a block search.
//!
//! The idea is ScyllaDB's row cache (a read-through cache of merged rows in
//! front of the SSTables); a hit here is the same work as a Redis GET: hash
//! the key, compare it once, copy the value. Unlike Scylla's, it leaves the
//! keys of the active memtable to that memtable, which answers them as
//! cheaply (below).
//!
//! Invariants (the engine keeps them):
//! - No key the active memtable holds is cached. The active memtable answers
//!   a read of such a key as cheaply as the cache would, and an overwrite,
//!   the common write, then never touches the cache: keeping a cached copy
//!   current cost a SET two more cache misses (a sixth of its CPU at
//!   pipeline 16 once reads had filled the cache with the memtable's own
//!   records). A write of a key new to the active memtable
//!   [`forget`](RowCache::forget)s it here; a fill never caches a key the
//!   active memtable holds; a memtable switch starts an empty one. Keys
//!   read while in the active memtable (or forgotten here by its writes)
//!   are marked there, and its flush puts them back here with their
//!   records, unless a newer memtable holds them (`engine::flush`), so a
//!   flush does not leave its read keys to a table read.
//! - So a cached record is the highest-version record of its key across
//!   all the engine's sources: it is filled only with the merged result of
//!   a full read (or a frozen memtable's answer), re-merged with the
//!   memtables at fill time and dropped if the table set changed while the
//!   read waited for I/O (see `engine::read`), and any later write of the
//!   key lands in the active memtable, which forgets it here first.
//!
//! Compaction drops older versions (no effect here) and purges tombstones and
//! expired values nothing older hides: the engine makes the cache
//! [`forget`](RowCache::forget) those keys when the compaction installs, so
//! a read answers the same with or without the cache. One owner, one thread:
//! no locks.
//!
//! Layout, for few cache misses (a lookup in a table of millions of keys is
//! all misses, and every write makes one): an open-addressing table with
//! linear probing whose buckets own each entry's single block (header, key,
//! value), carved from huge-page chunks ([`EntrySlab`](crate::entry_slab),
//! so reaching an entry is a cache miss but not also a TLB miss). A hit
//! reads one bucket line and one entry; a miss usually
//! one bucket line. (A `hashbrown` table of slab indices cost four misses
//! per hit: control bytes, index, slab slot, key.) Deletion shifts later
//! entries back, so no tombstones accumulate.
//!
//! Growth never holds the shard: the table doubles in steps, each fill
//! doing one. First the larger table is made, and its memory faulted in, by
//! a thread of its own (or, if none can be started, zeroed here
//! [`ZERO_STEP_BUCKETS`] at a time), while the current one takes fills up
//! to [`LOAD_CEILING_EIGHTHS`] (beyond that a fill is not cached); then it
//! takes over, and the old one is drained into it, [`MOVE_STEP_ENTRIES`] at
//! a time, a lookup that finds its key there moving that entry first.
//! Doubling at once, as it did, held a shard 12, 31, 64 and 126 ms at the
//! last doublings of a cache filling to a million entries (glommio's stall
//! reports, GET at 150k/s): the new table's huge pages faulted in (in this
//! VM a fresh one cost up to tens of milliseconds; zeroed in steps here, a
//! step still held the shard 19-86 ms) and every entry re-placed.
//!
//! Bounded by a byte budget; evicted with CLOCK (second chance) over the
//! buckets, like the block cache (a table being drained is evicted first).
//! The entries' memory: the slab maps at most the budget's worth of chunks;
//! when blocks of the sizes in use have filled them (or an entry is over a
//! KiB), entries go to the heap, so the worst case of fragmentation is twice
//! the budget.

use crate::cache::CacheStats;
use crate::entry_slab::{EntrySlab, Stored, CHUNK_BYTES};
use crate::huge_pages::{advise_huge_pages, advise_normal_pages};
use crate::le::{u32_at, u64_at};
use crate::prefetch::prefetch_bytes;
use crate::types::{Record, RecordRef, Version};

/// Bookkeeping charged per entry besides its key and value bytes: its share
/// of the bucket array (at the lowest load), the header and the allocator's
/// rounding, estimated.
const ENTRY_OVERHEAD_BYTES: usize = 2 * std::mem::size_of::<Option<Slot>>() + HEADER_BYTES + 16;

/// Records larger than this share of the budget are not cached: one of them
/// would evict thousands of small ones for a single hit.
const MAX_ENTRY_SHARE: usize = 64;

/// Buckets of a new table.
const BUCKETS_INITIAL: usize = 1024;

/// The table starts to double when more than this share (numerator / 4) of
/// its buckets is taken: probes stay short.
const LOAD_MAX_QUARTERS: usize = 3;

/// Most of a table's buckets (numerator / 8) taken while the next table is
/// being zeroed; a fill past it is not cached until that table takes over.
const LOAD_CEILING_EIGHTHS: usize = 7;

/// Buckets of the next table one fill zeroes (384 KiB: a huge page's fault,
/// when the step reaches a new one, is the longest part of a step).
const ZERO_STEP_BUCKETS: usize = 16 * 1024;

/// Entries one fill moves from the table being drained into the current one.
const MOVE_STEP_ENTRIES: usize = 128;

/// Entry header: version hlc (8), expiry (8), version node (4), key length
/// (4), flags (1), padding to 32.
const HEADER_BYTES: usize = 32;
/// Keys whose buckets one prefetch pass hints before it reads them back.
const PREFETCH_CHUNK: usize = 32;

/// Buckets of a key's probe run a prefetch hints and looks through for its
/// entry: in a half-full table 94 % of keys sit within three of their home
/// bucket, in a three-quarters-full one 85 %.
const PREFETCH_RUN: usize = 3;

/// Bytes of an entry a prefetch hints: header and key, then the start of
/// the value (a longer value streams in behind it anyway).
const PREFETCH_ENTRY_BYTES: usize = 192;

const FLAG_TOMBSTONE: u8 = 1;
const FLAG_REFERENCED: u8 = 2;

/// One bucket: the low bits of the key's hash (its home bucket, and a cheap
/// first comparison) and the entry: header, then key, then value.
struct Slot {
    hash: u32,
    entry: Stored,
}

/// The entry of `key` and `record` (header, key, value), stored in `slab`.
///
/// # Safety
/// As for [`EntrySlab::store`]: the entry is released to `slab` or dropped
/// before `slab` is dropped or reset.
unsafe fn encode(slab: &mut EntrySlab, key: &[u8], record: RecordRef<'_>) -> Stored {
    let len = HEADER_BYTES + key.len() + record.value.map_or(0, <[u8]>::len);
    // SAFETY: passed on to the caller.
    unsafe { slab.store(len, |e| write_entry(e, key, record)) }
}

/// Writes the entry of `key` and `record` into `e` (exactly its size).
fn write_entry(e: &mut [u8], key: &[u8], record: RecordRef<'_>) {
    let value = record.value.unwrap_or_default();
    e[0..8].copy_from_slice(&record.version.hlc.to_le_bytes());
    e[8..16].copy_from_slice(&record.expires_at_ms.to_le_bytes());
    e[16..20].copy_from_slice(&record.version.node.to_le_bytes());
    // Keys are at most `limits::KEY_SIZE_MAX` bytes.
    e[20..24].copy_from_slice(&(key.len() as u32).to_le_bytes());
    e[24] = if record.value.is_none() {
        FLAG_TOMBSTONE
    } else {
        0
    };
    // A reused block holds old bytes: the padding is written too.
    e[25..HEADER_BYTES].fill(0);
    e[HEADER_BYTES..HEADER_BYTES + key.len()].copy_from_slice(key);
    e[HEADER_BYTES + key.len()..].copy_from_slice(value);
}

fn key_of(entry: &[u8]) -> &[u8] {
    let len = u32_at(entry, 20) as usize;
    &entry[HEADER_BYTES..HEADER_BYTES + len]
}

fn version_of(entry: &[u8]) -> Version {
    Version {
        hlc: u64_at(entry, 0),
        node: u32_at(entry, 16),
    }
}

fn record_ref_of(entry: &[u8]) -> RecordRef<'_> {
    let key_len = u32_at(entry, 20) as usize;
    RecordRef {
        version: version_of(entry),
        expires_at_ms: u64_at(entry, 8),
        value: (entry[24] & FLAG_TOMBSTONE == 0).then(|| &entry[HEADER_BYTES + key_len..]),
    }
}

fn charge_of(entry: &[u8]) -> usize {
    entry.len() - HEADER_BYTES + ENTRY_OVERHEAD_BYTES
}

/// What `key` and `record` would be charged.
fn charge_for(key: &[u8], record: RecordRef<'_>) -> usize {
    key.len() + record.value.map_or(0, <[u8]>::len) + ENTRY_OVERHEAD_BYTES
}

/// A byte-bounded map from key to its current record, for one shard.
pub struct RowCache {
    /// A power-of-two number of buckets (empty until the first fill).
    buckets: Vec<Option<Slot>>,
    /// The next table (twice as many buckets) while it is being made.
    next: NextTable,
    /// Whether a growth's next table is made by a thread of its own (tests
    /// turn it off to see the steps).
    tables_off_thread: bool,
    /// The table `buckets` replaced, while its entries move over.
    draining: Option<Draining>,
    /// Entries cached, in both tables.
    len: usize,
    hasher: ahash::RandomState,
    /// The CLOCK hand: the next bucket eviction looks at.
    hand: usize,
    bytes: usize,
    capacity_bytes: usize,
    /// Larger entries are not cached (a share of the budget).
    max_entry_bytes: usize,
    hits: u64,
    misses: u64,
    /// Where the entries' bytes live. Declared after `buckets`, so the
    /// entries are dropped before the chunks holding them are unmapped.
    slab: EntrySlab,
}

/// Chunks the slab of a cache of `capacity_bytes` may map: its budget's
/// worth (none below one chunk: a 2 MiB huge page for a smaller budget
/// would be most of its memory), so the entries' memory stays near the
/// budget; entries past it go to the heap.
fn slab_chunks_for(capacity_bytes: usize) -> usize {
    capacity_bytes / CHUNK_BYTES
}

/// Where a growth's next table comes from.
enum NextTable {
    /// No growth under way.
    Idle,
    /// Being made, and its memory faulted in, by a thread of its own.
    Coming(std::sync::mpsc::Receiver<EmptyTable>),
    /// Zeroed here a step per fill (no thread could be started).
    Zeroing(Vec<Option<Slot>>),
}

/// A table of empty buckets (all `None`), made on another thread.
struct EmptyTable(Vec<Option<Slot>>);

// SAFETY: every bucket of an `EmptyTable` is `None` (`EmptyTable::make`), and
// it is not changed until the shard's thread takes the table out: no
// `Stored`, the only part of a bucket tied to the shard's slab, crosses.
unsafe impl Send for EmptyTable {}

impl EmptyTable {
    /// `buckets` empty buckets, their memory faulted in (huge pages where
    /// the kernel gives them).
    fn make(buckets: usize) -> EmptyTable {
        let mut table = new_table(buckets);
        table.resize_with(buckets, || None);
        EmptyTable(table)
    }
}

/// Starts a thread making a table of `buckets` empty buckets; `None` if no
/// thread could be started. A table nobody takes any more (the cache was
/// dropped) is freed there.
fn make_table_off_thread(buckets: usize) -> Option<std::sync::mpsc::Receiver<EmptyTable>> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("ringkv-row-cache-table".into())
        .spawn(move || {
            crate::prefaulted::lower_priority_on_process_cpus();
            if let Err(unsent) = sender.send(EmptyTable::make(buckets)) {
                free_buckets(unsent.0 .0);
            }
        })
        .ok()?;
    Some(receiver)
}

/// A replaced table whose entries move to the current one a step at a time.
struct Draining {
    buckets: Vec<Option<Slot>>,
    /// Entries left in it.
    len: usize,
    /// Where the next step looks for an entry to move.
    cursor: usize,
}

impl Draining {
    /// Takes the next entry from the cursor on (the drain's and eviction's
    /// order); `None` once none is left. The cursor stays on a taken
    /// entry's bucket: the shift may have brought a later entry there.
    fn take_next(&mut self) -> Option<Slot> {
        if self.len == 0 {
            return None;
        }
        let mask = self.buckets.len() - 1;
        while self.buckets[self.cursor].is_none() {
            self.cursor = (self.cursor + 1) & mask;
        }
        let slot = take_at(&mut self.buckets, self.cursor)?;
        self.len -= 1;
        Some(slot)
    }
}

/// The bucket of `buckets` (a non-empty power-of-two table) holding `key`.
fn find_in(buckets: &[Option<Slot>], hash: u32, key: &[u8]) -> Option<usize> {
    let mask = buckets.len() - 1;
    let mut i = hash as usize & mask;
    loop {
        match &buckets[i] {
            None => return None,
            Some(slot) if slot.hash == hash && key_of(&slot.entry) == key => return Some(i),
            Some(_) => i = (i + 1) & mask,
        }
    }
}

/// Puts `slot` in the first free bucket of its probe run; its index. The
/// table must have a free bucket.
fn place_in(buckets: &mut [Option<Slot>], slot: Slot) -> usize {
    let mask = buckets.len() - 1;
    let mut i = slot.hash as usize & mask;
    while buckets[i].is_some() {
        i = (i + 1) & mask;
    }
    buckets[i] = Some(slot);
    i
}

/// Takes bucket `i`'s entry out of `buckets` and shifts the entries after it
/// back, so that every entry stays reachable from its home bucket.
fn take_at(buckets: &mut [Option<Slot>], mut i: usize) -> Option<Slot> {
    let taken = buckets[i].take()?;
    let mask = buckets.len() - 1;
    let mut j = i;
    loop {
        j = (j + 1) & mask;
        let Some(next) = &buckets[j] else {
            return Some(taken);
        };
        let home = next.hash as usize & mask;
        // `next` may move to the hole at `i` unless its home lies in the
        // cyclic range (i, j].
        let stays = if i <= j {
            i < home && home <= j
        } else {
            i < home || home <= j
        };
        if !stays {
            buckets[i] = buckets[j].take();
            i = j;
        }
    }
}

/// Frees a bucket table, first taking back its huge-page advice: the
/// allocator reuses the memory for anything, and an unrelated allocation
/// there would fault a whole 2 MiB page on first touch.
fn free_buckets(buckets: Vec<Option<Slot>>) {
    advise_normal_pages(&buckets);
    drop(buckets);
}

impl RowCache {
    /// A cache holding at most `capacity_bytes` (0 disables it).
    pub fn new(capacity_bytes: usize) -> Self {
        RowCache {
            buckets: Vec::new(),
            next: NextTable::Idle,
            tables_off_thread: true,
            draining: None,
            len: 0,
            hasher: ahash::RandomState::new(),
            hand: 0,
            bytes: 0,
            capacity_bytes,
            max_entry_bytes: capacity_bytes / MAX_ENTRY_SHARE,
            hits: 0,
            misses: 0,
            slab: EntrySlab::new(slab_chunks_for(capacity_bytes)),
        }
    }

    /// Whether the cache can hold anything.
    pub fn is_enabled(&self) -> bool {
        self.capacity_bytes > 0
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The bucket of the current table holding `key`, if cached there.
    /// Call only with buckets.
    fn find(&self, hash: u32, key: &[u8]) -> Option<usize> {
        find_in(&self.buckets, hash, key)
    }

    /// The bucket of the current table holding `key`, if cached: an entry
    /// still in the table being drained moves over first (or is dropped if
    /// the current table is at its ceiling: absent is always correct).
    /// Call only with buckets.
    fn locate(&mut self, hash: u32, key: &[u8]) -> Option<usize> {
        if let Some(i) = self.find(hash, key) {
            return Some(i);
        }
        let draining = self.draining.as_mut()?;
        let j = find_in(&draining.buckets, hash, key)?;
        let slot = take_at(&mut draining.buckets, j)?;
        draining.len -= 1;
        if self.current_len() >= self.ceiling() {
            self.release(slot);
            return None;
        }
        Some(place_in(&mut self.buckets, slot))
    }

    /// Entries in the current table.
    fn current_len(&self) -> usize {
        self.len - self.draining.as_ref().map_or(0, |d| d.len)
    }

    /// Most entries the current table takes.
    fn ceiling(&self) -> usize {
        self.buckets.len() * LOAD_CEILING_EIGHTHS / 8
    }

    /// Drops an entry taken out of a table, and its charge.
    fn release(&mut self, slot: Slot) {
        self.len -= 1;
        self.bytes -= charge_of(&slot.entry);
        // SAFETY: the entry was made by this slab (see `fill`).
        unsafe { self.slab.release(slot.entry) };
    }

    fn hash(&self, key: &[u8]) -> u32 {
        // The low bits pick the bucket; tables stay far below 2^32 buckets.
        self.hasher.hash_one(key) as u32
    }

    /// Starts loading, without waiting, the memory that `get` of each of
    /// `keys` will touch: the first [`PREFETCH_RUN`] buckets of the key's
    /// probe run, then the entry of the first of them that holds the key's
    /// hash. A hint for a batch of reads about to run; it changes nothing a
    /// later call returns. Costs one hash per key and a few bucket loads.
    ///
    /// Why a run and not the home bucket alone: a quarter of the keys of a
    /// half-full table sit past their home bucket (a collision displaced
    /// them), and a 24-byte bucket straddles two cache lines for two homes
    /// in eight; a hint of the home bucket's line and of whatever entry it
    /// held left those reads a full miss on the bucket's second line and
    /// another on the entry (`find` was 15 % of a GET P16 profile, two
    /// thirds of it waiting on the entry).
    pub fn prefetch(&self, keys: &[&[u8]]) {
        if self.len == 0 {
            return;
        }
        let mask = self.mask();
        let mut homes = [(0usize, 0u32); PREFETCH_CHUNK];
        for chunk in keys.chunks(PREFETCH_CHUNK) {
            // First every run's buckets, so their misses overlap; by the
            // time the second pass reads a bucket, its line has (mostly)
            // arrived.
            for (home, key) in homes.iter_mut().zip(chunk) {
                let hash = self.hash(key);
                *home = (hash as usize & mask, hash);
                self.prefetch_run(home.0);
            }
            for &(home, hash) in &homes[..chunk.len()] {
                if let Some(entry) = self.hinted_entry(home, hash) {
                    prefetch_bytes(entry.as_ptr(), entry.len().min(PREFETCH_ENTRY_BYTES));
                }
            }
        }
    }

    /// Starts loading, without waiting, the first [`PREFETCH_RUN`] buckets
    /// of `key`'s probe run (not its entry): a hint for a
    /// [`forget`](Self::forget) a little later. Changes nothing.
    pub fn prefetch_buckets(&self, key: &[u8]) {
        if self.len == 0 {
            return;
        }
        self.prefetch_run(self.hash(key) as usize & self.mask());
    }

    /// Starts loading the first [`PREFETCH_RUN`] buckets from `home`. Past
    /// the table's end the hint is simply not loaded; the run wraps to its
    /// start, which a read then waits for.
    fn prefetch_run(&self, home: usize) {
        let run = self.buckets.as_ptr().wrapping_add(home).cast::<u8>();
        prefetch_bytes(run, PREFETCH_RUN * std::mem::size_of::<Option<Slot>>());
    }

    /// The entry of the first of the [`PREFETCH_RUN`] buckets from `home`
    /// that holds `hash` (most likely the key's own), if the run reaches
    /// one before an empty bucket: what [`prefetch`](Self::prefetch) hints.
    fn hinted_entry(&self, home: usize, hash: u32) -> Option<&Stored> {
        let mask = self.mask();
        (0..PREFETCH_RUN)
            .map(|i| &self.buckets[(home + i) & mask])
            .take_while(|bucket| bucket.is_some())
            .flatten()
            .find(|slot| slot.hash == hash)
            .map(|slot| &slot.entry)
    }

    /// The cached record of `key` (a copy); counts a hit or a miss.
    pub fn get(&mut self, key: &[u8]) -> Option<Record> {
        let found = self.get_if_cached(key);
        if found.is_none() && self.is_enabled() {
            self.misses += 1;
        }
        found
    }

    /// Counts a miss that a caller answered without [`get`](Self::get)
    /// (from a memtable, say).
    pub fn count_miss(&mut self) {
        if self.is_enabled() {
            self.misses += 1;
        }
    }

    /// Like [`get`](Self::get), but a miss is not counted: for a caller
    /// that falls back to a full read, which counts it.
    pub fn get_if_cached(&mut self, key: &[u8]) -> Option<Record> {
        let entry = self.hit(key)?;
        Some(record_ref_of(entry).to_record())
    }

    /// Calls `f` with the cached record of `key`, borrowed (no copy of the
    /// value), and returns what it returns; `None` if not cached (a miss
    /// not counted, as in [`get_if_cached`](Self::get_if_cached)).
    pub fn with_cached<R>(&mut self, key: &[u8], f: impl FnOnce(RecordRef<'_>) -> R) -> Option<R> {
        let entry = self.hit(key)?;
        Some(f(record_ref_of(entry)))
    }

    /// The entry of `key` if cached, counted as a hit and marked referenced.
    fn hit(&mut self, key: &[u8]) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let hash = self.hash(key);
        let i = self.locate(hash, key)?;
        self.hits += 1;
        let slot = self.buckets[i].as_mut()?;
        slot.entry[24] |= FLAG_REFERENCED;
        Some(&slot.entry)
    }

    /// Caches `record` as the current record of `key` (after a full read),
    /// unless a higher or equal version is cached already. Evicts as needed;
    /// a record over the per-entry limit is not cached.
    pub fn fill(&mut self, key: &[u8], record: &Record) {
        self.fill_ref(key, RecordRef::from(record));
    }

    /// [`fill`](Self::fill) from a borrowed record (one a memtable holds,
    /// say): the cache copies what it keeps.
    pub fn fill_ref(&mut self, key: &[u8], record: RecordRef<'_>) {
        if !self.is_enabled() {
            return;
        }
        let hash = self.hash(key);
        if self.len > 0 {
            if let Some(i) = self.locate(hash, key) {
                self.raise(i, key, record);
                return;
            }
        }
        let charge = charge_for(key, record);
        if charge > self.max_entry_bytes {
            return;
        }
        while self.bytes + charge > self.capacity_bytes && self.len > 0 {
            self.evict_one();
        }
        self.grow_step();
        if self.current_len() >= self.ceiling() {
            // The next table is not ready yet: this fill is not cached.
            return;
        }
        // SAFETY: every entry is released to the slab or dropped before it
        // (`release`, `raise`, `clear`, and the field order on drop).
        let entry = unsafe { encode(&mut self.slab, key, record) };
        place_in(&mut self.buckets, Slot { hash, entry });
        self.len += 1;
        self.bytes += charge;
    }

    /// One step of the table's growth, if one is due or under way: make the
    /// first table; start the next one once the current one is three
    /// quarters full; zero a stretch of it; hand over to it once zeroed;
    /// move a few entries out of the table being drained.
    fn grow_step(&mut self) {
        if self.buckets.is_empty() {
            self.buckets = new_table(BUCKETS_INITIAL);
            self.buckets.resize_with(BUCKETS_INITIAL, || None);
            return;
        }
        if self.draining.is_some() {
            for _ in 0..MOVE_STEP_ENTRIES {
                let Some(slot) = self.draining.as_mut().and_then(Draining::take_next) else {
                    break;
                };
                // Drained at 128 entries a fill against one insert, the
                // current table stays far below its ceiling; dropping an
                // entry is what keeps it from ever filling up regardless.
                if self.current_len() > self.ceiling() {
                    self.release(slot);
                    continue;
                }
                place_in(&mut self.buckets, slot);
            }
            if self.draining.as_ref().is_some_and(|d| d.len == 0) {
                if let Some(done) = self.draining.take() {
                    free_buckets(done.buckets);
                }
            }
            return;
        }
        let target = self.buckets.len() * 2;
        let made = match &mut self.next {
            NextTable::Idle => {
                if (self.len + 1) * 4 > self.buckets.len() * LOAD_MAX_QUARTERS {
                    let coming = self
                        .tables_off_thread
                        .then(|| make_table_off_thread(target))
                        .flatten();
                    self.next = match coming {
                        Some(receiver) => NextTable::Coming(receiver),
                        None => NextTable::Zeroing(new_table(target)),
                    };
                }
                return;
            }
            NextTable::Coming(receiver) => match receiver.try_recv() {
                Ok(EmptyTable(table)) => table,
                Err(std::sync::mpsc::TryRecvError::Empty) => return,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    // The thread died without a table: zero one here.
                    self.next = NextTable::Zeroing(new_table(target));
                    return;
                }
            },
            NextTable::Zeroing(table) => {
                let zeroed = (table.len() + ZERO_STEP_BUCKETS).min(target);
                table.resize_with(zeroed, || None);
                if zeroed < target {
                    return;
                }
                std::mem::take(table)
            }
        };
        self.next = NextTable::Idle;
        let old = std::mem::replace(&mut self.buckets, made);
        self.draining = Some(Draining {
            buckets: old,
            len: self.len,
            cursor: 0,
        });
        self.hand = 0;
    }

    /// Replaces bucket `i`'s record with `record` if `record` is newer; in
    /// place when the size is unchanged (an overwrite of the same length
    /// allocates nothing).
    fn raise(&mut self, i: usize, key: &[u8], record: RecordRef<'_>) {
        let Some(slot) = self.buckets[i].as_mut() else {
            return;
        };
        if record.version <= version_of(&slot.entry) {
            return;
        }
        let old_charge = charge_of(&slot.entry);
        let value_len = record.value.map_or(0, <[u8]>::len);
        let referenced = slot.entry[24] & FLAG_REFERENCED;
        // SAFETY: the entry was made by this slab (see `fill`).
        unsafe {
            self.slab
                .replace(&mut slot.entry, HEADER_BYTES + key.len() + value_len, |e| {
                    write_entry(e, key, record)
                });
        }
        slot.entry[24] |= referenced;
        let new_charge = charge_of(&slot.entry);
        self.bytes = self.bytes - old_charge + new_charge;
        // A bigger value may take the budget over: make room, which may
        // evict this very entry (correct: absent is always safe).
        while self.bytes > self.capacity_bytes && self.len > 0 {
            self.evict_one();
        }
    }

    /// Drops `key`'s entry, if cached. Returns whether it was.
    pub fn forget(&mut self, key: &[u8]) -> bool {
        if self.len == 0 {
            return false;
        }
        let hash = self.hash(key);
        let Some(i) = self.locate(hash, key) else {
            return false;
        };
        self.remove_at(i);
        true
    }

    /// Removes bucket `i`'s entry of the current table (see [`take_at`]).
    fn remove_at(&mut self, i: usize) {
        if let Some(slot) = take_at(&mut self.buckets, i) {
            self.release(slot);
        }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        // The entries first (dropping one frees nothing of the slab), then
        // the slab's blocks, all at once: its chunks stay mapped, their huge
        // pages faulted in, for the refill.
        free_buckets(std::mem::take(&mut self.buckets));
        self.drop_next_table();
        if let Some(draining) = self.draining.take() {
            free_buckets(draining.buckets);
        }
        // SAFETY: every entry was just dropped.
        unsafe { self.slab.reset() };
        self.len = 0;
        self.hand = 0;
        self.bytes = 0;
    }

    /// Gives up a growth's next table, freed with its advice taken back.
    fn drop_next_table(&mut self) {
        match std::mem::replace(&mut self.next, NextTable::Idle) {
            NextTable::Idle => {}
            NextTable::Zeroing(table) => free_buckets(table),
            // A table already sent is freed here; one still being made is
            // freed by its thread, whose send now fails.
            NextTable::Coming(receiver) => {
                if let Ok(EmptyTable(table)) = receiver.try_recv() {
                    free_buckets(table);
                }
            }
        }
    }

    /// CLOCK: clears reference bits until it finds an unreferenced entry, and
    /// evicts it. Call only with at least one entry cached.
    fn evict_one(&mut self) {
        debug_assert!(self.len > 0);
        // The table being drained first: its entries were not read since
        // the growth began (a read moves its entry over).
        if let Some(slot) = self.draining.as_mut().and_then(Draining::take_next) {
            self.release(slot);
            return;
        }
        loop {
            if self.hand >= self.buckets.len() {
                self.hand = 0;
            }
            let index = self.hand;
            let Some(slot) = self.buckets[index].as_mut() else {
                self.hand += 1;
                continue;
            };
            if slot.entry[24] & FLAG_REFERENCED != 0 {
                slot.entry[24] &= !FLAG_REFERENCED;
                self.hand += 1;
                continue;
            }
            // The hand stays: the shift may move an unvisited entry here.
            self.remove_at(index);
            return;
        }
    }

    /// Entries cached now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
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

impl Drop for RowCache {
    fn drop(&mut self) {
        // The entries drop with the tables, before `slab` (field order).
        advise_normal_pages(&self.buckets);
        self.drop_next_table();
        if let Some(draining) = &self.draining {
            advise_normal_pages(&draining.buckets);
        }
    }
}

/// An empty table with room for `buckets` buckets, advised onto huge pages
/// (the bucket table is the other random read of a hit).
fn new_table(buckets: usize) -> Vec<Option<Slot>> {
    let table = Vec::with_capacity(buckets);
    advise_huge_pages(&table);
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Version;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A cache whose tables grow in steps on the caller's thread, so a test
    /// sees every fill cached (a table made off thread may come after fills
    /// that outran it reached the ceiling).
    fn in_step_cache(capacity_bytes: usize) -> RowCache {
        let mut c = RowCache::new(capacity_bytes);
        c.tables_off_thread = false;
        c
    }

    fn put(hlc: u64, value: &[u8]) -> Record {
        Record::put(Version::new(hlc, 0, 1), value.to_vec(), 0)
    }

    #[test]
    fn fill_then_hit_and_only_a_newer_record_replaces_the_cached_one() {
        let mut c = RowCache::new(1 << 20);
        assert!(c.get(b"a").is_none());
        c.fill(b"a", &put(5, b"five"));
        assert_eq!(c.get(b"a"), Some(put(5, b"five")));
        // An older record (a replica catching up) does not replace it.
        c.fill(b"a", &put(3, b"three"));
        assert_eq!(c.get(b"a"), Some(put(5, b"five")));
        c.fill(b"a", &Record::tombstone(Version::new(7, 0, 1)));
        assert!(c.get(b"a").is_some_and(|r| r.is_tombstone()));
        // A write forgets the key (the engine's rule): it is not found.
        c.forget(b"a");
        assert!(c.get(b"a").is_none());
        assert_eq!((c.stats().hits, c.stats().misses), (3, 2));
    }

    #[test]
    fn stays_within_budget_and_clock_keeps_the_referenced_entry() {
        let one = charge_for(b"k0", (&put(1, &[0; 100])).into());
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
        let gone = [b"k1", b"k2"]
            .iter()
            .filter(|k| c.get(&k[..]).is_none())
            .count();
        assert_eq!(gone, 1, "one unreferenced entry goes");
    }

    #[test]
    fn deletions_in_crowded_tables_keep_every_other_key_reachable() {
        let mut c = in_step_cache(1 << 30);
        let key = |i: u32| format!("key:{i:08}").into_bytes();
        for i in 0..20_000 {
            c.fill(&key(i), &put(u64::from(i) + 1, b"v"));
        }
        assert_eq!(c.len(), 20_000);
        // Forget every third key, in a scattered order (7919 is prime, so the
        // steps visit every index once).
        let mut i = 7u32;
        for _ in 0..20_000 {
            i = (i + 7919) % 20_000;
            if i % 3 == 0 {
                c.forget(&key(i));
            }
        }
        for i in 0..20_000 {
            let got = c.get(&key(i)).map(|r| r.version);
            let want = (i % 3 != 0).then(|| put(u64::from(i) + 1, b"v").version);
            assert_eq!(got, want, "key {i}");
        }
        assert_eq!(c.len(), (0..20_000).filter(|i| i % 3 != 0).count());
    }

    #[test]
    fn same_size_overwrites_update_in_place_and_sizes_follow_changes() {
        let mut c = RowCache::new(1 << 20);
        c.fill(b"k", &put(1, b"aaaa"));
        let bytes = c.stats().bytes;
        c.fill(b"k", &put(2, b"bbbb"));
        assert_eq!(c.get(b"k"), Some(put(2, b"bbbb")));
        assert_eq!(c.stats().bytes, bytes);
        c.fill(b"k", &put(3, b"cccccccc"));
        assert_eq!(c.get(b"k"), Some(put(3, b"cccccccc")));
        assert_eq!(c.stats().bytes, bytes + 4);
        c.fill(b"k", &Record::tombstone(Version::new(4, 0, 1)));
        assert!(c.get(b"k").is_some_and(|r| r.is_tombstone()));
        assert_eq!(c.stats().bytes, bytes - 4);
        c.forget(b"k");
        assert_eq!((c.len(), c.stats().bytes), (0, 0));
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

    #[test]
    fn a_hint_finds_the_entry_of_a_key_displaced_from_its_home_bucket() {
        let mut c = in_step_cache(1 << 24);
        let keys: Vec<Vec<u8>> = (0..20_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        for key in &keys {
            c.fill(key, &put(1, b"v"));
        }
        let mask = c.mask();
        let (mut displaced, mut hinted_displaced) = (0, 0);
        for key in &keys {
            let hash = c.hash(key);
            let home = hash as usize & mask;
            let at = c.find(hash, key).expect("cached");
            let entry = c.hinted_entry(home, hash);
            let distance = at.wrapping_sub(home) & mask;
            if distance < PREFETCH_RUN {
                // The key's own entry, unless a key nearer home shares
                // its 32 bits of hash.
                let named = entry.expect("a key within the run is hinted");
                let own = &c.buckets[at].as_ref().unwrap().entry;
                let nearer_same_hash = (0..distance)
                    .any(|i| c.buckets[(home + i) & mask].as_ref().unwrap().hash == hash);
                assert!(named.as_ptr() == own.as_ptr() || nearer_same_hash);
            }
            if distance > 0 {
                displaced += 1;
                hinted_displaced += usize::from(distance < PREFETCH_RUN && entry.is_some());
            }
        }
        assert!(
            displaced > 1000,
            "the table has displaced keys: {displaced}"
        );
        assert!(
            hinted_displaced * 2 > displaced,
            "{hinted_displaced} of {displaced}"
        );
    }

    #[test]
    fn prefetch_changes_no_answer_and_get_if_cached_counts_no_miss() {
        let mut c = RowCache::new(1 << 20);
        let absent: &[u8] = b"absent";
        c.prefetch(&[absent]); // an empty table: nothing to hint
        let keys: Vec<Vec<u8>> = (0..100).map(|i| format!("k{i}").into_bytes()).collect();
        for (i, k) in keys.iter().enumerate() {
            c.fill(k, &put(i as u64 + 1, k));
        }
        // More keys than one prefetch chunk, some absent.
        let mut hinted: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        hinted.push(absent);
        c.prefetch(&hinted);
        for (i, k) in keys.iter().enumerate() {
            let r = c.get_if_cached(k).expect("cached");
            assert_eq!(r, put(i as u64 + 1, k));
        }
        assert!(c.get_if_cached(absent).is_none());
        assert_eq!((c.hits, c.misses), (100, 0));
        assert!(c.get(absent).is_none());
        assert_eq!(c.misses, 1);
    }

    proptest! {
        /// Against a model map: whatever is cached is the newest version
        /// written or filled for that key, and the budget always holds.
        /// Values up to 1500 bytes: entries move between the slab's blocks
        /// and the heap (over `SLAB_ENTRY_MAX`) as their values change size.
        #[test]
        fn cached_records_are_always_the_newest(
            ops in proptest::collection::vec((0u8..4, 0u8..24, 1u64..50, 0usize..1500), 1..400),
            // Small budgets evict; 4 MiB ones put entries in the slab.
            budget in prop_oneof![2_000usize..40_000, Just(4 << 20)],
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
                        // A write: the engine forgets the key in the cache.
                        keep(&mut newest, &record);
                        c.forget(&key);
                    }
                    2 if hlc % 7 == 0 => {
                        c.forget(&key);
                    }
                    _ => {
                        if let Some(r) = c.get(&key) {
                            prop_assert_eq!(Some(&r), newest.get(&key));
                        }
                    }
                }
                prop_assert!(c.stats().bytes <= budget as u64);
                check_tables(&c)?;
            }
        }

        /// The same with keys enough for the table to double several times,
        /// so reads, writes, forgets and evictions meet entries still in a
        /// table being drained.
        #[test]
        fn cached_records_are_always_the_newest_while_the_table_grows(
            ops in proptest::collection::vec((0u8..4, 0u16..6000, 1u64..50), 1..6000),
            budget in prop_oneof![200_000usize..600_000, Just(64 << 20)],
        ) {
            let mut c = RowCache::new(budget);
            let mut newest: HashMap<Vec<u8>, Record> = HashMap::new();
            for (op, k, hlc) in ops {
                let key = k.to_le_bytes().to_vec();
                let record = put(hlc, &[b'v'; 40]);
                let mut keep = |r: &Record| {
                    let e = newest.entry(key.clone()).or_insert_with(|| r.clone());
                    if r.version > e.version {
                        *e = r.clone();
                    }
                    e.clone()
                };
                match op {
                    0 | 1 => {
                        let newer = keep(&record);
                        c.fill(&key, &newer);
                    }
                    2 => {
                        // A write: the engine forgets the key in the cache.
                        keep(&record);
                        c.forget(&key);
                    }
                    _ if hlc % 5 == 0 => {
                        c.forget(&key);
                    }
                    _ => {
                        if let Some(r) = c.get(&key) {
                            prop_assert_eq!(Some(&r), newest.get(&key));
                        }
                    }
                }
                prop_assert!(c.stats().bytes <= budget as u64);
            }
            check_tables(&c)?;
        }
    }

    /// The cache's tables agree with its counts, and every entry of each is
    /// reachable from its home bucket there.
    fn check_tables(c: &RowCache) -> Result<(), TestCaseError> {
        let draining = c.draining.as_ref().map_or(&[][..], |d| &d.buckets[..]);
        let drained_len = c.draining.as_ref().map_or(0, |d| d.len);
        prop_assert_eq!(drained_len, draining.iter().flatten().count());
        prop_assert_eq!(c.len(), c.buckets.iter().flatten().count() + drained_len);
        for table in [&c.buckets[..], draining] {
            for slot in table.iter().flatten() {
                prop_assert!(find_in(table, slot.hash, key_of(&slot.entry)).is_some());
            }
        }
        Ok(())
    }

    /// A fill never doubles the table at once: each zeroes at most
    /// `ZERO_STEP_BUCKETS` of the next table or moves at most
    /// `MOVE_STEP_ENTRIES` of a drained one. Every key stays readable
    /// throughout, from whichever table holds it, and a newer fill of a key
    /// still in the drained table reaches it.
    #[test]
    fn the_table_grows_a_step_per_fill_and_every_key_stays_readable() {
        let mut c = in_step_cache(1 << 30);
        let zeroed_of = |c: &RowCache| match &c.next {
            NextTable::Zeroing(t) => t.len(),
            _ => 0,
        };
        let key = |i: u32| format!("key:{i:08}").into_bytes();
        let mut refused = 0;
        let mut saw_draining = false;
        for i in 0..200_000u32 {
            let (zeroed, left) = (zeroed_of(&c), c.draining.as_ref().map_or(0, |d| d.len));
            let tables = c.buckets.len();
            c.fill(&key(i), &put(1, b"v"));
            if c.get_if_cached(&key(i)).is_none() {
                refused += 1;
            }
            let left_now = c.draining.as_ref().map_or(0, |d| d.len);
            if c.buckets.len() != tables {
                // The zeroed table took over: no entry moved yet.
                assert!(tables == 0 || c.buckets.len() == 2 * tables);
                assert!(tables == 0 || left_now == c.len() - 1, "fill {i}");
            } else {
                assert!(zeroed_of(&c) <= zeroed + ZERO_STEP_BUCKETS, "fill {i}");
                assert!(
                    left.saturating_sub(left_now) <= MOVE_STEP_ENTRIES + 1,
                    "fill {i}"
                );
            }
            if i % 997 == 0 && left_now > 0 {
                saw_draining = true;
                // A key still in the drained table: a newer fill reaches it.
                let d = c.draining.as_ref().unwrap();
                let slot = d.buckets.iter().flatten().next().unwrap();
                let old = key_of(&slot.entry).to_vec();
                c.fill(&old, &put(2, b"w"));
                assert_eq!(c.get(&old), Some(put(2, b"w")));
            }
        }
        assert!(saw_draining, "no fill found a table being drained");
        assert_eq!(refused, 0, "fills refused at the ceiling");
        for i in 0..200_000u32 {
            assert!(c.get(&key(i)).is_some(), "key {i}");
        }
        assert!(c.draining.is_none() || c.draining.as_ref().unwrap().len == 0);
    }

    /// With the next table made by a thread of its own, fills go on meanwhile
    /// (up to the ceiling), the table takes over once it arrives, and every
    /// key cached before, during and after reads back.
    #[test]
    fn a_table_made_off_thread_takes_over_and_every_key_stays_readable() {
        let mut c = RowCache::new(1 << 30);
        let key = |i: u32| format!("key:{i:08}").into_bytes();
        let mut cached = Vec::new();
        let mut i = 0u32;
        let mut grew_off_thread = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while i < 100_000 {
            let coming = matches!(c.next, NextTable::Coming(_));
            let tables = c.buckets.len();
            c.fill(&key(i), &put(1, b"v"));
            if c.get_if_cached(&key(i)).is_some() {
                cached.push(i);
            }
            if coming && c.buckets.len() == 2 * tables {
                grew_off_thread += 1;
            }
            if matches!(c.next, NextTable::Coming(_)) && c.current_len() >= c.ceiling() {
                // At the ceiling: give the thread time, as a shard would.
                assert!(std::time::Instant::now() < deadline, "no table came");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            i += 1;
        }
        assert!(grew_off_thread >= 5, "{grew_off_thread} growths off thread");
        assert!(cached.len() > 90_000, "{} of 100000 cached", cached.len());
        for &i in &cached {
            assert_eq!(c.get(&key(i)), Some(put(1, b"v")), "key {i}");
        }
        check_tables(&c).unwrap();
    }
}
