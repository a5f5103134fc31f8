//! How the shell stores hints in a storage engine: a pure codec.
//!
//! A hint is a write a replica did not acknowledge, kept by the coordinator's
//! shard (in a second LSM engine) until the replica is back. One hint per
//! (target, key); a newer write to the same key replaces it (LWW, like data).
//!
//! ```text
//! engine key     = target: u32 BE | user key bytes
//!                  (big-endian, so hints sort by target: one prefix scan per target)
//! engine value   = kind: u8 (1 = value, 0 = tombstone) | expires_at_ms: u64 LE | value bytes
//! engine version = the record's version
//! ```
//!
//! A delivered hint is deleted by a tombstone of version
//! [`delivered_version`]: above the hint, below any later hint of the key.
//! Decoding never panics: hostile bytes give a [`HintError`].

use crate::error::HintError;
use crate::record::{Mutation, NodeId, Record, Version};

/// Bytes of the target prefix of an engine key.
pub const HINT_KEY_PREFIX_SIZE: usize = 4;
/// Bytes of the engine value header (kind + expiry).
pub const HINT_VALUE_HEADER_SIZE: usize = 9;

const KIND_TOMBSTONE: u8 = 0;
const KIND_VALUE: u8 = 1;

/// Engine key = target node id (u32 big-endian) ++ user key. Sorts hints by
/// target, so [`hint_prefix`] finds all of one target's hints.
pub fn hint_key(target: NodeId, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(HINT_KEY_PREFIX_SIZE + key.len());
    k.extend_from_slice(&target.to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// The engine-key prefix of every hint for `target`.
pub fn hint_prefix(target: NodeId) -> [u8; 4] {
    target.to_be_bytes()
}

/// Engine value = u8 kind (1 = value, 0 = tombstone) ++ u64 LE expires_at_ms
/// ++ value bytes.
pub fn encode_hint_value(record: &Record) -> Vec<u8> {
    let body = record.value.as_deref().unwrap_or(&[]);
    let mut v = Vec::with_capacity(HINT_VALUE_HEADER_SIZE + body.len());
    v.push(if record.value.is_some() {
        KIND_VALUE
    } else {
        KIND_TOMBSTONE
    });
    v.extend_from_slice(&record.expires_at_ms.to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// Inverse of [`hint_key`] and [`encode_hint_value`]: the target and the
/// mutation to replay (its record carries `version`, the engine version).
/// Hostile bytes give a [`HintError`] naming what is wrong, never a panic.
pub fn decode_hint(
    engine_key: &[u8],
    engine_value: &[u8],
    version: Version,
) -> Result<(NodeId, Mutation), HintError> {
    let Some((prefix, key)) = engine_key.split_first_chunk::<HINT_KEY_PREFIX_SIZE>() else {
        return Err(HintError::ShortKey {
            size: engine_key.len(),
            size_min: HINT_KEY_PREFIX_SIZE,
        });
    };
    let target = NodeId::from_be_bytes(*prefix);
    if target == NodeId::MAX {
        return Err(HintError::ReservedTarget { node: target });
    }
    let Some((header, body)) = engine_value.split_first_chunk::<HINT_VALUE_HEADER_SIZE>() else {
        return Err(HintError::ShortValue {
            size: engine_value.len(),
            size_min: HINT_VALUE_HEADER_SIZE,
        });
    };
    let (kind, expiry) = (header[0], &header[1..]);
    let mut expires = [0u8; 8];
    expires.copy_from_slice(expiry);
    let expires_at_ms = u64::from_le_bytes(expires);
    let value = match kind {
        KIND_VALUE => Some(body.to_vec()),
        KIND_TOMBSTONE if body.is_empty() => None,
        KIND_TOMBSTONE => return Err(HintError::TrailingBytes { size: body.len() }),
        kind => return Err(HintError::BadKind { kind }),
    };
    let record = Record {
        value,
        version,
        expires_at_ms,
    };
    Ok((
        target,
        Mutation {
            key: key.to_vec(),
            record,
        },
    ))
}

/// The version of the tombstone that deletes a delivered hint of version `v`:
/// `(v.hlc, u32::MAX)`. It is above `v`, so it hides the hint; and it is below
/// any later hint of the key, because hints only hold writes this node
/// stamped, its clock only moves forward (a later write has a higher `hlc`),
/// and no node has id `u32::MAX`.
pub fn delivered_version(v: Version) -> Version {
    Version {
        hlc: v.hlc,
        node: NodeId::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            any::<u64>(),
            0..NodeId::MAX,
            any::<u64>(),
        )
            .prop_map(|(value, hlc, node, expires_at_ms)| Record {
                value,
                version: Version { hlc, node },
                expires_at_ms,
            })
    }

    proptest! {
        #[test]
        fn hints_round_trip(target in 0..NodeId::MAX, key in proptest::collection::vec(any::<u8>(), 0..64), rec in arb_record()) {
            let k = hint_key(target, &key);
            prop_assert!(k.starts_with(&hint_prefix(target)));
            let v = encode_hint_value(&rec);
            let (t, m) = decode_hint(&k, &v, rec.version).unwrap();
            prop_assert_eq!(t, target);
            prop_assert_eq!(m.key, key);
            prop_assert_eq!(m.record, rec);
        }

        #[test]
        fn arbitrary_bytes_decode_to_a_value_or_an_error_never_a_panic(
            k in proptest::collection::vec(any::<u8>(), 0..16),
            v in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let _ = decode_hint(&k, &v, Version::ZERO);
        }
    }

    #[test]
    fn every_truncation_of_a_valid_encoding_is_an_error_or_a_shorter_value() {
        let rec = Record::put(Version { hlc: 7, node: 2 }, b"hello".to_vec(), 99);
        let k = hint_key(3, b"key");
        let v = encode_hint_value(&rec);
        for cut in 0..k.len() {
            let r = decode_hint(&k[..cut], &v, rec.version);
            if cut < HINT_KEY_PREFIX_SIZE {
                assert!(matches!(r, Err(HintError::ShortKey { .. })), "cut {cut}");
            } else {
                assert_eq!(r.unwrap().1.key, &b"key"[..cut - 4]);
            }
        }
        for cut in 0..v.len() {
            let r = decode_hint(&k, &v[..cut], rec.version);
            if cut < HINT_VALUE_HEADER_SIZE {
                assert!(matches!(r, Err(HintError::ShortValue { .. })), "cut {cut}");
            } else {
                // A value's length is implied by the engine value: a shorter
                // value is what the engine stored, not corruption we can see.
                assert_eq!(r.unwrap().1.record.value.unwrap(), &b"hello"[..cut - 9]);
            }
        }
        let t = encode_hint_value(&Record::tombstone(rec.version));
        for cut in 0..t.len() {
            assert!(
                decode_hint(&k, &t[..cut], rec.version).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn bad_kinds_trailing_tombstone_bytes_and_reserved_targets_are_refused() {
        let k = hint_key(1, b"k");
        let mut v = encode_hint_value(&Record::tombstone(Version::ZERO));
        v[0] = 2;
        assert_eq!(
            decode_hint(&k, &v, Version::ZERO).unwrap_err(),
            HintError::BadKind { kind: 2 }
        );
        v[0] = 0;
        v.push(1);
        assert_eq!(
            decode_hint(&k, &v, Version::ZERO).unwrap_err(),
            HintError::TrailingBytes { size: 1 }
        );
        let v = encode_hint_value(&Record::tombstone(Version::ZERO));
        assert!(matches!(
            decode_hint(&hint_key(u32::MAX, b"k"), &v, Version::ZERO),
            Err(HintError::ReservedTarget { .. })
        ));
    }

    #[test]
    fn delivered_version_sits_above_the_hint_and_below_later_writes() {
        let v = Version { hlc: 10, node: 5 };
        let d = delivered_version(v);
        assert!(d > v);
        assert!(d < Version { hlc: 11, node: 0 });
        assert!(hint_key(1, b"zzz") < hint_key(2, b""));
    }
}
