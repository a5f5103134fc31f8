//! SSTables: immutable sorted files of `(key, Record)` entries, written once
//! with O_DIRECT by [`TableWriter`] and read through the shard's
//! [`BlockCache`](crate::cache::BlockCache) by [`Table`].
//!
//! The format code lives in four folders of pure functions over byte slices
//! (no I/O, no glommio), so it can be unit-tested, fuzzed and driven by a
//! simulated disk: [`block`] (data blocks), [`index`] (block index),
//! [`bloom`] (bloom filter), [`footer`] (footer and properties). Only
//! [`writer`] and [`reader`] do I/O, through [`crate::io::DirectFile`].
//!
//! # File format (version 1; all integers little-endian)
//!
//! ```text
//!  offset 0                                                     file size (multiple of 4 KiB)
//!  |                                                                                       |
//!  +-----------+-----------+-- ... --+-----------+-------+-------+-------+---------+--------+
//!  | block 0   | block 1   |         | block n-1 | index | bloom | props | padding | footer |
//!  +-----------+-----------+-- ... --+-----------+-------+-------+-------+---------+--------+
//!  ^ every data block starts on a 4 KiB boundary  ^ data_end (4 KiB-aligned)        ^ last 72 bytes
//!    and spans a whole number of 4 KiB pages
//!
//!  data block (see `block`):  [crc32c u32 | flags u8 | 0 u8 x3 | stored_len u32 | raw_len u32]
//!                             [payload: stored_len bytes, raw or LZ4] [zero padding to 4 KiB]
//!      raw payload:           entry* | entry_offset u32 * count | count u32
//!      entry:                 key_len u16 | key | kind u8 | hlc u64 | node u32
//!                             | [expires_at_ms u64 if kind & 2] | [value_len u32 | value if kind & 1]
//!  index (see `index`):       count u32 | (key_len u16 | last key | first_page u32 | page_count u32) * count
//!  bloom (see `bloom`):       line_count u32 | probes u8 | 0 u8 x3 | 64-byte lines * line_count
//!  props (see `footer`):      entry_count u64 | tombstone_count u64 | max_hlc u64 | max_node u32
//!                             | smallest_len u16 | smallest | largest_len u16 | largest
//!  footer (see `footer`):     data_end u64 | (offset u64 | len u32 | crc32c u32) for index, bloom, props
//!                             | format_version u32 | footer crc32c u32 | magic u64 "RINGKVST"
//! ```
//!
//! Invariants and what protects them:
//! - Every byte that is read is covered by a crc32c: data blocks carry their
//!   own (so the index stays small), the index, bloom and properties are
//!   checked against the crc in the footer, and the footer checks itself.
//!   Padding is never read, so a flipped bit there changes nothing.
//! - Every length and offset read from disk is checked against the file size
//!   and the limits below before it is used; a failed check is
//!   [`Error::Corruption`](crate::Error::Corruption) naming the file and the
//!   absolute offset, never a panic and never a wrong value.
//! - Keys are strictly increasing across the whole file (asserted by the
//!   writer, verified by the decoders within a block and across the index).
//! - Data blocks are contiguous: block `i + 1` starts where block `i` ends and
//!   the last one ends at `data_end`, so the index stores page numbers only.
//!
//! Ideas, not code, from LevelDB/RocksDB (block layout with restart offsets,
//! the table footer, double-hashed and cache-local bloom filters) and
//! fjall-rs/lsm-tree (`src/table/`).

pub mod block;
pub mod bloom;
pub mod footer;
pub mod index;
pub mod reader;
pub mod writer;

pub use reader::{Table, TableIter};
pub use writer::TableWriter;

use crate::types::FileId;

/// Format version written in every footer; a reader refuses other versions.
pub const FORMAT_VERSION: u32 = 1;

/// The footer's magic number, the ASCII bytes "RINGKVST".
pub const MAGIC: u64 = u64::from_le_bytes(*b"RINGKVST");

// The table limits live in `crate::limits`; re-exported at their old paths.
pub use crate::limits::DATA_BLOCK_SIZE_MAX;
pub use crate::limits::TABLE_BLOCK_SIZE_MAX;
pub use crate::limits::TABLE_READAHEAD_SIZE;
pub use crate::limits::TABLE_WRITE_SIZE;

/// Per-block compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Blocks are stored as they are.
    #[default]
    None,
    /// Blocks are LZ4-compressed (lz4_flex) when that makes them smaller;
    /// each block records whether it is.
    Lz4,
}

/// How a table is written. Readers need none of it: everything is recorded
/// in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableOptions {
    /// Target raw size of a data block in bytes (default 4096). A block is
    /// closed before an entry would make it exceed this; a single larger entry
    /// gets a block of its own, rounded up to whole 4 KiB pages.
    pub block_size: usize,
    /// Compression of data blocks (default none).
    pub compression: Compression,
    /// Bloom filter bits per key (default 10, about 1% false positives);
    /// 0 disables the filter (it then answers "maybe" for every key).
    pub bloom_bits_per_key: u32,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            block_size: crate::limits::BLOCK_SIZE,
            compression: Compression::None,
            bloom_bits_per_key: 10,
        }
    }
}

/// File name of table `id` in its shard directory: `{id:020}.sst`.
pub fn table_file_name(id: FileId) -> String {
    format!("{id:020}.sst")
}

/// File name of table `id` while it is being written: `{id:020}.sst.tmp`.
pub fn table_tmp_file_name(id: FileId) -> String {
    format!("{id:020}.sst.tmp")
}

/// Why a format decoder refused its input: the offset within the slice it
/// was given and a reason. The reader turns it into
/// [`Error::Corruption`](crate::Error::Corruption) with the file and the
/// absolute offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset within the decoded slice where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

impl DecodeError {
    /// A decode error at `offset` within the slice.
    pub fn new(offset: usize, reason: impl Into<String>) -> Self {
        DecodeError {
            offset,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at +{})", self.reason, self.offset)
    }
}

/// Bounds-checked little-endian reader over an untrusted byte slice. Every
/// read returns a [`DecodeError`] naming the offset instead of panicking.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], pos: usize) -> Self {
        Cursor { bytes, pos }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let out = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(DecodeError::new(
                self.pos,
                format!(
                    "{what}: {len} bytes needed, {} left",
                    self.bytes.len().saturating_sub(self.pos)
                ),
            )),
        }
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

/// Checks `bytes` against the crc32c recorded for them.
pub(crate) fn check_crc(bytes: &[u8], expected: u32, what: &str) -> Result<(), DecodeError> {
    let got = crc32c::crc32c(bytes);
    if got != expected {
        return Err(DecodeError::new(
            0,
            format!("{what} checksum mismatch: expected {expected:#010x}, got {got:#010x}"),
        ));
    }
    Ok(())
}
