//! The memtable: the ordered, in-memory part of one shard's LSM tree.
//!
//! Owns the most recent writes (those not yet flushed to an L0 table), one
//! record per key: the record with the highest [`Version`] seen for that key
//! (last-write-wins, ties keep the record already stored, so replaying a WAL in
//! order is deterministic).
//!
//! Invariants:
//! - Single owner, single thread: plain maps, no concurrent structure.
//! - Every key is in both `records` (a hash map: a point read costs one hash
//!   and one comparison instead of a B-tree walk of ~40 `memcmp`s, which took
//!   a third of the server's CPU per GET) and `order` (the key order, for
//!   scans and flushes). Both share the key bytes through one `Rc<[u8]>`.
//!   The ordered set holds each key with its first 16 bytes inline
//!   ([`OrderKey`]): most comparisons of an insert end on that integer
//!   without following the key's pointer (a B-tree insert makes ~40 of them,
//!   each a cache miss through the pointer, which took a quarter of a SET).
//! - `approximate_bytes` is the sum of [`Memtable::entry_bytes`] over the stored
//!   entries; the engine freezes the memtable when it passes its budget.
//! - A frozen memtable (handed to a flush) is never mutated again; readers may
//!   keep reading it while it is flushed.
//!
//! It does not do I/O, decide when to freeze, or drop tombstones: tombstones and
//! expired values stay until compaction purges them from the tables.

use crate::types::{Record, Version};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::rc::Rc;

/// A key in the memtable's order: its first 16 bytes as a big-endian integer
/// (zero-padded), then the whole key. Orders exactly as the key bytes do:
/// the prefixes compare like the keys' first 16 bytes, and equal prefixes
/// fall back to the full comparison (which also settles padding ties such as
/// `b"a"` against `b"a\0"`).
#[derive(Clone, Debug)]
struct OrderKey {
    prefix: u128,
    key: Rc<[u8]>,
}

fn prefix_of(key: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = key.len().min(16);
    bytes[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(bytes)
}

impl OrderKey {
    fn new(key: Rc<[u8]>) -> Self {
        OrderKey {
            prefix: prefix_of(&key),
            key,
        }
    }
}

impl PartialEq for OrderKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for OrderKey {}

impl PartialOrd for OrderKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.key.cmp(&other.key))
    }
}

/// A range bound for the ordered set from a plain key (the set's search key).
fn bound_of(start: Bound<&[u8]>) -> Bound<OrderKey> {
    start.map(|k| OrderKey::new(Rc::from(k)))
}

/// Fixed per-entry overhead charged to the budget (hash slot, ordered-set
/// slot, the shared key's header, the value's header); an estimate, so the
/// budget tracks real memory use.
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// An ordered map from key to its highest-version record.
#[derive(Debug, Default)]
pub struct Memtable {
    records: HashMap<Rc<[u8]>, Record, ahash::RandomState>,
    order: BTreeSet<OrderKey>,
    bytes: usize,
    max_version: Version,
}

impl Memtable {
    /// An empty memtable.
    pub fn new() -> Self {
        Self::default()
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
        match self.records.get_mut(key) {
            Some(existing) => {
                if existing.version >= version {
                    return false;
                }
                let old_bytes = Self::entry_bytes(key, existing);
                *existing = record;
                self.bytes = self.bytes - old_bytes + new_bytes;
            }
            None => {
                let key: Rc<[u8]> = Rc::from(key);
                self.order.insert(OrderKey::new(Rc::clone(&key)));
                self.records.insert(key, record);
                self.bytes += new_bytes;
            }
        }
        self.max_version = self.max_version.max(version);
        true
    }

    /// The record stored for `key` (a value, an expired value or a tombstone).
    pub fn get(&self, key: &[u8]) -> Option<&Record> {
        self.records.get(key)
    }

    /// Up to `max` entries with keys after `start`, in key order, cloned so the
    /// caller can hold them across an `.await` without borrowing the memtable.
    pub fn entries_from(&self, start: Bound<&[u8]>, max: usize) -> Vec<(Vec<u8>, Record)> {
        // The end is unbounded, so `range` cannot panic on an inverted range.
        self.order
            .range((bound_of(start), Bound::Unbounded))
            .filter_map(|k| {
                self.records
                    .get(&k.key)
                    .map(|r| (k.key.to_vec(), r.clone()))
            })
            .take(max)
            .collect()
    }

    /// Every entry in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Record)> {
        // Every key of `order` is in `records` (both are filled together).
        self.order
            .iter()
            .filter_map(|k| self.records.get(&k.key).map(|r| (&*k.key, r)))
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
        ) {
            let mut m = Memtable::new();
            for (i, k) in keys.iter().enumerate() {
                m.insert(k, Record::put(v(i as u64 + 1), vec![], 0));
            }
            let mut expected: Vec<Vec<u8>> = keys.clone();
            expected.sort();
            expected.dedup();
            let got: Vec<Vec<u8>> = m.iter().map(|(k, _)| k.to_vec()).collect();
            prop_assert_eq!(&got, &expected);
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
