//! What the cluster layer moves between nodes: versions, records (a value or a
//! tombstone) and mutations (a key with its record).
//!
//! Invariant: of two records of one key, the higher [`Version`] wins
//! (last-write-wins), whatever order they arrive in ([`newest`]). These mirror `ringkv_storage::{Version,
//! Record}` field for field, so the shell converts them without loss; this
//! crate does not depend on the storage crate (it stays pure logic).

/// Id of a node in the cluster. `u32::MAX` is reserved (see
/// [`crate::hints::delivered_version`]).
pub type NodeId = u32;

/// The version of a write: a hybrid-logical-clock timestamp and the id of the
/// node that stamped it. Ordered by `(hlc, node)`.
///
/// `hlc = physical_ms << 16 | logical`: milliseconds since the Unix epoch in the
/// upper 48 bits, a logical counter in the lower 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// Hybrid logical clock: `physical_ms << 16 | logical`.
    pub hlc: u64,
    /// Id of the node whose coordinator stamped the write (tie breaker).
    pub node: NodeId,
}

impl Version {
    /// The lowest version; every real write is above it.
    pub const ZERO: Version = Version { hlc: 0, node: 0 };
    /// Bits of `hlc` used by the logical counter.
    pub const LOGICAL_BITS: u32 = 16;

    /// Builds a version from physical milliseconds, a logical counter and a node id.
    pub fn new(physical_ms: u64, logical: u16, node: NodeId) -> Self {
        Version {
            hlc: (physical_ms << Self::LOGICAL_BITS) | u64::from(logical),
            node,
        }
    }

    /// The physical-time part of the clock, in milliseconds since the Unix epoch.
    pub fn physical_ms(&self) -> u64 {
        self.hlc >> Self::LOGICAL_BITS
    }
}

/// A stored value or tombstone (value `None`), with its version and expiry
/// (Unix ms, 0 = never).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The value, or `None` for a tombstone (a delete).
    pub value: Option<Vec<u8>>,
    /// The write's version; the highest version of a key is the live one.
    pub version: Version,
    /// Absolute expiry in milliseconds since the Unix epoch; 0 means never.
    pub expires_at_ms: u64,
}

impl Record {
    /// A value record.
    pub fn put(version: Version, value: Vec<u8>, expires_at_ms: u64) -> Self {
        Record {
            value: Some(value),
            version,
            expires_at_ms,
        }
    }

    /// A tombstone record (never expires: it must outlive what it deletes).
    pub fn tombstone(version: Version) -> Self {
        Record {
            value: None,
            version,
            expires_at_ms: 0,
        }
    }

    /// Whether this record is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// Whether this record reads as absent at `now_ms`: a tombstone, or a
    /// value whose expiry has passed.
    pub fn is_dead_at(&self, now_ms: u64) -> bool {
        self.value.is_none() || (self.expires_at_ms != 0 && self.expires_at_ms <= now_ms)
    }
}

/// One key's write, shared by every effect that sends it (one allocation per
/// write, behind an `Rc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    /// The user key.
    pub key: Vec<u8>,
    /// The record written under it.
    pub record: Record,
}

/// Of two optional records, the one with the higher version (`None` is
/// lowest). On equal versions `a` is returned: equal versions are the same
/// write, since a coordinator never stamps two writes with one version.
pub fn newest<'a>(a: Option<&'a Record>, b: Option<&'a Record>) -> Option<&'a Record> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.version > x.version { y } else { x }),
        (Some(x), None) => Some(x),
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(hlc: u64, node: NodeId) -> Record {
        Record::put(Version { hlc, node }, vec![hlc as u8], 0)
    }

    #[test]
    fn versions_order_by_clock_then_node() {
        assert!(Version { hlc: 2, node: 0 } > Version { hlc: 1, node: 9 });
        assert!(Version { hlc: 2, node: 1 } > Version { hlc: 2, node: 0 });
        assert_eq!(Version::new(5, 3, 1).physical_ms(), 5);
        assert_eq!(Version::new(5, 3, 1).hlc & 0xffff, 3);
    }

    #[test]
    fn newest_picks_the_higher_version_and_none_is_lowest() {
        let (a, b) = (rec(1, 0), rec(2, 0));
        assert_eq!(newest(Some(&a), Some(&b)), Some(&b));
        assert_eq!(newest(Some(&b), Some(&a)), Some(&b));
        assert_eq!(newest(None, Some(&a)), Some(&a));
        assert_eq!(newest(Some(&a), None), Some(&a));
        assert_eq!(newest(None, None), None);
        let t = Record::tombstone(Version { hlc: 3, node: 0 });
        assert_eq!(newest(Some(&b), Some(&t)), Some(&t));
    }

    #[test]
    fn expired_values_and_tombstones_read_as_dead() {
        let v = Record::put(Version::ZERO, vec![1], 10);
        assert!(!v.is_dead_at(9));
        assert!(v.is_dead_at(10));
        assert!(!Record::put(Version::ZERO, vec![], 0).is_dead_at(u64::MAX));
        assert!(Record::tombstone(Version::ZERO).is_dead_at(0));
    }
}
