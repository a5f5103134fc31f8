//! Codec of a write batch's entries: the payload of a WAL batch frame. Plain
//! functions over byte slices, no I/O.
//!
//! ```text
//! u32 entry_count
//! entry_count times:
//!   u32 key_len          <= KEY_SIZE_MAX
//!   u8  flags            bit 0: has a value (0 = tombstone); other bits zero
//!   u64 version.hlc
//!   u32 version.node
//!   u64 expires_at_ms    0 = never
//!   u32 value_len        <= VALUE_SIZE_MAX; 0 for a tombstone
//!   key_len bytes        key
//!   value_len bytes      value
//! ```
//! All integers little endian. The decoder checks every length against the
//! limits and the remaining bytes before it allocates, and that nothing trails.

use crate::error::{Error, Result};
use crate::limits::{BATCH_ENTRIES_MAX, BATCH_SIZE_MAX, KEY_SIZE_MAX, VALUE_SIZE_MAX};
use crate::types::{Record, RecordRef, Version};

const ENTRY_HEADER_SIZE: usize = 4 + 1 + 8 + 4 + 8 + 4;
const FLAG_HAS_VALUE: u8 = 1;

// `limits` checks its relations with this overhead; keep them in step.
const _: () = assert!(4 + ENTRY_HEADER_SIZE == crate::limits::WAL_BATCH_ENTRY_OVERHEAD);

/// Encoded size of `entries` in bytes.
pub fn encoded_len(entries: &[(&[u8], RecordRef<'_>)]) -> usize {
    4 + entries
        .iter()
        .map(|(k, r)| ENTRY_HEADER_SIZE + k.len() + r.value.map_or(0, <[u8]>::len))
        .sum::<usize>()
}

/// Checks one entry's key and value against [`KEY_SIZE_MAX`] and
/// [`VALUE_SIZE_MAX`]: the one place these limits are enforced for writes.
pub fn check_entry(key: &[u8], record: RecordRef<'_>) -> Result<()> {
    if key.len() > KEY_SIZE_MAX {
        return Err(Error::KeyTooLarge {
            size: key.len(),
            size_max: KEY_SIZE_MAX,
        });
    }
    let value_len = record.value.map_or(0, <[u8]>::len);
    if value_len > VALUE_SIZE_MAX {
        return Err(Error::ValueTooLarge {
            size: value_len,
            size_max: VALUE_SIZE_MAX,
        });
    }
    Ok(())
}

/// Checks `entries` against the key, value and batch limits; nothing is
/// encoded when this fails. Returns the encoded size.
pub fn validate(entries: &[(&[u8], RecordRef<'_>)]) -> Result<usize> {
    for (key, record) in entries {
        check_entry(key, *record)?;
    }
    let size = encoded_len(entries);
    if entries.len() > BATCH_ENTRIES_MAX || size > BATCH_SIZE_MAX {
        return Err(Error::BatchTooLarge {
            entries: entries.len(),
            entries_max: BATCH_ENTRIES_MAX,
            size,
            size_max: BATCH_SIZE_MAX,
        });
    }
    Ok(size)
}

/// Appends the encoding of `entries` to `out`. The caller validated them.
pub fn encode(entries: &[(&[u8], RecordRef<'_>)], out: &mut Vec<u8>) {
    assert!(
        entries.len() <= BATCH_ENTRIES_MAX,
        "batch of {} entries",
        entries.len()
    );
    out.reserve(encoded_len(entries));
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (key, record) in entries {
        let value = record.value.unwrap_or_default();
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.push(if record.value.is_some() {
            FLAG_HAS_VALUE
        } else {
            0
        });
        out.extend_from_slice(&record.version.hlc.to_le_bytes());
        out.extend_from_slice(&record.version.node.to_le_bytes());
        out.extend_from_slice(&record.expires_at_ms.to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
}

/// Why a batch payload did not decode: the offset inside the payload and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset within the payload where decoding failed.
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

/// Decodes a batch payload. Never panics; every length is checked before use.
pub fn decode(payload: &[u8]) -> std::result::Result<Vec<(Vec<u8>, Record)>, DecodeError> {
    let mut r = Reader {
        bytes: payload,
        pos: 0,
    };
    let count = r.u32()? as usize;
    if count > BATCH_ENTRIES_MAX {
        return Err(r.error(format!(
            "{count} entries over the limit {BATCH_ENTRIES_MAX}"
        )));
    }
    // Each entry takes at least its header, so a hostile count cannot make us
    // reserve more than the payload could hold.
    let mut entries = Vec::with_capacity(count.min(payload.len() / ENTRY_HEADER_SIZE));
    for _ in 0..count {
        let key_len = r.u32()? as usize;
        let flags = r.u8()?;
        let hlc = r.u64()?;
        let node = r.u32()?;
        let expires_at_ms = r.u64()?;
        let value_len = r.u32()? as usize;
        if key_len > KEY_SIZE_MAX {
            return Err(r.error(format!(
                "key of {key_len} bytes over the limit {KEY_SIZE_MAX}"
            )));
        }
        if value_len > VALUE_SIZE_MAX {
            return Err(r.error(format!(
                "value of {value_len} bytes over the limit {VALUE_SIZE_MAX}"
            )));
        }
        if flags & !FLAG_HAS_VALUE != 0 {
            return Err(r.error(format!("unknown entry flags {flags:#04x}")));
        }
        let has_value = flags & FLAG_HAS_VALUE != 0;
        if !has_value && value_len != 0 {
            return Err(r.error(format!("tombstone with a value of {value_len} bytes")));
        }
        let key = r.bytes(key_len)?.to_vec();
        let value = r.bytes(value_len)?;
        let version = Version { hlc, node };
        let record = Record {
            version,
            expires_at_ms,
            value: has_value.then(|| value.to_vec()),
        };
        entries.push((key, record));
    }
    if r.pos != payload.len() {
        return Err(r.error(format!(
            "{} trailing bytes after the last entry",
            payload.len() - r.pos
        )));
    }
    Ok(entries)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: String) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason,
        }
    }

    fn bytes(&mut self, n: usize) -> std::result::Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                self.error(format!(
                    "{n} bytes needed, {} left",
                    self.bytes.len() - self.pos
                ))
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> std::result::Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    fn u32(&mut self) -> std::result::Result<u32, DecodeError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.bytes(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> std::result::Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(Vec<u8>, Record)> {
        vec![
            (
                b"alpha".to_vec(),
                Record::put(Version::new(5, 1, 2), b"one".to_vec(), 0),
            ),
            (
                b"".to_vec(),
                Record::put(Version::new(6, 0, 3), Vec::new(), 99),
            ),
            (b"gamma".to_vec(), Record::tombstone(Version::new(7, 2, 1))),
        ]
    }

    fn encode_owned(entries: &[(Vec<u8>, Record)]) -> Vec<u8> {
        let refs: Vec<(&[u8], RecordRef<'_>)> = entries
            .iter()
            .map(|(k, r)| (k.as_slice(), r.into()))
            .collect();
        let mut out = Vec::new();
        encode(&refs, &mut out);
        assert_eq!(out.len(), encoded_len(&refs));
        out
    }

    #[test]
    fn batch_round_trips() {
        let entries = sample();
        assert_eq!(decode(&encode_owned(&entries)).unwrap(), entries);
        assert_eq!(decode(&encode_owned(&[])).unwrap(), vec![]);
    }

    #[test]
    fn every_truncation_of_a_batch_is_an_error_not_a_panic() {
        let bytes = encode_owned(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }

    #[test]
    fn every_byte_flip_of_a_batch_decodes_or_errors_without_panicking() {
        let bytes = encode_owned(&sample());
        for i in 0..bytes.len() {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = bytes.clone();
                b[i] = v;
                let _ = decode(&b);
            }
        }
    }

    #[test]
    fn oversized_keys_values_and_batches_are_refused() {
        let big_key = vec![0u8; KEY_SIZE_MAX + 1];
        let r = Record::put(Version::ZERO, vec![], 0);
        assert!(matches!(
            validate(&[(&big_key, (&r).into())]),
            Err(Error::KeyTooLarge { .. })
        ));
        let big = Record::put(Version::ZERO, vec![0; VALUE_SIZE_MAX + 1], 0);
        assert!(matches!(
            validate(&[(b"k", (&big).into())]),
            Err(Error::ValueTooLarge { .. })
        ));
        let many: Vec<(&[u8], RecordRef<'_>)> = (0..BATCH_ENTRIES_MAX + 1)
            .map(|_| (&b"k"[..], (&r).into()))
            .collect();
        assert!(matches!(validate(&many), Err(Error::BatchTooLarge { .. })));
    }

    proptest::proptest! {
        #[test]
        fn any_batch_round_trips_and_any_bytes_decode_without_panic(
            raw in proptest::collection::vec(
                (
                    proptest::collection::vec(proptest::num::u8::ANY, 0..64),
                    proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..300)),
                    proptest::num::u64::ANY,
                    proptest::num::u32::ANY,
                    proptest::num::u64::ANY,
                ),
                0..16,
            ),
            junk in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let entries: Vec<(Vec<u8>, Record)> = raw
                .into_iter()
                .map(|(key, value, hlc, node, expires_at_ms)| {
                    (key, Record { version: Version { hlc, node }, expires_at_ms: if value.is_some() { expires_at_ms } else { 0 }, value })
                })
                .collect();
            proptest::prop_assert_eq!(decode(&encode_owned(&entries)).unwrap(), entries);
            let _ = decode(&junk);
        }
    }
}
