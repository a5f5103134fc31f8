//! The memtable: the ordered, in-memory part of one shard's LSM tree.
//!
//! Owns the most recent writes (those not yet flushed to an L0 table), one
//! record per key: the record with the highest [`Version`] seen for that key
//! (last-write-wins, ties keep the record already stored, so replaying a WAL in
//! order is deterministic).
//!
//! Invariants:
//! - Single owner, single thread: plain maps, no concurrent structure.
//! - Every key is in `slots` (a hash map: a point read costs one hash and
//!   one comparison instead of a B-tree walk of ~40 `memcmp`s, which took a
//!   third of the server's CPU per GET) and once in `keys`, in insertion
//!   order; both share the key bytes through one `Rc<[u8]>`. Its record is
//!   in `records` at the same position as the key in `keys`, and ordered
//!   keys carry that position: a flush reads records without hashing (the
//!   hash lookup and a record copy per key took half of a flush).
//! - Key order is not kept on insert: a B-tree insert per new key took a
//!   quarter of a SET's CPU, and most memtables are never scanned. The flush
//!   sorts `keys` in runs ([`Memtable::sorted_run`], merged by [`RunMerge`]);
//!   the first scan builds `order` (a B-tree) and from then on inserts keep
//!   it, so a scanned memtable pays what it did before and no more.
//! - Ordered keys carry their first 16 bytes inline ([`OrderedKey`]): most
//!   comparisons end on that integer without following the key's pointer.
//! - `approximate_bytes` is the sum of [`Memtable::entry_bytes`] over the stored
//!   entries; the engine freezes the memtable when it passes its budget.
//! - A frozen memtable (handed to a flush) is never mutated again; readers may
//!   keep reading it while it is flushed.
//!
//! It does not do I/O, decide when to freeze, or drop tombstones: tombstones and
//! expired values stay until compaction purges them from the tables.

use crate::prefetch::prefetch_line;
use crate::types::{Record, Version};
use std::cell::RefCell;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::ops::Bound;
use std::rc::Rc;

/// A key in the memtable's order: its first 16 bytes as a big-endian integer
/// (zero-padded), then the whole key. Orders exactly as the key bytes do:
/// the prefixes compare like the keys' first 16 bytes, and equal prefixes
/// fall back to the full comparison (which also settles padding ties such as
/// `b"a"` against `b"a\0"`). It also names the key's record slot, so a
/// flush walking keys in order reads each record without a hash lookup.
#[derive(Clone, Debug)]
pub struct OrderedKey {
    prefix: u128,
    key: Rc<[u8]>,
    slot: usize,
}

fn prefix_of(key: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = key.len().min(16);
    bytes[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(bytes)
}

impl OrderedKey {
    fn new(key: Rc<[u8]>, slot: usize) -> Self {
        OrderedKey {
            prefix: prefix_of(&key),
            key,
            slot,
        }
    }

    /// The key's bytes.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

/// Merges sorted runs of distinct keys (the runs of one memtable, from
/// [`Memtable::sorted_run`]) into one ascending sequence.
pub struct RunMerge {
    runs: Vec<std::vec::IntoIter<OrderedKey>>,
    /// The next key of each run that has one, smallest on top.
    heads: BinaryHeap<Reverse<(OrderedKey, usize)>>,
}

impl RunMerge {
    /// A merge of `runs`, each sorted ascending.
    pub fn new(runs: Vec<Vec<OrderedKey>>) -> Self {
        let mut runs: Vec<_> = runs.into_iter().map(Vec::into_iter).collect();
        let mut heads = BinaryHeap::with_capacity(runs.len());
        for (i, run) in runs.iter_mut().enumerate() {
            if let Some(k) = run.next() {
                heads.push(Reverse((k, i)));
            }
        }
        RunMerge { runs, heads }
    }
}

impl Iterator for RunMerge {
    type Item = OrderedKey;

    fn next(&mut self) -> Option<OrderedKey> {
        let Reverse((key, run)) = self.heads.pop()?;
        if let Some(next) = self.runs[run].next() {
            self.heads.push(Reverse((next, run)));
        }
        Some(key)
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
            .then_with(|| self.key.cmp(&other.key))
    }
}

/// A range bound for the ordered set from a plain key (the set's search key;
/// the slot takes no part in the order).
fn bound_of(start: Bound<&[u8]>) -> Bound<OrderedKey> {
    start.map(|k| OrderedKey::new(Rc::from(k), 0))
}

/// Cache lines of a value [`Memtable::prefetch`] hints (a longer value
/// streams in behind them).
const PREFETCH_VALUE_LINES: usize = 2;

/// Fixed per-entry overhead charged to the budget (hash slot, ordered-set
/// slot, the shared key's header, the value's header); an estimate, so the
/// budget tracks real memory use.
const ENTRY_OVERHEAD_BYTES: usize = 112;

/// Most keys a memtable is sized for up front (see
/// [`Memtable::presize_keys`]): about 32 MiB of address space for the index
/// and vectors, of which only the index's control bytes are touched before
/// use. The default 64 MiB budget holds at most ~600k keys.
pub const PRESIZE_KEYS_MAX: usize = 1 << 20;

/// An ordered map from key to its highest-version record.
#[derive(Debug, Default)]
pub struct Memtable {
    /// Each key's slot in `records`.
    slots: HashMap<Rc<[u8]>, usize, ahash::RandomState>,
    /// Each key's record, in insertion order (`keys[i]` is the key of
    /// `records[i]`).
    records: Vec<Record>,
    /// Every key once, in insertion order.
    keys: Vec<OrderedKey>,
    /// The key order, built by the first scan and kept by later inserts.
    order: RefCell<Option<BTreeSet<OrderedKey>>>,
    bytes: usize,
    max_version: Version,
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty memtable with room for `keys` keys before any regrowth.
    pub fn with_capacity(keys: usize) -> Self {
        Memtable {
            slots: HashMap::with_capacity_and_hasher(keys, ahash::RandomState::new()),
            records: Vec::with_capacity(keys),
            keys: Vec::with_capacity(keys),
            ..Self::default()
        }
    }

    /// How many keys a memtable of `budget_bytes` can hold before it is
    /// frozen (every entry is charged at least its fixed overhead), capped at
    /// [`PRESIZE_KEYS_MAX`]. Sized for this from the start, a memtable never
    /// regrows under writers: each doubling of its index and record vectors
    /// rehashed or copied every entry at once, 12-13 ms at 260k keys.
    pub fn presize_keys(budget_bytes: usize) -> usize {
        (budget_bytes / ENTRY_OVERHEAD_BYTES + 1).min(PRESIZE_KEYS_MAX)
    }

    /// Bytes one entry is charged in the memtable budget.
    pub fn entry_bytes(key: &[u8], record: &Record) -> usize {
        key.len() + record.size_estimate() + ENTRY_OVERHEAD_BYTES
    }

    /// Stores `record` for `key` unless the memtable already holds a record of
    /// an equal or higher version. Returns whether the record was stored.
    pub fn insert(&mut self, key: &[u8], record: Record) -> bool {
        let new_bytes = Self::entry_bytes(key, &record);
        let version = record.version;
        match self.slots.get(key) {
            Some(&slot) => {
                let existing = &mut self.records[slot];
                if existing.version >= version {
                    return false;
                }
                let old_bytes = Self::entry_bytes(key, existing);
                *existing = record;
                self.bytes = self.bytes - old_bytes + new_bytes;
            }
            None => {
                let key: Rc<[u8]> = Rc::from(key);
                let slot = self.records.len();
                let ordered = OrderedKey::new(Rc::clone(&key), slot);
                if let Some(order) = self.order.get_mut() {
                    order.insert(ordered.clone());
                }
                self.keys.push(ordered);
                self.slots.insert(key, slot);
                self.records.push(record);
                self.bytes += new_bytes;
            }
        }
        self.max_version = self.max_version.max(version);
        true
    }

    /// The record stored for `key` (a value, an expired value or a tombstone).
    pub fn get(&self, key: &[u8]) -> Option<&Record> {
        self.slots.get(key).map(|&slot| &self.records[slot])
    }

    /// The record of a key this memtable gave out (from
    /// [`sorted_run`](Self::sorted_run)): no hash lookup.
    pub fn record_of(&self, key: &OrderedKey) -> &Record {
        &self.records[key.slot]
    }

    /// Starts loading, without waiting, the memory that reading `keys`
    /// (from [`sorted_run`](Self::sorted_run)) and their records will touch:
    /// a flush walks keys in order, which is random in memory, so it hints
    /// a stretch of them first and their misses overlap. Changes nothing.
    pub fn prefetch(&self, keys: &[OrderedKey]) {
        for k in keys {
            prefetch_line(k.key.as_ptr());
            prefetch_line(&self.records[k.slot]);
        }
        for k in keys {
            if let Some(value) = &self.records[k.slot].value {
                for offset in (0..value.len()).step_by(64).take(PREFETCH_VALUE_LINES) {
                    prefetch_line(&value[offset]);
                }
            }
        }
    }

    /// Up to `max` entries with keys after `start`, in key order, cloned so the
    /// caller can hold them across an `.await` without borrowing the memtable.
    /// The first call builds the key order (see the module doc).
    pub fn entries_from(&self, start: Bound<&[u8]>, max: usize) -> Vec<(Vec<u8>, Record)> {
        let mut order = self.order.borrow_mut();
        let order = order.get_or_insert_with(|| {
            let mut keys = self.keys.clone();
            keys.sort_unstable();
            keys.into_iter().collect()
        });
        // The end is unbounded, so `range` cannot panic on an inverted range.
        order
            .range((bound_of(start), Bound::Unbounded))
            .map(|k| (k.key.to_vec(), self.records[k.slot].clone()))
            .take(max)
            .collect()
    }

    /// Every entry in key order (sorts a copy of the keys: for tests and
    /// tools, not the serving path).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Record)> {
        let mut keys: Vec<&OrderedKey> = self.keys.iter().collect();
        keys.sort_unstable();
        keys.into_iter().map(|k| (&*k.key, &self.records[k.slot]))
    }

    /// Keys `start..start + max` of the insertion order, sorted: one run of
    /// a flush, which sorts the memtable a run at a time (yielding between
    /// runs) and merges the runs with [`RunMerge`].
    pub fn sorted_run(&self, start: usize, max: usize) -> Vec<OrderedKey> {
        let end = start.saturating_add(max).min(self.keys.len());
        let mut run = self.keys.get(start..end).unwrap_or_default().to_vec();
        run.sort_unstable();
        run
    }

    /// Bytes charged to the budget (see [`Memtable::entry_bytes`]).
    pub fn approximate_bytes(&self) -> usize {
        self.bytes
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The highest version of any record ever inserted (for version pruning).
    pub fn max_version(&self) -> Version {
        self.max_version
    }

    /// Consumes the memtable into a [`Teardown`] that frees it a stretch at a
    /// time. Dropping a flushed memtable of ~270k entries at once held its
    /// shard for 13-15 ms (one free per key, value and index entry), which was
    /// the p99 of an open-loop SET run; freed in steps with yields between,
    /// requests run in the gaps.
    pub fn take_apart(self) -> Teardown {
        Teardown {
            slots: self.slots.into_iter(),
            records: self.records.into_iter(),
            keys: self.keys.into_iter(),
            order: self.order.into_inner().map(BTreeSet::into_iter),
        }
    }
}

/// A memtable being freed in steps (see [`Memtable::take_apart`]). Whatever
/// is left is freed at once when it is dropped.
pub struct Teardown {
    slots: std::collections::hash_map::IntoIter<Rc<[u8]>, usize>,
    records: std::vec::IntoIter<Record>,
    keys: std::vec::IntoIter<OrderedKey>,
    order: Option<std::collections::btree_set::IntoIter<OrderedKey>>,
}

impl Teardown {
    /// Frees up to `entries` more entries of each of the memtable's parts
    /// (index, records, keys and key order). Returns whether anything is left.
    pub fn free_some(&mut self, entries: usize) -> bool {
        self.slots.by_ref().take(entries).for_each(drop);
        self.records.by_ref().take(entries).for_each(drop);
        self.keys.by_ref().take(entries).for_each(drop);
        if let Some(order) = &mut self.order {
            order.by_ref().take(entries).for_each(drop);
        }
        self.slots.len() > 0
            || self.records.len() > 0
            || self.keys.len() > 0
            || self.order.as_ref().is_some_and(|o| o.len() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(hlc: u64) -> Version {
        Version { hlc, node: 1 }
    }

    #[test]
    fn higher_version_replaces_lower_and_lower_is_ignored() {
        let mut m = Memtable::new();
        assert!(m.insert(b"k", Record::put(v(5), b"five".to_vec(), 0)));
        assert!(!m.insert(b"k", Record::put(v(3), b"three".to_vec(), 0)));
        assert_eq!(
            m.get(b"k").map(|r| r.value.clone()),
            Some(Some(b"five".to_vec()))
        );
        assert!(m.insert(b"k", Record::tombstone(v(7))));
        assert!(m.get(b"k").is_some_and(Record::is_tombstone));
        assert_eq!(m.max_version(), v(7));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_teardown_frees_a_step_at_a_time_and_ends() {
        let mut m = Memtable::new();
        for i in 0..10_000u32 {
            m.insert(&i.to_be_bytes(), Record::put(v(1), vec![7; 16], 0));
        }
        // A scan builds the key order, which the teardown frees too.
        assert_eq!(m.entries_from(Bound::Unbounded, 5).len(), 5);
        let mut teardown = m.take_apart();
        let mut steps = 1;
        while teardown.free_some(4096) {
            steps += 1;
            assert!(steps <= 3, "10,000 entries take three steps of 4,096");
        }
        assert_eq!(steps, 3);
        assert!(!teardown.free_some(4096), "nothing is left");
    }

    #[test]
    fn equal_version_keeps_the_stored_record() {
        let mut m = Memtable::new();
        assert!(m.insert(b"k", Record::put(v(5), b"a".to_vec(), 0)));
        assert!(!m.insert(b"k", Record::put(v(5), b"b".to_vec(), 0)));
        assert_eq!(
            m.get(b"k").and_then(|r| r.value.clone()),
            Some(b"a".to_vec())
        );
    }

    #[test]
    fn byte_budget_follows_replacements() {
        let mut m = Memtable::new();
        m.insert(b"k", Record::put(v(1), vec![0; 100], 0));
        let big = m.approximate_bytes();
        m.insert(b"k", Record::put(v(2), vec![0; 10], 0));
        assert_eq!(big - m.approximate_bytes(), 90);
        m.insert(b"j", Record::tombstone(v(3)));
        assert_eq!(
            m.approximate_bytes(),
            Memtable::entry_bytes(b"k", &Record::put(v(2), vec![0; 10], 0))
                + Memtable::entry_bytes(b"j", &Record::tombstone(v(3)))
        );
    }

    #[test]
    fn a_flush_reads_each_keys_newest_record_through_its_ordered_key() {
        let mut m = Memtable::with_capacity(4);
        for (i, k) in [b"c", b"a", b"d", b"b", b"e"].iter().enumerate() {
            m.insert(*k, Record::put(v(1), vec![i as u8], 0));
        }
        m.insert(b"a", Record::put(v(2), b"newer".to_vec(), 0));
        m.insert(b"d", Record::tombstone(v(3)));
        let runs = vec![m.sorted_run(0, 2), m.sorted_run(2, 2), m.sorted_run(4, 2)];
        let merged: Vec<OrderedKey> = RunMerge::new(runs).collect();
        m.prefetch(&merged);
        let keys: Vec<&[u8]> = merged.iter().map(OrderedKey::key).collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"c", b"d", b"e"]);
        for k in &merged {
            assert_eq!(Some(m.record_of(k)), m.get(k.key()));
        }
        assert_eq!(
            m.record_of(&merged[0]).value.as_deref(),
            Some(&b"newer"[..])
        );
        assert!(m.record_of(&merged[3]).is_tombstone());
    }

    #[test]
    fn entries_from_resumes_after_a_cursor() {
        let mut m = Memtable::new();
        for k in [b"a", b"b", b"c", b"d"] {
            m.insert(k, Record::put(v(1), k.to_vec(), 0));
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

    use proptest::prelude::*;

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
        ) {
            let mut m = Memtable::new();
            // Some keys before the first scan builds the order, the rest after.
            let split = split.min(keys.len());
            for (i, k) in keys[..split].iter().enumerate() {
                m.insert(k, Record::put(v(i as u64 + 1), vec![], 0));
            }
            let _ = m.entries_from(Bound::Unbounded, 1);
            for (i, k) in keys[split..].iter().enumerate() {
                m.insert(k, Record::put(v((split + i) as u64 + 1), vec![], 0));
            }
            let mut expected: Vec<Vec<u8>> = keys.clone();
            expected.sort();
            expected.dedup();
            let got: Vec<Vec<u8>> = m.iter().map(|(k, _)| k.to_vec()).collect();
            prop_assert_eq!(&got, &expected);
            // The flush's way: sorted runs of the insertion order, merged.
            let runs: Vec<Vec<OrderedKey>> = (0..m.len())
                .step_by(run_keys)
                .map(|start| m.sorted_run(start, run_keys))
                .collect();
            let merged: Vec<Vec<u8>> = RunMerge::new(runs).map(|k| k.key().to_vec()).collect();
            prop_assert_eq!(&merged, &expected);
            let after: Vec<Vec<u8>> = m
                .entries_from(Bound::Excluded(cursor.as_slice()), usize::MAX)
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            let expected_after: Vec<Vec<u8>> =
                expected.iter().filter(|k| **k > cursor).cloned().collect();
            prop_assert_eq!(after, expected_after);
        }
    }
}
