//! The memtable: the ordered, in-memory part of one shard's LSM tree.
//!
//! Owns the most recent writes (those not yet flushed to an L0 table), one
//! record per key: the record with the highest [`Version`] seen for that key
//! (last-write-wins, ties keep the record already stored, so replaying a WAL in
//! order is deterministic).
//!
//! Invariants:
//! - Single owner, single thread: plain maps, no concurrent structure.
//! - Every key and its record live in one entry of the memtable's [`Arena`]
//!   (key, record fields and value together: see the arena's module doc),
//!   and the key's slot in `entries` (insertion order) points at it. A
//!   hash index ([`KeyIndex`]) maps the key to its slot and to its entry's
//!   address (the same as the slot's, kept in the bucket so a lookup does
//!   not read the slot: one miss fewer per write in a large memtable): a
//!   point read costs one hash and one comparison instead of a B-tree walk
//!   of ~40 `memcmp`s, which took a third of the server's CPU per GET.
//! - Key order is not kept on insert: a B-tree insert per new key took a
//!   quarter of a SET's CPU, and most memtables are never scanned. The flush
//!   sorts the slots in runs of plain [`FlushKey`]s ([`Memtable::sorted_run`],
//!   merged by [`RunMerge`]); the first scan builds `order` the same way, a
//!   step at a time with the shard's requests served between steps (see
//!   [`Memtable::install_order`]), and each later scan first adds the keys
//!   inserted since to a B-tree beside the sorted keys
//!   ([`Memtable::catch_up_order`]): inserts never pay for the order.
//! - Keys in order carry their first 16 bytes inline (`prefixes`,
//!   [`FlushKey`]): most comparisons end on that integer without reading
//!   the entry.
//! - `approximate_bytes` is the memory the arena's entries take plus a fixed
//!   charge per key for the index and slot vectors; the engine freezes the
//!   memtable when it passes its budget. An overwrite that fits the entry's
//!   room is done in place; a larger one moves the entry and the old one
//!   stays charged until the memtable is freed.
//! - A frozen memtable (handed to a flush) is never mutated again; readers may
//!   keep reading it while it is flushed.
//!
//! It does not do I/O, decide when to freeze, or drop tombstones: tombstones and
//! expired values stay until compaction purges them from the tables.

mod arena;

pub use arena::ChunkPool;

use crate::key_index::{Emptying, Hit, KeyIndex, Probe};
use crate::types::{Record, RecordRef, Version};
use arena::{Arena, EntryPtr};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::ptr::NonNull;

/// A key in a scanned memtable's order (its `order` set): its first 16
/// bytes as a big-endian integer (zero-padded), then the whole key. Orders
/// exactly as the key bytes do: the prefixes compare like the keys' first
/// 16 bytes, and equal prefixes fall back to the full comparison (which
/// also settles padding ties such as `b"a"` against `b"a\0"`). It also names
/// the key's slot, so a range read finds the record without a hash lookup.
///
/// The key is a pointer to bytes the key does not own: the key bytes of an
/// arena entry (stored once, never changed, never freed while the memtable
/// lives; the set is dropped with it), or, for a search bound, the caller's
/// key for the length of the search. Private to this module, which makes
/// no other.
#[derive(Clone, Debug)]
struct OrderedKey {
    prefix: u128,
    key: NonNull<[u8]>,
    slot: usize,
}

fn prefix_of(key: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = key.len().min(16);
    bytes[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(bytes)
}

impl OrderedKey {
    /// # Safety
    ///
    /// `key`'s bytes outlive the result and every clone of it, and nothing
    /// writes them (or makes a `&mut` over them) meanwhile.
    unsafe fn new(key: &[u8], slot: usize) -> Self {
        OrderedKey {
            prefix: prefix_of(key),
            key: NonNull::from(key),
            slot,
        }
    }

    fn key(&self) -> &[u8] {
        // SAFETY: the type's invariant: the bytes outlive every OrderedKey
        // made from them, and nothing writes them meanwhile.
        unsafe { self.key.as_ref() }
    }
}

/// A scanned memtable's key order: the keys it held when the order was
/// built, as a sorted vector of [`FlushKey`]s, and the keys inserted since,
/// in a B-tree. A key is in one of the two (a slot is inserted once). Why
/// two: building a B-tree of every key at once held the shard for its whole
/// build (about 150 ms for 1M keys, the first DBSIZE or SCAN of a loaded
/// shard; 91 ms even from keys already sorted); the sorted vector is what a
/// flush's runs merge into, built a step at a time, and installs without a
/// copy.
///
/// Inserts do not keep it: a B-tree insert per new key cut the inserts of a
/// memtable that had been scanned once (one `INFO` or `DBSIZE`) from 740k to
/// 440k SETs a second. The order covers slots `0..covered`; a scan first
/// adds the slots inserted since ([`Memtable::catch_up_order`]).
#[derive(Debug, Default)]
struct KeyOrder {
    sorted: Vec<FlushKey>,
    added: BTreeSet<OrderedKey>,
    /// Slots below this are in `sorted` or `added`.
    covered: usize,
}

impl KeyOrder {
    /// The slots of up to `max` keys after `start`, in key order; `key_at`
    /// gives a slot's key.
    fn slots_from<'m>(
        &self,
        start: &Bound<OrderedKey>,
        max: usize,
        key_at: impl Fn(usize) -> &'m [u8],
    ) -> Vec<usize> {
        // How a sorted key compares with a key of the B-tree or a bound.
        let cmp = |a: &FlushKey, b: &OrderedKey| {
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| key_at(a.slot).cmp(b.key()))
        };
        let from = match start {
            Bound::Included(k) => self.sorted.partition_point(|x| cmp(x, k).is_lt()),
            Bound::Excluded(k) => self.sorted.partition_point(|x| cmp(x, k).is_le()),
            Bound::Unbounded => 0,
        };
        let mut sorted = self.sorted[from..].iter().peekable();
        // The end is unbounded, so `range` cannot panic on an inverted range.
        let mut added = self
            .added
            .range((start.clone(), Bound::Unbounded))
            .peekable();
        let mut slots = Vec::with_capacity(max.min(self.sorted.len() + self.added.len()));
        while slots.len() < max {
            let slot = match (sorted.peek(), added.peek()) {
                (Some(a), Some(b)) if cmp(a, b).is_gt() => added.next().map(|k| k.slot),
                (Some(_), _) => sorted.next().map(|k| k.slot),
                (None, _) => added.next().map(|k| k.slot),
            };
            let Some(slot) = slot else { break };
            slots.push(slot);
        }
        slots
    }

    /// Adds up to `max` of the slots from `covered` up to `len` (those
    /// inserted since the order last covered them); `key_at` gives a slot's
    /// key. Returns how many are left.
    fn catch_up<'m>(
        &mut self,
        len: usize,
        max: usize,
        key_at: impl Fn(usize) -> &'m [u8],
    ) -> usize {
        let end = len.min(self.covered.saturating_add(max));
        for slot in self.covered..end {
            // SAFETY: the keys `key_at` gives are arena bytes, which live as
            // long as the memtable (the order is dropped first) and never
            // change.
            self.added
                .insert(unsafe { OrderedKey::new(key_at(slot), slot) });
        }
        self.covered = end;
        len - end
    }
}

/// What [`Memtable::put`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The key was not in this memtable; now it is, with this record.
    Added,
    /// The key was here with a lower version; this record replaced it.
    Replaced,
    /// The key was here with an equal or higher version, which stays.
    KeptNewer,
}

/// A key's place in a flush's order: its first 16 bytes as an integer (as
/// in [`OrderedKey`]) and its record slot. Plain data: sorting and merging
/// these never touches the key's shared allocation (cloning an
/// [`OrderedKey`] bumps its reference count, a cache miss per key that took
/// most of a flush's sort). Equal prefixes are settled by the memtable's
/// whole keys ([`Memtable::flush_order`]).
#[derive(Clone, Copy, Debug)]
pub struct FlushKey {
    prefix: u128,
    slot: usize,
}

/// How many keys ahead of the one it takes [`RunMerge`] hints a run's memory:
/// four cache lines of 32-byte keys.
const RUN_PREFETCH_AHEAD: usize = 8;

/// Merges sorted runs of distinct keys of one memtable (from
/// [`Memtable::sorted_run`]) into one ascending sequence, ordered by
/// [`Memtable::flush_order`] (so each call takes the memtable whose keys
/// settle equal prefixes). A tree of losers (Knuth's replacement selection):
/// each key taken costs one compare per level, log2(runs) in all, where a
/// binary heap's sift costs two per level.
pub struct RunMerge {
    runs: Vec<std::vec::IntoIter<FlushKey>>,
    /// The next key of each run; `None` once the run is spent (above every key).
    heads: Vec<Option<FlushKey>>,
    /// With `n` runs: node 0 holds the run of the smallest head (the winner);
    /// nodes 1..n are the tree's inner nodes, each holding the run that lost
    /// the match there. Run `r` is the leaf at node `n + r`; a node's parent
    /// is at half its index.
    tree: Vec<usize>,
}

impl RunMerge {
    /// A merge of `runs` of `memtable`'s keys, each sorted ascending.
    pub fn new(runs: Vec<Vec<FlushKey>>, memtable: &Memtable) -> Self {
        let mut runs: Vec<_> = runs.into_iter().map(Vec::into_iter).collect();
        let heads = runs.iter_mut().map(Iterator::next).collect();
        let mut merge = RunMerge {
            runs,
            heads,
            tree: Vec::new(),
        };
        let n = merge.runs.len();
        if n > 0 {
            merge.tree = vec![0; n];
            let winner = merge.play(1, memtable);
            merge.tree[0] = winner;
        }
        merge
    }

    /// Plays the matches below `node`, recording each loser; returns the winner.
    fn play(&mut self, node: usize, memtable: &Memtable) -> usize {
        let n = self.runs.len();
        if node >= n {
            return node - n;
        }
        let left = self.play(2 * node, memtable);
        let right = self.play(2 * node + 1, memtable);
        let (winner, loser) = if self.beats(right, left, memtable) {
            (right, left)
        } else {
            (left, right)
        };
        self.tree[node] = loser;
        winner
    }

    /// Whether run `a`'s head comes before run `b`'s (a spent run's never does).
    fn beats(&self, a: usize, b: usize, memtable: &Memtable) -> bool {
        match (&self.heads[a], &self.heads[b]) {
            (Some(x), Some(y)) => memtable.flush_order(x, y) == Ordering::Less,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// The next key in order, or `None` once every run is spent.
    pub fn next(&mut self, memtable: &Memtable) -> Option<FlushKey> {
        let n = self.runs.len();
        let &run = self.tree.first()?;
        let key = self.heads[run]?;
        let rest = &mut self.runs[run];
        self.heads[run] = rest.next();
        // Each run is read a key at a time, one run after another at random:
        // too many streams for the hardware to follow, so the next key of a
        // run was a miss (65 % of the merge's time). Hint a few lines ahead.
        if let Some(ahead) = rest.as_slice().get(RUN_PREFETCH_AHEAD) {
            crate::prefetch::prefetch_line(ahead);
        }
        // Replay the run's path to the root against the losers stored on it.
        let mut winner = run;
        let mut node = (n + run) / 2;
        while node > 0 {
            let stored = self.tree[node];
            if self.beats(stored, winner, memtable) {
                self.tree[node] = winner;
                winner = stored;
            }
            node /= 2;
        }
        self.tree[0] = winner;
        Some(key)
    }

    /// Up to `max` next keys in order, appended to `out`.
    pub fn next_stretch(&mut self, memtable: &Memtable, max: usize, out: &mut Vec<FlushKey>) {
        for _ in 0..max {
            match self.next(memtable) {
                Some(k) => out.push(k),
                None => return,
            }
        }
    }
}

impl PartialEq for OrderedKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for OrderedKey {}

impl PartialOrd for OrderedKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.key().cmp(other.key()))
    }
}

/// A range bound for the ordered set from a plain key (the set's search key;
/// the slot takes no part in the order). Valid while `start`'s key lives.
///
/// # Safety
///
/// The bound is dropped before `start`'s key (it is a search key only).
unsafe fn bound_of(start: Bound<&[u8]>) -> Bound<OrderedKey> {
    // SAFETY: the caller's contract.
    start.map(|k| unsafe { OrderedKey::new(k, 0) })
}

/// Bytes of an entry [`Memtable::prefetch`] hints: a 32-byte header, a key
/// and about 100 bytes of value (a longer value streams in behind).
const PREFETCH_ENTRY_BYTES: usize = 160;

/// Fixed charge per key to the budget besides its entry: its index buckets
/// (16 bytes each, at most three quarters full, presized: 21-43 bytes per
/// key once the memtable is full), its slot's pointer and its key prefix
/// (both presized too: 24 bytes). An estimate, so the budget tracks real
/// memory use. It also sets the presized capacity
/// ([`Memtable::presize_keys`]): a charge of 48 bytes (with 8-byte buckets)
/// gave a 64 MiB memtable an index twice as large as it needed, and
/// faulting its pages in under writers added 1-6 ms stalls.
const KEY_OVERHEAD_BYTES: usize = 72;

/// Most keys a memtable is sized for up front (see
/// [`Memtable::presize_keys`]): about 56 MiB of address space for the index
/// (32 MiB) and slot vectors, of which only the pages used are touched.
pub const PRESIZE_KEYS_MAX: usize = 1 << 20;

/// An ordered map from key to its highest-version record.
#[derive(Debug)]
pub struct Memtable {
    /// Each key's slot in `entries`. Its own index rather than a
    /// `hashbrown` map: an insert hashes and probes once, and a batch can
    /// hint its keys' buckets before it runs (see [`KeyIndex`]).
    slots: KeyIndex,
    /// Each key's entry in `arena`, in insertion order.
    entries: Vec<EntryPtr>,
    /// Each key's first 16 bytes as an integer ([`prefix_of`]), at its
    /// slot: a flush sorts these without reading the entries.
    prefixes: Vec<u128>,
    /// The key order, built by the first scan and caught up by later ones.
    /// Declared before `arena`, whose key bytes it points at.
    order: RefCell<Option<KeyOrder>>,
    /// Every entry's bytes.
    arena: Arena,
    max_version: Version,
    /// A bit per slot: the key was read here (see
    /// [`get_marking_read`](Self::get_marking_read)). 128 KiB for a million
    /// keys, grown as marks come.
    read_marks: Vec<u64>,
}

impl Default for Memtable {
    fn default() -> Self {
        Self::new()
    }
}

impl Memtable {
    /// An empty memtable with a pool of its own (heap chunks); an engine's
    /// memtables share one ([`with_capacity`](Self::with_capacity)).
    pub fn new() -> Self {
        Self::with_capacity(0, ChunkPool::for_budget(0, 0))
    }

    /// An empty memtable with room for `keys` keys before its index and
    /// slot vectors regrow, taking its entries' memory from `pool`, and its
    /// index and slot vectors too when the pool holds a set of that size
    /// (see [`KeyVectors`]).
    pub fn with_capacity(keys: usize, pool: ChunkPool) -> Self {
        let KeyVectors {
            slots,
            entries,
            prefixes,
        } = pool.take_key_vectors(keys).unwrap_or_else(|| KeyVectors {
            slots: KeyIndex::with_capacity(keys),
            entries: Vec::with_capacity(keys),
            prefixes: Vec::with_capacity(keys),
        });
        Memtable {
            slots,
            entries,
            prefixes,
            order: RefCell::new(None),
            arena: Arena::new(pool),
            max_version: Version::ZERO,
            read_marks: Vec::new(),
        }
    }

    /// How many keys a memtable of `budget_bytes` can hold before it is
    /// frozen (every key is charged at least its overhead and an entry
    /// header), capped at [`PRESIZE_KEYS_MAX`]. Sized for this from the
    /// start, a memtable never regrows under writers: each doubling of its
    /// index and slot vectors rehashed or copied every key at once, 12-13
    /// ms at 260k keys.
    pub fn presize_keys(budget_bytes: usize) -> usize {
        (budget_bytes / (arena::entry_bytes(0, 0) + KEY_OVERHEAD_BYTES) + 1).min(PRESIZE_KEYS_MAX)
    }

    /// Bytes a new key's entry is charged in the memtable budget.
    pub fn entry_bytes<'r>(key: &[u8], record: impl Into<RecordRef<'r>>) -> usize {
        let value_len = record.into().value.map_or(0, <[u8]>::len);
        arena::entry_bytes(key.len(), value_len) + KEY_OVERHEAD_BYTES
    }

    /// The entry at `slot`.
    fn entry(&self, slot: usize) -> (&[u8], RecordRef<'_>) {
        // SAFETY: every pointer in `entries` came from this memtable's
        // arena's `store`.
        unsafe { self.arena.entry(self.entries[slot]) }
    }

    /// Whether the index value `bits` names the entry of `key`. A value is
    /// 0 only for the moment between a new key's bucket and its entry (an
    /// entry that failed to be stored leaves it so): never a key.
    fn holds_key(arena: &Arena, bits: u64, key: &[u8]) -> bool {
        // SAFETY: every value in the index other than 0 came from `to_bits`
        // of an entry of this memtable's arena, which lives as long as it.
        bits != 0 && unsafe { arena.key(EntryPtr::from_bits(bits)) } == key
    }

    /// The key at `slot`.
    fn key_at(&self, slot: usize) -> &[u8] {
        // SAFETY: as in `entry`.
        unsafe { self.arena.key(self.entries[slot]) }
    }

    /// Stores `record` for `key` unless the memtable already holds a record of
    /// an equal or higher version. Returns whether the record was stored.
    pub fn insert<'r>(&mut self, key: &[u8], record: impl Into<RecordRef<'r>>) -> bool {
        self.put(key, record) != Put::KeptNewer
    }

    /// [`insert`](Self::insert), saying whether `key` was new to this
    /// memtable: what the engine needs to keep the row cache away from keys
    /// the active memtable holds.
    pub fn put<'r>(&mut self, key: &[u8], record: impl Into<RecordRef<'r>>) -> Put {
        let record = record.into();
        let hash = self.slots.hash(key);
        let arena = &self.arena;
        let probe = self.slots.find_or_insert(
            hash,
            |bits| Self::holds_key(arena, bits, key),
            self.entries.len(),
        );
        let put = match probe {
            Probe::Found(hit) => {
                // SAFETY: a found value names an entry (`holds_key`).
                let entry = unsafe { EntryPtr::from_bits(hit.value) };
                // SAFETY: as in `entry`.
                if unsafe { self.arena.entry(entry) }.1.version >= record.version {
                    return Put::KeptNewer;
                }
                // SAFETY: as in `entry`.
                if !unsafe { self.arena.overwrite(entry, record) } {
                    // The old entry stays where it is (a key in `order`
                    // may point at its key bytes) until the arena goes.
                    let moved = self.arena.store(key, record);
                    self.entries[hit.slot] = moved;
                    self.slots.set_value(&hit, moved.to_bits());
                }
                Put::Replaced
            }
            Probe::Inserted(hit) => {
                let entry = self.arena.store(key, record);
                self.slots.set_value(&hit, entry.to_bits());
                self.entries.push(entry);
                self.prefixes.push(prefix_of(key));
                // The key order, if built, takes the slot at the next scan
                // (see `KeyOrder`).
                Put::Added
            }
        };
        self.max_version = self.max_version.max(record.version);
        put
    }

    /// The index hit of `key`, if held.
    fn find(&self, key: &[u8]) -> Option<Hit> {
        let hash = self.slots.hash(key);
        self.slots
            .find(hash, |bits| Self::holds_key(&self.arena, bits, key))
    }

    /// The record of the entry a hit of [`find`](Self::find) names.
    fn record_of_hit(&self, hit: &Hit) -> RecordRef<'_> {
        // SAFETY: a found value names an entry of this memtable's arena
        // (`holds_key`), which lives as long as it.
        unsafe { self.arena.entry(EntryPtr::from_bits(hit.value)) }.1
    }

    /// The record stored for `key` (a value, an expired value or a tombstone).
    pub fn get(&self, key: &[u8]) -> Option<RecordRef<'_>> {
        let hit = self.find(key)?;
        Some(self.record_of_hit(&hit))
    }

    /// [`get`](Self::get), marking the key as read here: the engine puts the
    /// records of marked keys into the row cache once this memtable is
    /// flushed (see [`read_marked`](Self::read_marked)), as the cache keeps
    /// out of the active memtable's keys until then.
    pub fn get_marking_read(&mut self, key: &[u8]) -> Option<RecordRef<'_>> {
        let hit = self.find(key)?;
        self.mark_read_slot(hit.slot);
        Some(self.record_of_hit(&hit))
    }

    /// Marks `key`, if held, as read here (see
    /// [`get_marking_read`](Self::get_marking_read)).
    pub fn mark_read(&mut self, key: &[u8]) {
        if let Some(hit) = self.find(key) {
            self.mark_read_slot(hit.slot);
        }
    }

    fn mark_read_slot(&mut self, slot: usize) {
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        if word >= self.read_marks.len() {
            self.read_marks.resize(word + 1, 0);
        }
        self.read_marks[word] |= bit;
    }

    /// Calls `f` with the keys marked as read here and their records, in
    /// slot order from slot `from` on, at most `max` of them. Returns the
    /// slot to go on from (`None`: no more).
    pub fn read_marked<'m>(
        &'m self,
        from: usize,
        max: usize,
        mut f: impl FnMut(&'m [u8], RecordRef<'m>),
    ) -> Option<usize> {
        let mut slot = from;
        let mut taken = 0;
        while slot < self.entries.len().min(self.read_marks.len() * 64) {
            let word = self.read_marks[slot / 64] >> (slot % 64);
            if word == 0 {
                slot = (slot / 64 + 1) * 64;
                continue;
            }
            slot += word.trailing_zeros() as usize;
            if slot >= self.entries.len() {
                break;
            }
            if taken == max {
                return Some(slot);
            }
            let (key, record) = self.entry(slot);
            f(key, record);
            taken += 1;
            slot += 1;
        }
        None
    }

    /// Starts loading, without waiting, the index buckets that looking up or
    /// inserting each of `keys` starts from: a hint for a batch of requests
    /// about to run, so their cache misses overlap. Changes nothing.
    pub fn prefetch_keys(&self, keys: &[&[u8]]) {
        for key in keys {
            self.slots.prefetch(self.slots.hash(key));
        }
    }

    /// Starts loading, without waiting, the entries that writing each of
    /// `keys` will read, when its index bucket (hinted first by
    /// [`prefetch_keys`](Self::prefetch_keys), a while before) names one:
    /// an overwrite compares the stored key and version, a miss per write
    /// otherwise. Reads each key's bucket, so call it once those hints had
    /// time to land. Calls `unseen` with each key whose bucket names no
    /// entry of its hash: most likely new to this memtable. Changes nothing.
    pub fn prefetch_entries<'k>(&self, keys: &[&'k [u8]], mut unseen: impl FnMut(&'k [u8])) {
        for &key in keys {
            match self.slots.hinted_value(self.slots.hash(key)) {
                // The header and the key: what the overwrite compares.
                Some(bits) => EntryPtr::prefetch_bits(bits, arena::HEADER_BYTES + key.len()),
                None => unseen(key),
            }
        }
    }

    /// Starts loading, without waiting, the entries that reading each of
    /// `keys` will copy, when its index bucket (hinted first by
    /// [`prefetch_keys`](Self::prefetch_keys), a while before) names one:
    /// header, key and the first [`PREFETCH_ENTRY_BYTES`] of it in all.
    /// Reads each key's bucket, so call it once those hints had time to
    /// land. Changes nothing.
    pub fn prefetch_records(&self, keys: &[&[u8]]) {
        if self.is_empty() {
            return;
        }
        for key in keys {
            if let Some(bits) = self.slots.hinted_value(self.slots.hash(key)) {
                EntryPtr::prefetch_bits(
                    bits,
                    PREFETCH_ENTRY_BYTES.max(arena::HEADER_BYTES + key.len()),
                );
            }
        }
    }

    /// The key at `key`'s place (from [`sorted_run`](Self::sorted_run)).
    pub fn key_of(&self, key: &FlushKey) -> &[u8] {
        self.key_at(key.slot)
    }

    /// The record at `key`'s place (from [`sorted_run`](Self::sorted_run)):
    /// no hash lookup.
    pub fn record_of(&self, key: &FlushKey) -> RecordRef<'_> {
        self.entry(key.slot).1
    }

    /// The order of two keys of this memtable: by their prefixes, and by
    /// the whole keys when the prefixes are equal. Exactly the keys' byte
    /// order.
    pub fn flush_order(&self, a: &FlushKey, b: &FlushKey) -> Ordering {
        a.prefix
            .cmp(&b.prefix)
            .then_with(|| self.key_at(a.slot).cmp(self.key_at(b.slot)))
    }

    /// Starts loading, without waiting, the memory that reading `keys`
    /// (from [`sorted_run`](Self::sorted_run)) and their records will touch:
    /// a flush walks keys in order, which is random in memory, so it hints
    /// a stretch of them first and their misses overlap. Changes nothing.
    pub fn prefetch(&self, keys: &[FlushKey]) {
        for k in keys {
            if let Some(&entry) = self.entries.get(k.slot) {
                Arena::prefetch(entry, PREFETCH_ENTRY_BYTES);
            }
        }
    }

    /// Whether the key order scans read is built (by a first scan, or by
    /// [`install_order`](Self::install_order)).
    pub fn has_order(&self) -> bool {
        self.order.borrow().is_some()
    }

    /// Installs the key order from `sorted`: the memtable's first
    /// `sorted.len()` slots in key order, each once (its
    /// [`sorted_run`](Self::sorted_run)s merged by [`RunMerge`], which a
    /// caller can do a stretch at a time). Slots inserted since are added
    /// by [`catch_up_order`](Self::catch_up_order). Building the order at
    /// once in the first scan held the shard for the whole sort (about 150
    /// ms for 1M keys). Does nothing when an order is already there.
    pub fn install_order(&self, sorted: Vec<FlushKey>) {
        let mut order = self.order.borrow_mut();
        if order.is_none() {
            let covered = sorted.len();
            *order = Some(KeyOrder {
                sorted,
                added: BTreeSet::new(),
                covered,
            });
        }
    }

    /// Adds up to `max` of the slots inserted since the key order last
    /// covered them; returns how many are left (0 also when no order is
    /// built). A scan calls it a stretch at a time before it reads, so
    /// that inserts never pay for the order.
    pub fn catch_up_order(&self, max: usize) -> usize {
        match self.order.borrow_mut().as_mut() {
            Some(order) => order.catch_up(self.entries.len(), max, |slot| self.key_at(slot)),
            None => 0,
        }
    }

    /// Up to `max` entries with keys after `start`, in key order, cloned so the
    /// caller can hold them across an `.await` without borrowing the memtable.
    /// When no order is installed yet (the engine's scans install one first,
    /// a step at a time), the first call builds it at once; slots inserted
    /// since the order last covered them are added first (the engine's
    /// scans do that a step at a time too).
    pub fn entries_from(&self, start: Bound<&[u8]>, max: usize) -> Vec<(Vec<u8>, Record)> {
        let mut order = self.order.borrow_mut();
        let order = order.get_or_insert_with(KeyOrder::default);
        order.catch_up(self.entries.len(), usize::MAX, |slot| self.key_at(slot));
        // SAFETY: the bound is dropped within this call, which `start`
        // outlives.
        let start = unsafe { bound_of(start) };
        order
            .slots_from(&start, max, |slot| self.key_at(slot))
            .into_iter()
            .map(|slot| {
                let (key, record) = self.entry(slot);
                (key.to_vec(), record.to_record())
            })
            .collect()
    }

    /// Every entry in key order (sorts the slots: for tests and tools, not
    /// the serving path).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], RecordRef<'_>)> {
        let mut slots: Vec<usize> = (0..self.entries.len()).collect();
        slots.sort_unstable_by(|&a, &b| self.key_at(a).cmp(self.key_at(b)));
        slots.into_iter().map(|slot| self.entry(slot))
    }

    /// Slots `start..start + max` of the insertion order, sorted: one run of
    /// a flush, which sorts the memtable a run at a time (yielding between
    /// runs) and merges the runs with [`RunMerge`].
    pub fn sorted_run(&self, start: usize, max: usize) -> Vec<FlushKey> {
        let end = start.saturating_add(max).min(self.prefixes.len());
        let mut run: Vec<FlushKey> = (start.min(end)..end)
            .map(|slot| FlushKey {
                prefix: self.prefixes[slot],
                slot,
            })
            .collect();
        run.sort_unstable_by(|a, b| self.flush_order(a, b));
        run
    }

    /// Bytes charged to the budget: the arena's entries (see
    /// [`Memtable::entry_bytes`]) and the per-key overhead.
    pub fn approximate_bytes(&self) -> usize {
        self.arena.used_bytes() + self.entries.len() * KEY_OVERHEAD_BYTES
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The highest version of any record ever inserted (for version pruning).
    pub fn max_version(&self) -> Version {
        self.max_version
    }

    /// Consumes the memtable into a [`Teardown`] that frees it a stretch at a
    /// time. Dropping a flushed memtable of ~270k entries at once held its
    /// shard for 13-15 ms when each entry was its own allocations; its
    /// entries now go a chunk at a time (back to the pool), and a scanned
    /// memtable's key order a stretch of nodes at a time, with yields
    /// between, so requests run in the gaps.
    pub fn take_apart(self) -> Teardown {
        let Memtable {
            slots,
            mut entries,
            mut prefixes,
            order,
            arena,
            ..
        } = self;
        // Kept (emptied) for the next memtable when they are the size its
        // pool's memtables are made with; else freed here, one allocation
        // each.
        let kept = slots.is_sized_for(Self::presize_keys(arena.pool().budget_bytes()));
        let vectors = kept.then(|| {
            entries.clear();
            prefixes.clear();
            (slots.into_emptying(), entries, prefixes)
        });
        // The sorted keys are one allocation: freed here. The B-tree's nodes
        // go a stretch at a time.
        Teardown {
            order: order.into_inner().map(|o| o.added.into_iter()),
            arena,
            vectors,
        }
    }
}

/// A memtable's index and slot vectors, empty, kept by its pool
/// ([`ChunkPool`]) from a torn-down memtable for the next one. Why: fresh,
/// they are zero pages mapped on first touch, and a new memtable's writes
/// touch its index at random: its first few thousand writes took one page
/// fault each (10-14k faults, about 6-7 us each on a VM, in the first
/// milliseconds after every freeze).
#[derive(Debug)]
pub(crate) struct KeyVectors {
    slots: KeyIndex,
    entries: Vec<EntryPtr>,
    prefixes: Vec<u128>,
}

impl KeyVectors {
    /// Whether these are the vectors [`Memtable::with_capacity`] would make
    /// for `keys` keys (or larger vectors for the same index).
    pub(crate) fn fit(&self, keys: usize) -> bool {
        self.slots.is_sized_for(keys)
            && self.entries.capacity() >= keys
            && self.prefixes.capacity() >= keys
    }
}

/// Arena chunks a [`Teardown`] step gives back to the pool.
const TEARDOWN_STEP_CHUNKS: usize = 8;

/// Index buckets a [`Teardown`] step zeroes: 1 MiB, about 0.1 ms.
const TEARDOWN_STEP_BUCKETS: usize = (1 << 20) / crate::key_index::BUCKET_BYTES;

/// A memtable being freed in steps (see [`Memtable::take_apart`]): its key
/// order, then its arena's chunks, then its index is emptied and given with
/// its slot vectors to the pool. Whatever is left is freed at once when it
/// is dropped (nothing is given to the pool then).
pub struct Teardown {
    /// Dropped before `arena`: its keys point into it.
    order: Option<std::collections::btree_set::IntoIter<OrderedKey>>,
    arena: Arena,
    /// The index being emptied and the slot vectors (already empty), when
    /// they are worth keeping.
    vectors: Option<(Emptying, Vec<EntryPtr>, Vec<u128>)>,
}

impl Teardown {
    /// Frees up to `entries` more nodes of the key order, or else gives a
    /// few more of the arena's chunks back, or else zeroes a stretch of the
    /// index (see [`Teardown`]). Returns whether anything is left.
    pub fn free_some(&mut self, entries: usize) -> bool {
        if let Some(order) = &mut self.order {
            order.by_ref().take(entries).for_each(drop);
            if order.len() > 0 {
                return true;
            }
            self.order = None;
        }
        if self.arena.release_some(TEARDOWN_STEP_CHUNKS) {
            return true;
        }
        let Some((emptying, _, _)) = &mut self.vectors else {
            return false;
        };
        if emptying.step(TEARDOWN_STEP_BUCKETS) {
            return true;
        }
        if let Some((emptying, entries, prefixes)) = self.vectors.take() {
            if let Some(slots) = emptying.into_empty() {
                self.arena.pool().keep_key_vectors(KeyVectors {
                    slots,
                    entries,
                    prefixes,
                });
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(hlc: u64) -> Version {
        Version { hlc, node: 1 }
    }

    fn value_of(m: &Memtable, key: &[u8]) -> Option<Option<Vec<u8>>> {
        m.get(key).map(|r| r.value.map(<[u8]>::to_vec))
    }

    #[test]
    fn higher_version_replaces_lower_and_lower_is_ignored() {
        let mut m = Memtable::new();
        assert!(m.insert(b"k", &Record::put(v(5), b"five".to_vec(), 0)));
        assert!(!m.insert(b"k", &Record::put(v(3), b"three".to_vec(), 0)));
        assert_eq!(value_of(&m, b"k"), Some(Some(b"five".to_vec())));
        assert!(m.insert(b"k", &Record::tombstone(v(7))));
        assert!(m.get(b"k").is_some_and(|r| r.is_tombstone()));
        assert_eq!(m.max_version(), v(7));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_teardown_frees_a_step_at_a_time_ends_and_gives_its_chunks_back() {
        let pool = ChunkPool::for_budget(1 << 20, 1 << 20);
        let mut m = Memtable::with_capacity(0, pool.clone());
        // 10,000 entries of 64 bytes (a 32-byte header, 4 of key, 28 of
        // value): 10 chunks of 64 KiB.
        for i in 0..10_000u32 {
            m.insert(&i.to_be_bytes(), &Record::put(v(1), vec![7; 28], 0));
        }
        // A scan builds the key order, which the teardown frees too.
        assert_eq!(m.entries_from(Bound::Unbounded, 5).len(), 5);
        let mut teardown = m.take_apart();
        let mut steps = 1;
        while teardown.free_some(4096) {
            steps += 1;
            assert!(
                steps <= 4,
                "three of order nodes (the third also frees 8 chunks), one more"
            );
        }
        assert_eq!(steps, 4);
        assert!(!teardown.free_some(4096), "nothing is left");
        assert_eq!(pool.idle_chunks(), 10, "every chunk is back in the pool");
        // Grown to the size the pool's memtables are made with, the index
        // was zeroed in the last step and kept with the slot vectors.
        assert!(pool.holds_key_vectors());
        // The next memtable takes them instead of new memory.
        let mut next = Memtable::with_capacity(0, pool.clone());
        next.insert(b"k", &Record::put(v(1), vec![1; 8], 0));
        assert_eq!(pool.idle_chunks(), 9);
        assert_eq!(value_of(&next, b"k"), Some(Some(vec![1; 8])));
    }

    #[test]
    fn a_torn_down_memtables_index_and_slots_serve_the_next_one() {
        let budget = 1 << 20;
        let pool = ChunkPool::for_budget(budget, budget);
        let keys = Memtable::presize_keys(budget);
        let tear_down = |m: Memtable| {
            let mut teardown = m.take_apart();
            while teardown.free_some(4096) {}
        };
        let mut m = Memtable::with_capacity(keys, pool.clone());
        for i in 0..1_000u32 {
            m.insert(&i.to_be_bytes(), &Record::put(v(1), vec![7; 28], 0));
        }
        let vectors = (m.entries.as_ptr(), m.prefixes.as_ptr());
        tear_down(m);
        assert!(pool.holds_key_vectors(), "kept for the next memtable");

        // The next memtable of the pool's size takes them: none of the old
        // keys is in it, and it indexes its own.
        let mut next = Memtable::with_capacity(keys, pool.clone());
        assert!(!pool.holds_key_vectors());
        assert_eq!((next.entries.as_ptr(), next.prefixes.as_ptr()), vectors);
        assert_eq!(pool.key_vectors_reused(), 1);
        for i in 0..1_000u32 {
            assert!(
                next.get(&i.to_be_bytes()).is_none(),
                "key {i} of the old memtable"
            );
        }
        for i in 500..2_500u32 {
            next.insert(
                &i.to_be_bytes(),
                &Record::put(v(2), i.to_le_bytes().to_vec(), 0),
            );
        }
        assert_eq!(next.len(), 2_000);
        for i in 500..2_500u32 {
            assert_eq!(
                value_of(&next, &i.to_be_bytes()),
                Some(Some(i.to_le_bytes().to_vec()))
            );
        }
        assert_eq!(next.iter().count(), 2_000);
        tear_down(next);

        // A memtable of another size frees them and makes its own.
        assert!(pool.holds_key_vectors());
        let larger = Memtable::with_capacity(keys * 4, pool.clone());
        assert!(!pool.holds_key_vectors());
        assert_ne!(larger.entries.as_ptr(), vectors.0);
        assert_eq!(pool.key_vectors_reused(), 1);
        tear_down(larger);
        assert!(
            !pool.holds_key_vectors(),
            "not the size the pool's memtables are made with"
        );

        // A teardown dropped before its end keeps nothing: an index of 4
        // MiB takes four steps to zero.
        let budget = 16 << 20;
        let pool = ChunkPool::for_budget(budget, budget);
        let m = Memtable::with_capacity(Memtable::presize_keys(budget), pool.clone());
        let mut teardown = m.take_apart();
        assert!(teardown.free_some(4096), "the index is left to zero");
        drop(teardown);
        assert!(!pool.holds_key_vectors());
    }

    #[test]
    fn a_pool_keeps_at_most_a_budgets_worth_of_chunks() {
        let pool = ChunkPool::for_budget(1 << 20, 128 << 10);
        let mut m = Memtable::with_capacity(0, pool.clone());
        for i in 0..10_000u32 {
            m.insert(&i.to_be_bytes(), &Record::put(v(1), vec![7; 16], 0));
        }
        drop(m);
        assert_eq!(pool.idle_chunks(), 2, "128 KiB of 64 KiB chunks are kept");
    }

    #[test]
    fn read_marks_follow_their_keys_through_overwrites_and_page_in_slot_order() {
        let mut m = Memtable::new();
        let key = |i: u32| i.to_be_bytes();
        for i in 0..200u32 {
            m.insert(&key(i), &Record::put(v(1), vec![1; 8], 0));
        }
        let read = [3u32, 64, 65, 130, 199];
        for i in read {
            assert!(m.get_marking_read(&key(i)).is_some());
        }
        assert!(m.get_marking_read(b"absent").is_none());
        m.mark_read(b"absent");
        // Overwritten in place, and moved (a longer value): still marked,
        // with the newest record.
        m.insert(&key(3), &Record::put(v(2), vec![2; 8], 0));
        m.insert(&key(64), &Record::put(v(2), vec![2; 300], 0));
        let mut seen = Vec::new();
        let mut next = Some(0);
        let mut pages = 0;
        while let Some(from) = next {
            next = m.read_marked(from, 2, |k, r| {
                seen.push((k.to_vec(), r.version, r.value.map(<[u8]>::len)));
            });
            pages += 1;
        }
        assert_eq!(pages, 3, "five keys, two a page");
        let expected: Vec<_> = read
            .iter()
            .map(|&i| match i {
                3 => (key(i).to_vec(), v(2), Some(8)),
                64 => (key(i).to_vec(), v(2), Some(300)),
                _ => (key(i).to_vec(), v(1), Some(8)),
            })
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn hinting_entries_changes_nothing() {
        let mut m = Memtable::new();
        m.insert(b"a", &Record::put(v(1), b"one".to_vec(), 0));
        m.prefetch_keys(&[b"a", b"b"]);
        m.prefetch_entries(&[b"a", b"b", b""], |_| {});
        assert_eq!(value_of(&m, b"a"), Some(Some(b"one".to_vec())));
        assert_eq!(m.get(b"b"), None);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn equal_version_keeps_the_stored_record() {
        let mut m = Memtable::new();
        assert!(m.insert(b"k", &Record::put(v(5), b"a".to_vec(), 0)));
        assert!(!m.insert(b"k", &Record::put(v(5), b"b".to_vec(), 0)));
        assert_eq!(value_of(&m, b"k"), Some(Some(b"a".to_vec())));
    }

    #[test]
    fn byte_budget_charges_entries_and_overwrites_in_place_grow_nothing() {
        let mut m = Memtable::new();
        m.insert(b"k", &Record::put(v(1), vec![0; 100], 0));
        let one = m.approximate_bytes();
        assert_eq!(
            one,
            Memtable::entry_bytes(b"k", &Record::put(v(1), vec![0; 100], 0))
        );
        // Same size, smaller, a tombstone: in place.
        m.insert(b"k", &Record::put(v(2), vec![1; 100], 0));
        m.insert(b"k", &Record::put(v(3), vec![2; 10], 0));
        assert_eq!(value_of(&m, b"k"), Some(Some(vec![2; 10])));
        m.insert(b"k", &Record::tombstone(v(4)));
        assert_eq!(m.approximate_bytes(), one);
        // Back up to the room the entry has: still in place.
        m.insert(b"k", &Record::put(v(5), vec![3; 100], 0));
        assert_eq!(m.approximate_bytes(), one);
        // Larger: the entry moves, and the old one stays charged.
        m.insert(b"k", &Record::put(v(6), vec![4; 300], 0));
        assert_eq!(value_of(&m, b"k"), Some(Some(vec![4; 300])));
        assert_eq!(
            m.approximate_bytes(),
            one + Memtable::entry_bytes(b"k", &Record::put(v(6), vec![4; 300], 0))
                - KEY_OVERHEAD_BYTES
        );
        assert_eq!(m.len(), 1);
        m.insert(b"j", &Record::tombstone(v(7)));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn values_larger_than_a_chunk_share_are_stored_on_their_own() {
        // 64 KiB chunks: a value of a quarter or more goes to its own block,
        // the largest the engine takes (1 MiB) included.
        let mut m = Memtable::new();
        let big = vec![9u8; crate::limits::VALUE_SIZE_MAX];
        m.insert(b"small", &Record::put(v(1), vec![1; 10], 0));
        m.insert(b"big", &Record::put(v(1), big.clone(), 5));
        m.insert(b"mid", &Record::put(v(1), vec![2; 20_000], 0));
        assert_eq!(value_of(&m, b"big"), Some(Some(big)));
        assert_eq!(m.get(b"big").map(|r| r.expires_at_ms), Some(5));
        assert_eq!(value_of(&m, b"mid"), Some(Some(vec![2; 20_000])));
        assert_eq!(value_of(&m, b"small"), Some(Some(vec![1; 10])));
        assert!(m.approximate_bytes() > crate::limits::VALUE_SIZE_MAX);
    }

    #[test]
    fn large_chunks_hold_entries_across_their_ends() {
        // A 64 MiB budget: 2 MiB chunks. 40,000 entries of 200 bytes cross
        // several chunk ends.
        let pool = ChunkPool::for_budget(64 << 20, 64 << 20);
        let mut m = Memtable::with_capacity(0, pool.clone());
        for i in 0..40_000u32 {
            m.insert(&i.to_be_bytes(), &Record::put(v(1), vec![i as u8; 160], 0));
        }
        for i in (0..40_000u32).step_by(997) {
            assert_eq!(
                value_of(&m, &i.to_be_bytes()),
                Some(Some(vec![i as u8; 160]))
            );
        }
        drop(m);
        assert!(pool.idle_chunks() >= 4);
    }

    #[test]
    fn a_flush_reads_each_keys_newest_record_through_its_slot() {
        let mut m = Memtable::new();
        for (i, k) in [b"c", b"a", b"d", b"b", b"e"].iter().enumerate() {
            m.insert(*k, &Record::put(v(1), vec![i as u8], 0));
        }
        m.insert(b"a", &Record::put(v(2), b"newer".to_vec(), 0));
        m.insert(b"d", &Record::tombstone(v(3)));
        let runs = vec![m.sorted_run(0, 2), m.sorted_run(2, 2), m.sorted_run(4, 2)];
        let mut merge = RunMerge::new(runs, &m);
        let mut merged = Vec::new();
        merge.next_stretch(&m, 3, &mut merged);
        assert_eq!(merged.len(), 3);
        merge.next_stretch(&m, 10, &mut merged);
        assert!(merge.next(&m).is_none(), "every run is spent");
        m.prefetch(&merged);
        let keys: Vec<&[u8]> = merged.iter().map(|k| m.key_of(k)).collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"c", b"d", b"e"]);
        for k in &merged {
            assert_eq!(Some(m.record_of(k)), m.get(m.key_of(k)));
        }
        assert_eq!(m.record_of(&merged[0]).value, Some(&b"newer"[..]));
        assert!(m.record_of(&merged[3]).is_tombstone());
    }

    #[test]
    fn entries_from_resumes_after_a_cursor() {
        let mut m = Memtable::new();
        for k in [b"a", b"b", b"c", b"d"] {
            m.insert(k, &Record::put(v(1), k.to_vec(), 0));
        }
        let keys = |e: Vec<(Vec<u8>, Record)>| e.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(
            keys(m.entries_from(Bound::Unbounded, 2)),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            keys(m.entries_from(Bound::Excluded(b"b"), 10)),
            vec![b"c".to_vec(), b"d".to_vec()]
        );
        assert_eq!(
            keys(m.entries_from(Bound::Included(b"zz"), 10)),
            Vec::<Vec<u8>>::new()
        );
    }

    /// Inserts after a scan leave the key order alone (a B-tree insert per
    /// new key cut a scanned memtable's inserts by two fifths); the next
    /// read in order adds them first, so it misses none.
    #[test]
    fn inserts_after_a_scan_leave_the_order_to_the_next_scan() {
        let mut m = Memtable::new();
        for k in [b"b", b"d"] {
            m.insert(k, &Record::put(v(1), k.to_vec(), 0));
        }
        assert_eq!(m.entries_from(Bound::Unbounded, 10).len(), 2);
        for k in [b"a", b"c", b"e"] {
            m.insert(k, &Record::put(v(2), k.to_vec(), 0));
        }
        // Overwrites take no slot: nothing for the order to add.
        m.insert(b"b", &Record::put(v(3), b"b2".to_vec(), 0));
        assert_eq!(m.catch_up_order(0), 3, "the three new keys wait for a scan");
        assert_eq!(
            m.catch_up_order(1),
            2,
            "a step adds at most what it is given"
        );
        let keys: Vec<Vec<u8>> = m
            .entries_from(Bound::Excluded(b"a"), 10)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, [b"b", b"c", b"d", b"e"].map(|k| k.to_vec()));
        assert_eq!(m.catch_up_order(0), 0);
    }

    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// The inline-prefix order is the byte order of the keys, whatever
        /// their lengths, shared prefixes and zero bytes; ranges resume at
        /// any cursor.
        #[test]
        fn order_is_byte_order(
            keys in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(0u8), Just(b'k'), Just(255u8), any::<u8>()], 0..40),
                1..120,
            ),
            cursor in proptest::collection::vec(any::<u8>(), 0..20),
            run_keys in 1usize..50,
            split in 0usize..120,
            installed in any::<bool>(),
            page in 1usize..9,
        ) {
            let mut m = Memtable::new();
            // Some keys before the order is built, the rest after: by a
            // first scan, or installed from the flush's merge (as a scan
            // does a step at a time), which leaves the first keys in the
            // sorted vector and the later ones in the B-tree.
            let split = split.min(keys.len());
            for (i, k) in keys[..split].iter().enumerate() {
                m.insert(k, &Record::put(v(i as u64 + 1), vec![], 0));
            }
            if installed {
                let runs: Vec<Vec<FlushKey>> = (0..m.len())
                    .step_by(run_keys)
                    .map(|start| m.sorted_run(start, run_keys))
                    .collect();
                let mut merge = RunMerge::new(runs, &m);
                let mut sorted = Vec::new();
                merge.next_stretch(&m, usize::MAX, &mut sorted);
                m.install_order(sorted);
                prop_assert!(m.has_order());
            } else {
                let _ = m.entries_from(Bound::Unbounded, 1);
            }
            for (i, k) in keys[split..].iter().enumerate() {
                m.insert(k, &Record::put(v((split + i) as u64 + 1), vec![], 0));
            }
            let mut expected: Vec<Vec<u8>> = keys.clone();
            expected.sort();
            expected.dedup();
            let got: Vec<Vec<u8>> = m.iter().map(|(k, _)| k.to_vec()).collect();
            prop_assert_eq!(&got, &expected);
            // The flush's way: sorted runs of the insertion order, merged.
            let runs: Vec<Vec<FlushKey>> = (0..m.len())
                .step_by(run_keys)
                .map(|start| m.sorted_run(start, run_keys))
                .collect();
            let mut merge = RunMerge::new(runs, &m);
            let mut merged = Vec::new();
            while let Some(k) = merge.next(&m) {
                merged.push(m.key_of(&k).to_vec());
            }
            prop_assert_eq!(&merged, &expected);
            let after: Vec<Vec<u8>> = m
                .entries_from(Bound::Excluded(cursor.as_slice()), usize::MAX)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            let expected_after: Vec<Vec<u8>> =
                expected.iter().filter(|k| **k > cursor).cloned().collect();
            prop_assert_eq!(after, expected_after);
            let from: Vec<Vec<u8>> = m
                .entries_from(Bound::Included(cursor.as_slice()), usize::MAX)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            let expected_from: Vec<Vec<u8>> =
                expected.iter().filter(|k| **k >= cursor).cloned().collect();
            prop_assert_eq!(from, expected_from);
            // Page by page, each resuming after the last key of the one
            // before, as a scan's source does.
            let mut paged: Vec<Vec<u8>> = Vec::new();
            loop {
                let bound = match paged.last() {
                    Some(last) => Bound::Excluded(last.as_slice()),
                    None => Bound::Unbounded,
                };
                let got: Vec<Vec<u8>> =
                    m.entries_from(bound, page).into_iter().map(|(k, _)| k).collect();
                let done = got.len() < page;
                paged.extend(got);
                if done {
                    break;
                }
            }
            prop_assert_eq!(&paged, &expected);
        }

        /// Against a model: whatever the sizes of the values (growing,
        /// shrinking, tombstones, values over a chunk's share), the order
        /// of versions and whether a scan built the key order first, every
        /// key reads its highest-version record, the key order and the
        /// flush's merge return the same, and the budget covers what is
        /// stored.
        #[test]
        fn reads_what_a_model_holds(
            writes in proptest::collection::vec(
                (0u8..24, 1u64..50, prop_oneof![
                    Just(None),
                    (0usize..300).prop_map(Some),
                    (16_000usize..40_000).prop_map(Some),
                ]),
                1..200,
            ),
            scan_at in 0usize..200,
        ) {
            let mut m = Memtable::new();
            let mut model: BTreeMap<Vec<u8>, Record> = BTreeMap::new();
            for (i, (k, hlc, len)) in writes.iter().enumerate() {
                if i == scan_at {
                    let _ = m.entries_from(Bound::Unbounded, 1);
                }
                let key = format!("key-{k:02}-{}", "x".repeat(*k as usize)).into_bytes();
                let record = match len {
                    Some(len) => Record::put(v(*hlc), vec![i as u8; *len], *hlc),
                    None => Record::tombstone(v(*hlc)),
                };
                let stored = m.insert(&key, &record);
                let newer = model.get(&key).is_none_or(|old| old.version < record.version);
                prop_assert_eq!(stored, newer);
                if newer {
                    model.insert(key, record);
                }
            }
            prop_assert_eq!(m.len(), model.len());
            for (key, record) in &model {
                prop_assert_eq!(m.get(key).map(|r| r.to_record()), Some(record.clone()));
            }
            let listed: Vec<(Vec<u8>, Record)> =
                m.iter().map(|(k, r)| (k.to_vec(), r.to_record())).collect();
            let expected: Vec<(Vec<u8>, Record)> =
                model.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
            prop_assert_eq!(&listed, &expected);
            prop_assert_eq!(&m.entries_from(Bound::Unbounded, usize::MAX), &expected);
            let runs: Vec<Vec<FlushKey>> = (0..m.len()).step_by(7).map(|s| m.sorted_run(s, 7)).collect();
            let mut merge = RunMerge::new(runs, &m);
            let mut merged = Vec::new();
            while let Some(k) = merge.next(&m) {
                merged.push((m.key_of(&k).to_vec(), m.record_of(&k).to_record()));
            }
            prop_assert_eq!(&merged, &expected);
            let stored: usize = model.iter().map(|(k, r)| Memtable::entry_bytes(k, r)).sum();
            prop_assert!(m.approximate_bytes() >= stored);
        }
    }

    // The arena's edge cases, from its review: small enough to run under
    // Miri (`cargo +nightly miri test -p ringkv-storage --lib memtable::`).

    fn put(hlc: u64, value: &[u8]) -> Record {
        Record::put(v(hlc), value.to_vec(), 0)
    }

    fn scan(m: &Memtable) -> Vec<(Vec<u8>, Record)> {
        m.entries_from(Bound::Unbounded, usize::MAX)
    }

    /// The order set keeps raw pointers to key bytes (read only when two
    /// keys share their first 16 bytes); an in-place overwrite writes the
    /// same entry. The keys must still read after it (and, under Miri's
    /// Stacked Borrows, the pointers must stay valid).
    #[test]
    fn in_place_overwrites_after_a_scan_keep_the_order_readable() {
        // Keys sharing their 16-byte prefix: the order compares whole keys.
        let k = |s: &str| format!("sixteen-byte-pfx{s}").into_bytes();
        let mut m = Memtable::new();
        for s in ["b", "d", "a"] {
            m.insert(&k(s), &put(1, &[7; 40]));
        }
        assert_eq!(scan(&m).len(), 3, "the scan builds the order");
        // A key inserted after the scan enters the order from `insert`.
        m.insert(&k("c"), &put(1, &[8; 40]));
        // Same size, smaller, tombstone, back up: all in place.
        m.insert(&k("b"), &put(2, &[1; 40]));
        m.insert(&k("c"), &put(2, &[2; 3]));
        m.insert(&k("d"), &Record::tombstone(v(2)));
        m.insert(&k("d"), &put(3, &[3; 40]));
        let before = m.approximate_bytes();
        m.insert(&k("a"), &put(4, &[4; 40]));
        assert_eq!(m.approximate_bytes(), before, "in place");
        // The order compares stored keys (insert of a new key, a range read).
        m.insert(&k("bb"), &put(1, b"x"));
        let got = scan(&m);
        let keys: Vec<Vec<u8>> = got.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, [k("a"), k("b"), k("bb"), k("c"), k("d")]);
        assert_eq!(got[0].1, put(4, &[4; 40]));
        assert_eq!(got[1].1, put(2, &[1; 40]));
        assert_eq!(got[3].1, put(2, &[2; 3]));
        assert_eq!(got[4].1, put(3, &[3; 40]));
        assert_eq!(m.entries_from(Bound::Excluded(&k("bb")), 10).len(), 2);
    }

    /// A growing overwrite moves the entry; the order keeps pointing at the
    /// old entry's key bytes, the record comes from the new one.
    #[test]
    fn growing_overwrites_after_a_scan_keep_the_order_readable() {
        let k = |s: &str| format!("sixteen-byte-pfx{s}").into_bytes();
        let mut m = Memtable::new();
        m.insert(&k("1"), &put(1, b"s"));
        m.insert(&k("2"), &put(1, b"s"));
        let _ = scan(&m);
        m.insert(&k("1"), &put(2, &[5; 200]));
        m.insert(&k("1"), &put(3, &[6; 20_000])); // to an oversize block
        m.insert(&k("1"), &put(4, &[7; 10])); // in place in the oversize block
        m.insert(&k("0"), &put(1, b"z"));
        let got = scan(&m);
        assert_eq!(
            got,
            vec![
                (k("0"), put(1, b"z")),
                (k("1"), put(4, &[7; 10])),
                (k("2"), put(1, b"s")),
            ]
        );
    }

    #[test]
    fn empty_keys_and_empty_values_are_not_tombstones() {
        let mut m = Memtable::new();
        assert!(m.insert(b"", &put(1, b"")));
        assert_eq!(m.get(b"").map(|r| r.value), Some(Some(&b""[..])));
        assert!(m.insert(b"", &Record::tombstone(v(2))));
        assert!(m.get(b"").is_some_and(|r| r.is_tombstone()));
        assert!(m.insert(b"", &put(3, b"")));
        assert_eq!(m.get(b"").map(|r| r.value), Some(Some(&b""[..])));
        // A tombstone on a key never seen, and an empty key in the order.
        assert!(m.insert(b"\0", &Record::tombstone(v(1))));
        let got = scan(&m);
        assert_eq!(got[0], (Vec::new(), put(3, b"")));
        assert_eq!(got[1], (b"\0".to_vec(), Record::tombstone(v(1))));
        // A search key that is empty, included and excluded.
        assert_eq!(m.entries_from(Bound::Included(b""), 10).len(), 2);
        assert_eq!(m.entries_from(Bound::Excluded(b""), 10).len(), 1);
        assert_eq!(
            m.approximate_bytes(),
            2 * (arena::entry_bytes(0, 0) + KEY_OVERHEAD_BYTES) + 8,
            "`\\0` entry is 33 bytes, padded to 40"
        );
    }

    /// The room an entry has is its first record's, rounded up to 8: a
    /// tombstone keeps it, and a value of up to that room comes back in place.
    #[test]
    fn a_tombstone_keeps_the_entrys_room_for_a_value_later() {
        let mut m = Memtable::new();
        // 32 + 3 + 5 = 40: no padding. Then 32 + 3 + 1 = 36 -> 40: 4 of padding.
        m.insert(b"key", &put(1, b"12345"));
        let one = m.approximate_bytes();
        m.insert(b"key", &Record::tombstone(v(2)));
        m.insert(b"key", &put(3, b"12345"));
        m.insert(b"key", &Record::tombstone(v(4)));
        assert_eq!(m.approximate_bytes(), one, "in place");
        let mut m = Memtable::new();
        m.insert(b"key", &put(1, b"1"));
        let one = m.approximate_bytes();
        m.insert(b"key", &Record::tombstone(v(2)));
        m.insert(b"key", &put(3, b"12345")); // fills the padding exactly
        assert_eq!(m.approximate_bytes(), one, "the padding is room");
        assert_eq!(m.get(b"key").unwrap().value, Some(&b"12345"[..]));
        m.insert(b"key", &put(4, b"123456")); // one byte over: moves
        assert_eq!(m.approximate_bytes(), one + arena::entry_bytes(3, 6));
        assert_eq!(m.get(b"key").unwrap().value, Some(&b"123456"[..]));
        m.insert(b"key", &Record::tombstone(v(5)));
        assert!(m.get(b"key").unwrap().is_tombstone());
        assert_eq!(m.len(), 1);
    }

    /// 64 KiB chunks: an entry of exactly a quarter chunk is carved from a
    /// chunk (four fill one exactly), 8 bytes more is its own block.
    #[test]
    fn entries_at_the_oversize_threshold() {
        const QUARTER: usize = (64 << 10) / 4;
        let mut m = Memtable::new();
        let value = vec![3u8; QUARTER - 32 - 1];
        assert_eq!(arena::entry_bytes(1, value.len()), QUARTER);
        for k in 0..5u8 {
            m.insert(&[k], &put(1, &value));
        }
        // Four fill the first chunk exactly; the fifth takes a new one with
        // no tail skipped.
        assert_eq!(m.approximate_bytes(), 5 * (QUARTER + KEY_OVERHEAD_BYTES));
        let over = vec![4u8; QUARTER - 32 - 1 + 1];
        assert_eq!(arena::entry_bytes(1, over.len()), QUARTER + 8);
        m.insert(b"o", &put(1, &over));
        assert_eq!(
            m.approximate_bytes(),
            5 * (QUARTER + KEY_OVERHEAD_BYTES) + QUARTER + 8 + KEY_OVERHEAD_BYTES
        );
        for k in 0..5u8 {
            assert_eq!(m.get(&[k]).unwrap().value, Some(&value[..]));
        }
        assert_eq!(m.get(b"o").unwrap().value, Some(&over[..]));
    }

    /// The fields' extremes round-trip (u64 and u32 fields, a key of the
    /// engine's largest size with 0xff bytes).
    #[test]
    fn record_fields_round_trip_at_their_extremes() {
        let mut m = Memtable::new();
        let key = vec![0xffu8; crate::limits::KEY_SIZE_MAX];
        let version = Version {
            hlc: u64::MAX,
            node: u32::MAX,
        };
        let record = Record::put(version, vec![0xfe; 3], u64::MAX);
        assert!(m.insert(&key, &record));
        assert_eq!(m.get(&key).map(|r| r.to_record()), Some(record.clone()));
        assert_eq!(m.max_version(), version);
        assert!(
            !m.insert(&key, &Record::tombstone(version)),
            "a tie keeps it"
        );
        assert_eq!(scan(&m), vec![(key, record)]);
    }

    /// A teardown stopped after some steps, then dropped, gives back or
    /// frees everything once (Miri checks for leaks and double frees).
    #[test]
    fn a_teardown_dropped_between_steps_frees_everything_once() {
        let pool = ChunkPool::for_budget(1 << 20, 1 << 20);
        let mut m = Memtable::with_capacity(0, pool.clone());
        // 12 chunks of 64 KiB: 768 entries of 1 KiB, and two oversize.
        for i in 0..768u32 {
            m.insert(&i.to_be_bytes(), &put(1, &[1; 1024 - 32 - 4]));
        }
        m.insert(b"big1", &put(1, &[2; 20_000]));
        m.insert(b"big2", &put(1, &[2; 20_000]));
        let _ = scan(&m);
        let mut teardown = m.take_apart();
        assert!(
            teardown.free_some(usize::MAX),
            "order gone, 2 oversize, 6 chunks back"
        );
        assert_eq!(pool.idle_chunks(), 6);
        drop(teardown);
        assert_eq!(pool.idle_chunks(), 12);
        // And a memtable dropped whole, while its order is built.
        let mut m = Memtable::with_capacity(0, pool.clone());
        m.insert(b"a", &put(1, b"x"));
        let _ = scan(&m);
        drop(m);
        assert_eq!(pool.idle_chunks(), 12);
    }

    /// Chunks a torn-down memtable gave back hold its old bytes: a new
    /// memtable on them reads only what it wrote.
    #[test]
    fn a_memtable_on_reused_chunks_reads_only_its_own_entries() {
        let pool = ChunkPool::for_budget(1 << 20, 1 << 20);
        let mut old = Memtable::with_capacity(0, pool.clone());
        for i in 0..200u32 {
            old.insert(&i.to_be_bytes(), &put(9, &[0xaa; 300]));
        }
        let mut t = old.take_apart();
        while t.free_some(16) {}
        let idle = pool.idle_chunks();
        assert!(idle >= 1);
        let mut m = Memtable::with_capacity(0, pool.clone());
        for i in 0..200u32 {
            // Shorter keys and values: the old bytes lie past each entry.
            m.insert(&[i as u8, 1], &put(1, &[i as u8; 5]));
        }
        m.insert(b"\xff", &Record::tombstone(v(1)));
        assert_eq!(pool.idle_chunks(), idle - 1);
        for i in 0..200u32 {
            assert!(m.get(&i.to_be_bytes()).is_none());
        }
        let got = scan(&m);
        assert_eq!(got.len(), 201);
        assert!(got
            .iter()
            .take(200)
            .all(|(k, r)| r.value == Some(vec![k[0]; 5])));
        assert!(got[200].1.is_tombstone());
    }

    proptest! {
        /// Keys sharing their first 16 bytes (so the order reads the key
        /// bytes the arena holds), overwrites in place and moved, tombstones
        /// and scans in any order: every scan reads what a model holds.
        #[test]
        fn scans_between_overwrites_of_keys_sharing_a_prefix(
            ops in proptest::collection::vec(
                (0u8..12, prop_oneof![
                    4 => proptest::option::of(0usize..64),
                    1 => (16_000usize..17_000).prop_map(Some),
                ], 0u8..4),
                1..60,
            ),
        ) {
            let mut m = Memtable::new();
            let mut model: BTreeMap<Vec<u8>, Record> = BTreeMap::new();
            for (i, (k, len, scan_now)) in ops.iter().enumerate() {
                // Half the keys are 16 bytes exactly (ties with a longer
                // key on the prefix), the rest longer.
                let key = if k % 2 == 0 {
                    format!("sixteen-byte-p{k:02}").into_bytes()
                } else {
                    format!("sixteen-byte-p{:02}{}", k - 1, "\0".repeat(*k as usize)).into_bytes()
                };
                let hlc = i as u64 + 1;
                let record = match len {
                    Some(len) => Record::put(v(hlc), vec![*k; *len], 0),
                    None => Record::tombstone(v(hlc)),
                };
                prop_assert!(m.insert(&key, &record));
                model.insert(key, record);
                if *scan_now == 0 {
                    let expected: Vec<(Vec<u8>, Record)> =
                        model.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
                    prop_assert_eq!(scan(&m), expected);
                }
            }
            let expected: Vec<(Vec<u8>, Record)> =
                model.iter().map(|(k, r)| (k.clone(), r.clone())).collect();
            prop_assert_eq!(scan(&m), expected.clone());
            let mut t = m.take_apart();
            while t.free_some(3) {}
        }
    }
}
