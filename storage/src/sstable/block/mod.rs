//! Data blocks: a sorted run of entries, checksummed, optionally LZ4, padded
//! to whole 4 KiB pages so every block starts on an aligned offset.
//!
//! ```text
//! stored block (pages * 4096 bytes, at a 4 KiB-aligned file offset)
//!  0  crc32c     u32   of bytes [4, 16 + stored_len)
//!  4  flags      u8    bit 0: payload is LZ4; other bits must be 0
//!  5  zero       u8 x3
//!  8  stored_len u32   payload bytes as stored
//! 12  raw_len    u32   payload bytes once decompressed (== stored_len when raw)
//! 16  payload    stored_len bytes
//!     padding    zeros to the page boundary (never read)
//!
//! raw payload
//!  entry 0 | entry 1 | ... | entry n-1 | offset u32 * n | n u32
//!
//! entry (at offset[i]; entries are contiguous and keys strictly increasing)
//!  key_len u16 | key | kind u8 | hlc u64 | node u32
//!  | expires_at_ms u64   if kind & KIND_EXPIRES
//!  | value_len u32 | value   if kind & KIND_VALUE (absent: tombstone)
//! ```
//!
//! The offsets array at the end gives binary search inside a block.
//! [`decode`] verifies the checksum, decompresses with a bounded output,
//! then validates every offset and entry and the key order, so the accessors
//! of [`Block`] work on validated bytes only.

use super::{Compression, Cursor, DecodeError, DATA_BLOCK_SIZE_MAX};
use crate::io::align_up;
use crate::limits::{KEY_SIZE_MAX, VALUE_SIZE_MAX};
use crate::types::{Record, RecordRef, Version};

/// Size of the stored block header.
pub const BLOCK_HEADER_SIZE: usize = 16;
/// Flag: the payload is LZ4-compressed.
pub const FLAG_LZ4: u8 = 1;
/// Entry kind bit: a value follows (else the entry is a tombstone).
pub const KIND_VALUE: u8 = 1;
/// Entry kind bit: an expiry time follows.
pub const KIND_EXPIRES: u8 = 2;
/// Fewest bytes an entry takes in a raw payload, its offset slot included
/// (empty key, tombstone, no expiry).
pub const ENTRY_SIZE_MIN: usize = 2 + 1 + 8 + 4 + 4;
/// Most entries a block the reader accepts can hold: bounds an entry count
/// read from disk (`blocks * ENTRIES_PER_BLOCK_MAX`).
pub const ENTRIES_PER_BLOCK_MAX: usize = DATA_BLOCK_SIZE_MAX / ENTRY_SIZE_MIN;

// `limits` checks its relations with these overheads; keep them in step.
const _: () = assert!(ENTRY_SIZE_MIN + 8 + 4 == crate::limits::TABLE_ENTRY_OVERHEAD);
const _: () = assert!(BLOCK_HEADER_SIZE + 4 == crate::limits::TABLE_BLOCK_OVERHEAD);

/// Accumulates entries of one block and encodes it. Reused across blocks.
#[derive(Default)]
pub struct BlockBuilder {
    payload: Vec<u8>,
    offsets: Vec<u32>,
    last_key: Vec<u8>,
    scratch: Vec<u8>,
}

/// Bytes an entry takes in the raw payload, including its offset slot.
pub fn entry_encoded_size(key: &[u8], record: RecordRef<'_>) -> usize {
    let mut size = 2 + key.len() + 1 + 8 + 4 + 4;
    if record.expires_at_ms != 0 {
        size += 8;
    }
    if let Some(v) = record.value {
        size += 4 + v.len();
    }
    size
}

impl BlockBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no entry was added since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Number of entries added since the last finish.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// The last key added (still valid right after [`finish`](Self::finish),
    /// so the writer can record it in the index).
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Raw size of the block if finished now (header, entries, offsets, count).
    pub fn raw_size(&self) -> usize {
        BLOCK_HEADER_SIZE + self.payload.len() + 4 * self.offsets.len() + 4
    }

    /// Appends an entry. Keys must be strictly increasing within the block
    /// and within the limits (the engine validated them; asserted, the order
    /// by the table writer and here in debug builds).
    pub fn add<'r>(&mut self, key: &[u8], record: impl Into<RecordRef<'r>>) {
        let record = record.into();
        assert!(
            key.len() <= KEY_SIZE_MAX,
            "key of {} bytes over the limit",
            key.len()
        );
        // The table writer asserts the order of every key it adds (against
        // this builder's last key); checked again here in debug builds only,
        // a second 16-byte compare per entry was 1.5% of a SET's CPU.
        debug_assert!(
            self.offsets.is_empty() || key > self.last_key.as_slice(),
            "block keys must be strictly increasing"
        );
        let offset = u32::try_from(self.payload.len()).unwrap_or(u32::MAX);
        assert!(offset < u32::MAX, "block payload over 4 GiB");
        self.offsets.push(offset);
        let p = &mut self.payload;
        p.extend_from_slice(&(key.len() as u16).to_le_bytes());
        p.extend_from_slice(key);
        let mut kind = 0u8;
        if record.value.is_some() {
            kind |= KIND_VALUE;
        }
        if record.expires_at_ms != 0 {
            kind |= KIND_EXPIRES;
        }
        p.push(kind);
        p.extend_from_slice(&record.version.hlc.to_le_bytes());
        p.extend_from_slice(&record.version.node.to_le_bytes());
        if record.expires_at_ms != 0 {
            p.extend_from_slice(&record.expires_at_ms.to_le_bytes());
        }
        if let Some(v) = record.value {
            assert!(
                v.len() <= VALUE_SIZE_MAX,
                "value of {} bytes over the limit",
                v.len()
            );
            p.extend_from_slice(&(v.len() as u32).to_le_bytes());
            p.extend_from_slice(v);
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
    }

    /// Encodes the block, appends it to `out` padded to whole 4 KiB pages,
    /// resets the builder, and returns the number of bytes appended.
    pub fn finish(&mut self, compression: Compression, out: &mut Vec<u8>) -> usize {
        assert!(!self.offsets.is_empty(), "an empty block is never written");
        for off in &self.offsets {
            self.payload.extend_from_slice(&off.to_le_bytes());
        }
        self.payload
            .extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        let raw_len = self.payload.len();
        assert!(
            raw_len + BLOCK_HEADER_SIZE <= DATA_BLOCK_SIZE_MAX,
            "block of {raw_len} bytes over the limit"
        );
        let mut flags = 0u8;
        let mut stored: &[u8] = &self.payload;
        if compression == Compression::Lz4 {
            self.scratch
                .resize(lz4_flex::block::get_maximum_output_size(raw_len), 0);
            // Compression into a buffer of the maximum output size cannot fail;
            // on any error the block is simply stored raw.
            if let Ok(n) = lz4_flex::block::compress_into(&self.payload, &mut self.scratch) {
                if n < raw_len {
                    flags |= FLAG_LZ4;
                    stored = &self.scratch[..n];
                }
            }
        }
        let start = out.len();
        out.extend_from_slice(&[0u8; 4]);
        out.push(flags);
        out.extend_from_slice(&[0u8; 3]);
        out.extend_from_slice(&(stored.len() as u32).to_le_bytes());
        out.extend_from_slice(&(raw_len as u32).to_le_bytes());
        out.extend_from_slice(stored);
        let crc = crc32c::crc32c(&out[start + 4..]);
        out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
        let padded = align_up(out.len() - start);
        out.resize(start + padded, 0);
        // `last_key` is kept: the writer reads it for the index entry.
        self.payload.clear();
        self.offsets.clear();
        padded
    }
}

/// One entry of a decoded block, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The record's version.
    pub version: Version,
    /// Expiry in ms since the epoch, 0 = never.
    pub expires_at_ms: u64,
    /// The value, `None` for a tombstone.
    pub value: Option<&'a [u8]>,
}

impl<'a> EntryRef<'a> {
    /// The record, borrowed from the block.
    pub fn record(&self) -> RecordRef<'a> {
        RecordRef {
            version: self.version,
            expires_at_ms: self.expires_at_ms,
            value: self.value,
        }
    }

    /// An owned copy of the record.
    pub fn to_record(&self) -> Record {
        self.record().to_record()
    }
}

/// A decoded, validated data block (raw payload). Shared through the block
/// cache as `Rc<Block>`.
#[derive(Debug)]
pub struct Block {
    data: Vec<u8>,
    count: usize,
    offsets_start: usize,
    /// First 8 bytes of each key, big-endian, zero-padded: a binary search
    /// compares these (one small array, few cache misses) and touches the
    /// entries only to break ties.
    prefixes: Box<[u64]>,
}

/// The first 8 bytes of `key` as a big-endian number, zero-padded. Monotone:
/// `a < b` implies `prefix(a) <= prefix(b)`.
fn key_prefix(key: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = key.len().min(8);
    a[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(a)
}

fn parse_entry(data: &[u8], pos: usize) -> Result<(EntryRef<'_>, usize), DecodeError> {
    let mut c = Cursor::new(data, pos);
    let key_len = c.u16("key length")? as usize;
    if key_len > KEY_SIZE_MAX {
        return Err(DecodeError::new(
            pos,
            format!("key length {key_len} over the limit {KEY_SIZE_MAX}"),
        ));
    }
    let key = c.take(key_len, "key")?;
    let kind_pos = c.pos();
    let kind = c.u8("entry kind")?;
    if kind & !(KIND_VALUE | KIND_EXPIRES) != 0 {
        return Err(DecodeError::new(
            kind_pos,
            format!("unknown entry kind {kind:#04x}"),
        ));
    }
    let hlc = c.u64("version")?;
    let node = c.u32("version node")?;
    let expires_at_ms = if kind & KIND_EXPIRES != 0 {
        let e = c.u64("expiry")?;
        if e == 0 {
            return Err(DecodeError::new(
                kind_pos,
                "expiry flag set with a zero expiry",
            ));
        }
        e
    } else {
        0
    };
    let value = if kind & KIND_VALUE != 0 {
        let len_pos = c.pos();
        let len = c.u32("value length")? as usize;
        if len > VALUE_SIZE_MAX {
            return Err(DecodeError::new(
                len_pos,
                format!("value length {len} over the limit {VALUE_SIZE_MAX}"),
            ));
        }
        Some(c.take(len, "value")?)
    } else {
        None
    };
    let entry = EntryRef {
        key,
        version: Version { hlc, node },
        expires_at_ms,
        value,
    };
    Ok((entry, c.pos()))
}

/// Decodes a stored block (`bytes` starts at the block header and may extend
/// past the block into padding). Offsets in errors are relative to `bytes`,
/// except errors inside the decompressed payload, which are reported at the
/// header (offset 0) since they have no stored position.
pub fn decode(bytes: &[u8]) -> Result<Block, DecodeError> {
    let mut c = Cursor::new(bytes, 0);
    let crc = c.u32("block checksum")?;
    let flags = c.u8("block flags")?;
    let zero = c.take(3, "block header")?;
    let stored_len = c.u32("stored length")? as usize;
    let raw_len = c.u32("raw length")? as usize;
    if stored_len > DATA_BLOCK_SIZE_MAX || raw_len > DATA_BLOCK_SIZE_MAX {
        return Err(DecodeError::new(
            8,
            format!("block lengths {stored_len}/{raw_len} over the limit {DATA_BLOCK_SIZE_MAX}"),
        ));
    }
    let stored = c.take(stored_len, "block payload")?;
    super::check_crc(&bytes[4..BLOCK_HEADER_SIZE + stored_len], crc, "data block")?;
    if flags & !FLAG_LZ4 != 0 || zero != [0, 0, 0] {
        return Err(DecodeError::new(
            4,
            format!("unknown block flags {flags:#04x}"),
        ));
    }
    let data = if flags & FLAG_LZ4 != 0 {
        let mut out = vec![0u8; raw_len];
        match lz4_flex::block::decompress_into(stored, &mut out) {
            Ok(n) if n == raw_len => out,
            Ok(n) => {
                return Err(DecodeError::new(
                    0,
                    format!("LZ4 payload gave {n} bytes, header says {raw_len}"),
                ))
            }
            Err(e) => {
                return Err(DecodeError::new(
                    BLOCK_HEADER_SIZE,
                    format!("LZ4 payload invalid: {e}"),
                ))
            }
        }
    } else {
        if raw_len != stored_len {
            return Err(DecodeError::new(
                12,
                format!("raw length {raw_len} != stored length {stored_len}"),
            ));
        }
        stored.to_vec()
    };
    validate(data).map_err(|e| DecodeError::new(e.offset + BLOCK_HEADER_SIZE, e.reason))
}

fn validate(data: Vec<u8>) -> Result<Block, DecodeError> {
    let len = data.len();
    if len < 4 {
        return Err(DecodeError::new(
            0,
            format!("block payload of {len} bytes has no entry count"),
        ));
    }
    let count = Cursor::new(&data, len - 4).u32("entry count")? as usize;
    let offsets_start = count
        .checked_mul(4)
        .and_then(|n| (len - 4).checked_sub(n))
        .ok_or_else(|| {
            DecodeError::new(
                len - 4,
                format!("entry count {count} does not fit in {len} bytes"),
            )
        })?;
    if count == 0 {
        return Err(DecodeError::new(len - 4, "empty block"));
    }
    let mut offsets = Cursor::new(&data, offsets_start);
    let mut expected = 0usize;
    let mut prev_key: Option<&[u8]> = None;
    let mut prefixes = Vec::with_capacity(count);
    for i in 0..count {
        let at = offsets.pos();
        let off = offsets.u32("entry offset")? as usize;
        if off != expected {
            return Err(DecodeError::new(
                at,
                format!("entry {i} offset {off}, expected {expected}"),
            ));
        }
        let (entry, end) = parse_entry(&data[..offsets_start], off)?;
        if prev_key.is_some_and(|p| p >= entry.key) {
            return Err(DecodeError::new(off, format!("entry {i} key out of order")));
        }
        prev_key = Some(entry.key);
        prefixes.push(key_prefix(entry.key));
        expected = end;
    }
    if expected != offsets_start {
        return Err(DecodeError::new(
            expected,
            format!(
                "{} stray bytes after the last entry",
                offsets_start - expected
            ),
        ));
    }
    Ok(Block {
        data,
        count,
        offsets_start,
        prefixes: prefixes.into_boxed_slice(),
    })
}

impl Block {
    /// Number of entries (at least 1).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always false: a decoded block has at least one entry.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes this block holds in memory (for cache budgets).
    pub fn memory_bytes(&self) -> usize {
        self.data.capacity() + 8 * self.prefixes.len() + std::mem::size_of::<Self>()
    }

    fn offset(&self, i: usize) -> usize {
        let p = self.offsets_start + 4 * i;
        u32::from_le_bytes([
            self.data[p],
            self.data[p + 1],
            self.data[p + 2],
            self.data[p + 3],
        ]) as usize
    }

    /// Entry `i` (`i < len()`).
    pub fn entry(&self, i: usize) -> EntryRef<'_> {
        assert!(i < self.count, "entry {i} of {}", self.count);
        match parse_entry(&self.data[..self.offsets_start], self.offset(i)) {
            Ok((e, _)) => e,
            // `decode` parsed every entry of this very buffer successfully.
            Err(e) => unreachable!("entry of a validated block failed to parse: {e}"),
        }
    }

    /// The key of entry `i` (`i < len()`), without parsing the rest of it.
    pub fn key(&self, i: usize) -> &[u8] {
        &self.data[self.key_range(i)]
    }

    /// Where the key of entry `i` (`i < len()`) lies in the block's bytes,
    /// for a reader that compares it many times ([`key_at`](Self::key_at)).
    pub fn key_range(&self, i: usize) -> std::ops::Range<usize> {
        let off = self.offset(i);
        let len = u16::from_le_bytes([self.data[off], self.data[off + 1]]) as usize;
        off + 2..off + 2 + len
    }

    /// The key at `range`, from [`key_range`](Self::key_range) of this block.
    pub fn key_at(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.data[range]
    }

    /// Index of the first entry whose key is `>= key` (`len()` if none).
    pub fn seek(&self, key: &[u8]) -> usize {
        let target = key_prefix(key);
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let p = self.prefixes[mid];
            if p < target || (p == target && self.key(mid) < key) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The record stored for exactly `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<Record> {
        let i = self.seek(key);
        (i < self.count && self.key(i) == key).then(|| self.entry(i).to_record())
    }

    /// The last (largest) key of the block.
    pub fn last_key(&self) -> &[u8] {
        self.key(self.count - 1)
    }
}

#[cfg(test)]
mod tests;
