//! The block index: for each data block, its last key and its pages. Held in
//! memory for the table's lifetime in a flat layout (one key arena, one
//! offsets array, one page array) so it costs little more than the keys.
//!
//! ```text
//! index section (its crc32c is in the footer)
//!  count u32
//!  (key_len u16 | last key of block | first_page u32 | page_count u32) * count
//! ```
//!
//! Pages are 4 KiB. Blocks are contiguous: block 0 starts at page 0, block
//! `i + 1` starts where block `i` ends, and the last ends at `data_end`;
//! [`decode`] checks this, so the in-memory form keeps only page boundaries.
//! Last keys are strictly increasing (checked).

use super::{check_crc, Cursor, DecodeError, DATA_BLOCK_SIZE_MAX};
use crate::limits::{BLOCK_SIZE, KEY_SIZE_MAX};

/// The in-memory index of one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    /// Last keys of all blocks, concatenated.
    keys: Vec<u8>,
    /// `key_ends[i]` is the end of block `i`'s last key in `keys`.
    key_ends: Vec<u32>,
    /// `pages[i]..pages[i + 1]` are block `i`'s pages; `len = blocks + 1`.
    pages: Vec<u32>,
}

/// Where one data block lives in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHandle {
    /// Byte offset (4 KiB-aligned).
    pub offset: u64,
    /// Length in bytes (a whole number of 4 KiB pages).
    pub len: usize,
}

impl Index {
    /// An empty index (a table with no blocks).
    pub fn new() -> Self {
        Index {
            keys: Vec::new(),
            key_ends: Vec::new(),
            pages: vec![0],
        }
    }

    /// Appends a block that ends with `last_key` and spans `len` bytes after
    /// the previous block. Used by the writer; keys must increase (asserted).
    pub fn push(&mut self, last_key: &[u8], len: usize) {
        assert!(
            len % BLOCK_SIZE == 0 && len > 0,
            "block length {len} not whole pages"
        );
        assert!(
            self.is_empty() || last_key > self.last_key(self.len() - 1),
            "index keys must increase"
        );
        if self.pages.is_empty() {
            self.pages.push(0);
        }
        self.keys.extend_from_slice(last_key);
        let end = u32::try_from(self.keys.len());
        let start = self.pages[self.pages.len() - 1];
        let next = u32::try_from(len / BLOCK_SIZE)
            .ok()
            .and_then(|n| start.checked_add(n));
        match (end, next) {
            (Ok(end), Some(next)) => {
                self.key_ends.push(end);
                self.pages.push(next);
            }
            _ => panic!("table over 16 TiB or index over 4 GiB"),
        }
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.key_ends.len()
    }

    /// Whether the table has no blocks.
    pub fn is_empty(&self) -> bool {
        self.key_ends.is_empty()
    }

    /// Last key of block `i`.
    pub fn last_key(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.key_ends[i - 1] as usize
        };
        &self.keys[start..self.key_ends[i] as usize]
    }

    /// Where block `i` lives.
    pub fn handle(&self, i: usize) -> BlockHandle {
        let first = self.pages[i] as u64;
        let end = self.pages[i + 1] as u64;
        BlockHandle {
            offset: first * BLOCK_SIZE as u64,
            len: ((end - first) * BLOCK_SIZE as u64) as usize,
        }
    }

    /// End of the data blocks in bytes.
    pub fn data_end(&self) -> u64 {
        self.pages.last().copied().unwrap_or(0) as u64 * BLOCK_SIZE as u64
    }

    /// The first block that may hold `key`: the first whose last key is
    /// `>= key`, or `None` when `key` is past the last block.
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.last_key(mid) < key {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo < self.len()).then_some(lo)
    }

    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.keys.capacity() + 4 * self.key_ends.capacity() + 4 * self.pages.capacity()
    }

    /// Encodes the index section.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        for i in 0..self.len() {
            let key = self.last_key(i);
            out.extend_from_slice(&(key.len() as u16).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&self.pages[i].to_le_bytes());
            out.extend_from_slice(&(self.pages[i + 1] - self.pages[i]).to_le_bytes());
        }
    }

    /// Shrinks the buffers to their contents (after building).
    pub fn shrink_to_fit(&mut self) {
        self.keys.shrink_to_fit();
        self.key_ends.shrink_to_fit();
        self.pages.shrink_to_fit();
    }
}

/// Decodes and validates an index section whose crc32c is `crc`, for a file
/// whose data blocks end at `data_end`.
pub fn decode(bytes: &[u8], crc: u32, data_end: u64) -> Result<Index, DecodeError> {
    check_crc(bytes, crc, "index")?;
    let mut c = Cursor::new(bytes, 0);
    let count = c.u32("index entry count")? as usize;
    // Each entry takes at least 10 bytes: bounds the allocations below.
    if count > bytes.len() / 10 {
        return Err(DecodeError::new(
            0,
            format!("index count {count} does not fit in {} bytes", bytes.len()),
        ));
    }
    let mut index = Index {
        keys: Vec::with_capacity(bytes.len().saturating_sub(4 + 10 * count)),
        key_ends: Vec::with_capacity(count),
        pages: Vec::with_capacity(count + 1),
    };
    index.pages.push(0);
    let block_pages_max = (DATA_BLOCK_SIZE_MAX / BLOCK_SIZE + 1) as u32;
    for i in 0..count {
        let at = c.pos();
        let key_len = c.u16("index key length")? as usize;
        if key_len > KEY_SIZE_MAX {
            return Err(DecodeError::new(
                at,
                format!("index key length {key_len} over the limit {KEY_SIZE_MAX}"),
            ));
        }
        let key = c.take(key_len, "index key")?;
        if i > 0 && key <= index.last_key(i - 1) {
            return Err(DecodeError::new(at, format!("index key {i} out of order")));
        }
        let page_at = c.pos();
        let first = c.u32("block first page")?;
        let pages = c.u32("block page count")?;
        let expected = index.pages[i];
        if first != expected || pages == 0 || pages > block_pages_max {
            return Err(DecodeError::new(
                page_at,
                format!("block {i} at page {first} x {pages}, expected page {expected} and 1..={block_pages_max} pages"),
            ));
        }
        let next = expected
            .checked_add(pages)
            .ok_or_else(|| DecodeError::new(page_at, "block pages overflow"))?;
        index.keys.extend_from_slice(key);
        index.key_ends.push(index.keys.len() as u32);
        index.pages.push(next);
    }
    if c.pos() != bytes.len() {
        return Err(DecodeError::new(c.pos(), "stray bytes after the index"));
    }
    if index.data_end() != data_end {
        return Err(DecodeError::new(
            0,
            format!(
                "index covers {} data bytes, footer says {data_end}",
                index.data_end()
            ),
        ));
    }
    index.shrink_to_fit();
    Ok(index)
}

#[cfg(test)]
mod tests;
