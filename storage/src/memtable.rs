//! The memtable: the ordered, in-memory part of one shard's LSM tree.
//!
//! Owns the most recent writes (those not yet flushed to an L0 table), one
//! record per key: the record with the highest [`Version`] seen for that key
//! (last-write-wins, ties keep the record already stored, so replaying a WAL in
//! order is deterministic).
//!
//! Invariants:
//! - Single owner, single thread: plain maps, no concurrent structure.
//! - Every key is in `slots` (a hash index, [`KeyIndex`]: a point read costs
//!   one hash and one comparison instead of a B-tree walk of ~40 `memcmp`s,
//!   which took a third of the server's CPU per GET) and once in `keys`, in
//!   insertion order, which owns its bytes (an `Rc<[u8]>`, shared with the
//!   key order when there is one). Its record is in `records` at the same
//!   position, and the index maps the key to that position.
//! - Key order is not kept on insert: a B-tree insert per new key took a
//!   quarter of a SET's CPU, and most memtables are never scanned. The flush
//!   sorts `keys` in runs of plain [`FlushKey`]s ([`Memtable::sorted_run`],
//!   merged by [`RunMerge`]); the first scan builds `order` (a B-tree) and
//!   from then on inserts keep it, so a scanned memtable pays what it did
//!   before and no more.
//! - Keys in order carry their first 16 bytes inline ([`OrderedKey`],
//!   [`FlushKey`]): most comparisons end on that integer without following
//!   the key's pointer.
//! - `approximate_bytes` is the sum of [`Memtable::entry_bytes`] over the stored
//!   entries; the engine freezes the memtable when it passes its budget.
//! - A frozen memtable (handed to a flush) is never mutated again; readers may
//!   keep reading it while it is flushed.
//!
//! It does not do I/O, decide when to freeze, or drop tombstones: tombstones and
//! expired values stay until compaction purges them from the tables.

use crate::key_index::{KeyIndex, Probe};
use crate::prefetch::prefetch_line;
use crate::types::{Record, Version};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::BTreeSet;
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

/// Merges sorted runs of distinct keys of one memtable (from
/// [`Memtable::sorted_run`]) into one ascending sequence. A binary min-heap
/// of the runs' next keys, ordered by [`Memtable::flush_order`], so each
/// call takes the memtable whose keys settle equal prefixes.
pub struct RunMerge {
    runs: Vec<std::vec::IntoIter<FlushKey>>,
    /// The next key of each run that has one, with its run; a min-heap.
    heads: Vec<(FlushKey, usize)>,
}

impl RunMerge {
    /// A merge of `runs` of `memtable`'s keys, each sorted ascending.
    pub fn new(runs: Vec<Vec<FlushKey>>, memtable: &Memtable) -> Self {
        let mut runs: Vec<_> = runs.into_iter().map(Vec::into_iter).collect();
        let mut heads = Vec::with_capacity(runs.len());
        for (i, run) in runs.iter_mut().enumerate() {
            if let Some(k) = run.next() {
                heads.push((k, i));
            }
        }
        let mut merge = RunMerge { runs, heads };
        for i in (0..merge.heads.len() / 2).rev() {
            merge.sift_down(i, memtable);
        }
        merge
    }

    /// The next key in order, or `None` once every run is spent.
    pub fn next(&mut self, memtable: &Memtable) -> Option<FlushKey> {
        let &(key, run) = self.heads.first()?;
        match self.runs[run].next() {
            Some(next) => self.heads[0] = (next, run),
            None => {
                self.heads.swap_remove(0);
            }
        }
        self.sift_down(0, memtable);
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

    fn sift_down(&mut self, mut i: usize, memtable: &Memtable) {
        let less = |a: &(FlushKey, usize), b: &(FlushKey, usize)| {
            memtable.flush_order(&a.0, &b.0) == Ordering::Less
        };
        let n = self.heads.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                return;
            }
            let right = left + 1;
            let child = if right < n && less(&self.heads[right], &self.heads[left]) {
                right
            } else {
                left
            };
            if !less(&self.heads[child], &self.heads[i]) {
                return;
            }
            self.heads.swap(i, child);
            i = child;
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
    /// Each key's slot in `records` (and `keys`). Its own index rather than
    /// a `hashbrown` map: an insert hashes and probes once, and a batch can
    /// hint its keys' buckets before it runs (see [`KeyIndex`]).
    slots: KeyIndex,
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
            slots: KeyIndex::with_capacity(keys),
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
        let hash = self.slots.hash(key);
        let keys = &self.keys;
        let probe =
            self.slots
                .find_or_insert(hash, |slot| *keys[slot].key == *key, self.records.len());
        match probe {
            Probe::Found(slot) => {
                let existing = &mut self.records[slot];
                if existing.version >= version {
                    return false;
                }
                let old_bytes = Self::entry_bytes(key, existing);
                *existing = record;
                self.bytes = self.bytes - old_bytes + new_bytes;
            }
            Probe::Inserted => {
                let key: Rc<[u8]> = Rc::from(key);
                let slot = self.records.len();
                let ordered = OrderedKey::new(key, slot);
                if let Some(order) = self.order.get_mut() {
                    order.insert(ordered.clone());
                }
                self.keys.push(ordered);
                self.records.push(record);
                self.bytes += new_bytes;
            }
        }
        self.max_version = self.max_version.max(version);
        true
    }

    /// The record stored for `key` (a value, an expired value or a tombstone).
    pub fn get(&self, key: &[u8]) -> Option<&Record> {
        let hash = self.slots.hash(key);
        self.slots
            .find(hash, |slot| *self.keys[slot].key == *key)
            .map(|slot| &self.records[slot])
    }

    /// Starts loading, without waiting, the index buckets that looking up or
    /// inserting each of `keys` starts from: a hint for a batch of requests
    /// about to run, so their cache misses overlap. Changes nothing.
    pub fn prefetch_keys(&self, keys: &[&[u8]]) {
        for key in keys {
            self.slots.prefetch(self.slots.hash(key));
        }
    }

    /// The key at `key`'s place (from [`sorted_run`](Self::sorted_run)).
    pub fn key_of(&self, key: &FlushKey) -> &[u8] {
        &self.keys[key.slot].key
    }

    /// The record at `key`'s place (from [`sorted_run`](Self::sorted_run)):
    /// no hash lookup.
    pub fn record_of(&self, key: &FlushKey) -> &Record {
        &self.records[key.slot]
    }

    /// The order of two keys of this memtable: by their prefixes, and by
    /// the whole keys when the prefixes are equal. Exactly the keys' byte
    /// order.
    pub fn flush_order(&self, a: &FlushKey, b: &FlushKey) -> Ordering {
        a.prefix
            .cmp(&b.prefix)
            .then_with(|| self.keys[a.slot].key.cmp(&self.keys[b.slot].key))
    }

    /// Starts loading, without waiting, the memory that reading `keys`
    /// (from [`sorted_run`](Self::sorted_run)) and their records will touch:
    /// a flush walks keys in order, which is random in memory, so it hints
    /// a stretch of them first and their misses overlap. Changes nothing.
    pub fn prefetch(&self, keys: &[FlushKey]) {
        for k in keys {
            prefetch_line(&self.keys[k.slot]);
            prefetch_line(&self.records[k.slot]);
        }
        for k in keys {
            prefetch_line(self.keys[k.slot].key.as_ptr());
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
    pub fn sorted_run(&self, start: usize, max: usize) -> Vec<FlushKey> {
        let end = start.saturating_add(max).min(self.keys.len());
        let mut run: Vec<FlushKey> = self
            .keys
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|k| FlushKey {
                prefix: k.prefix,
                slot: k.slot,
            })
            .collect();
        run.sort_unstable_by(|a, b| self.flush_order(a, b));
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
        // The index is one allocation: freed here at once.
        drop(self.slots);
        Teardown {
            records: self.records.into_iter(),
            keys: self.keys.into_iter(),
            order: self.order.into_inner().map(BTreeSet::into_iter),
        }
    }
}

/// A memtable being freed in steps (see [`Memtable::take_apart`]). Whatever
/// is left is freed at once when it is dropped.
pub struct Teardown {
    records: std::vec::IntoIter<Record>,
    keys: std::vec::IntoIter<OrderedKey>,
    order: Option<std::collections::btree_set::IntoIter<OrderedKey>>,
}

impl Teardown {
    /// Frees up to `entries` more entries of each of the memtable's parts
    /// (records, keys and key order). Returns whether anything is left.
    pub fn free_some(&mut self, entries: usize) -> bool {
        self.records.by_ref().take(entries).for_each(drop);
        self.keys.by_ref().take(entries).for_each(drop);
        if let Some(order) = &mut self.order {
            order.by_ref().take(entries).for_each(drop);
        }
        self.records.len() > 0
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
        }
    }
}
