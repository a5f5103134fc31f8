//! What a compaction keeps of one key's winning record.
//!
//! Rules (applied to the highest-version record of a key among the inputs;
//! lower versions are dropped before this is called):
//! - An expired value becomes a tombstone with the same version, so it keeps
//!   shadowing older versions of the key in deeper levels.
//! - A tombstone is dropped only when the output is the bottommost level (no
//!   older data of the key can lie below) and it is older than the grace
//!   period (by its version's physical time), so a replica that missed the
//!   delete cannot resurrect the key by replaying an older write it holds.
//!   Expired values follow the same rule once turned into tombstones, as
//!   Cassandra purges expired cells after gc_grace.

use crate::types::RecordRef;

/// The record a compaction writes for one key, or `None` to drop the key.
/// `now_ms` is wall-clock milliseconds; `grace_ms` the tombstone grace period.
/// Borrowed in and out: a compaction copies no value to decide.
pub fn retain(
    record: RecordRef<'_>,
    now_ms: u64,
    grace_ms: u64,
    bottommost: bool,
) -> Option<RecordRef<'_>> {
    let record = if record.is_dead_at(now_ms) && !record.is_tombstone() {
        RecordRef::tombstone(record.version)
    } else {
        record
    };
    if record.is_tombstone()
        && bottommost
        && record.version.physical_ms().saturating_add(grace_ms) < now_ms
    {
        return None;
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use crate::types::{Record, Version};

    /// `super::retain` on an owned record, the answer owned again.
    fn retain(record: Record, now_ms: u64, grace_ms: u64, bottommost: bool) -> Option<Record> {
        super::retain((&record).into(), now_ms, grace_ms, bottommost).map(|r| r.to_record())
    }

    const NOW: u64 = 1_000_000;
    const GRACE: u64 = 1_000;

    fn at(ms: u64) -> Version {
        Version::new(ms, 0, 1)
    }

    #[test]
    fn live_values_are_kept_unchanged_at_every_level() {
        let r = Record::put(at(10), b"v".to_vec(), NOW + 1);
        assert_eq!(retain(r.clone(), NOW, GRACE, false), Some(r.clone()));
        assert_eq!(retain(r.clone(), NOW, GRACE, true), Some(r));
    }

    #[test]
    fn expired_values_become_tombstones_of_the_same_version() {
        let r = Record::put(at(NOW - 10), b"v".to_vec(), NOW);
        assert_eq!(
            retain(r.clone(), NOW, GRACE, false),
            Some(Record::tombstone(at(NOW - 10)))
        );
        // Young: kept as a tombstone even at the bottom.
        assert_eq!(
            retain(r, NOW, GRACE, true),
            Some(Record::tombstone(at(NOW - 10)))
        );
    }

    #[test]
    fn old_tombstones_are_dropped_only_at_the_bottommost_level() {
        let old = Record::tombstone(at(NOW - GRACE - 1));
        assert_eq!(retain(old.clone(), NOW, GRACE, false), Some(old.clone()));
        assert_eq!(retain(old, NOW, GRACE, true), None);
        let young = Record::tombstone(at(NOW - GRACE));
        assert_eq!(retain(young.clone(), NOW, GRACE, true), Some(young));
    }

    #[test]
    fn old_expired_values_are_purged_at_the_bottommost_level() {
        let r = Record::put(at(NOW - GRACE - 5), b"v".to_vec(), NOW - GRACE);
        assert_eq!(retain(r, NOW, GRACE, true), None);
    }
}
