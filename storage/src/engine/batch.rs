//! Write batches and scan ranges: the engine's request types.

use crate::types::{Record, Version};
use std::ops::Bound;

/// Writes applied atomically: one WAL record, all or nothing after a crash.
/// Entries of one key inside a batch reconcile like any writes (highest
/// version wins; on equal versions the first one stays).
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub(crate) entries: Vec<(Vec<u8>, Record)>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put of `value` at `version`, expiring at `expires_at_ms` (0 = never).
    pub fn put(&mut self, key: &[u8], value: &[u8], version: Version, expires_at_ms: u64) {
        self.entries.push((
            key.to_vec(),
            Record::put(version, value.to_vec(), expires_at_ms),
        ));
    }

    /// Adds a delete (a tombstone at `version`).
    pub fn delete(&mut self, key: &[u8], version: Version) {
        self.entries
            .push((key.to_vec(), Record::tombstone(version)));
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The keys a scan visits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanRange {
    /// Every key starting with these bytes (all keys when empty).
    Prefix(Vec<u8>),
    /// Keys between two bounds. An empty or inverted range yields nothing.
    Range {
        /// Lower bound.
        start: Bound<Vec<u8>>,
        /// Upper bound.
        end: Bound<Vec<u8>>,
    },
}

impl ScanRange {
    /// The lower bound where the scan starts.
    pub fn start(&self) -> Bound<Vec<u8>> {
        match self {
            ScanRange::Prefix(p) => Bound::Included(p.clone()),
            ScanRange::Range { start, .. } => start.clone(),
        }
    }

    /// Whether `key` (visited in ascending order from [`ScanRange::start`]) is
    /// past the end of the range, so the scan can stop.
    pub fn is_past_end(&self, key: &[u8]) -> bool {
        match self {
            ScanRange::Prefix(p) => !key.starts_with(p) && key > p.as_slice(),
            ScanRange::Range { end, .. } => match end {
                Bound::Included(e) => key > e.as_slice(),
                Bound::Excluded(e) => key >= e.as_slice(),
                Bound::Unbounded => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_range_ends_at_the_first_key_without_the_prefix() {
        let r = ScanRange::Prefix(b"ab".to_vec());
        assert_eq!(r.start(), Bound::Included(b"ab".to_vec()));
        assert!(!r.is_past_end(b"ab"));
        assert!(!r.is_past_end(b"ab\xff\xff"));
        assert!(r.is_past_end(b"ac"));
        assert!(ScanRange::Prefix(Vec::new()).start() == Bound::Included(Vec::new()));
        assert!(!ScanRange::Prefix(Vec::new()).is_past_end(b"\xff"));
    }

    #[test]
    fn range_bounds_are_honoured() {
        let r = ScanRange::Range {
            start: Bound::Excluded(b"a".to_vec()),
            end: Bound::Excluded(b"c".to_vec()),
        };
        assert!(!r.is_past_end(b"b"));
        assert!(r.is_past_end(b"c"));
        let r = ScanRange::Range {
            start: Bound::Unbounded,
            end: Bound::Included(b"c".to_vec()),
        };
        assert!(!r.is_past_end(b"c"));
        assert!(r.is_past_end(b"c\0"));
    }
}
