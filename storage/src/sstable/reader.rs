//! [`Table`]: an open SSTable (index and bloom filter in memory, data blocks
//! read on demand through the shard's block cache) and [`TableIter`].
//!
//! `open` validates the file before anything is served: size a whole number
//! of pages, footer (magic, checksum, version, section bounds), then the
//! index, bloom filter and properties against the footer's checksums, and
//! their agreement with each other. Each data block is validated when read
//! (checksum, structure, and that its last key is the one the index names,
//! which also catches a block read from the wrong place). Any failure is
//! [`Error::Corruption`] with the file and absolute offset.

use super::block::{self, Block, EntryRef};
use super::bloom::{self, Bloom};
use super::footer::{self, FOOTER_SIZE};
use super::index::{self, Index};
use super::{DecodeError, TABLE_READAHEAD_SIZE};
use crate::cache::BlockCache;
use crate::error::{Error, Result};
use crate::io::DirectFile;
use crate::limits::BLOCK_SIZE;
use crate::types::{FileId, Record, TableMeta};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn corrupt(path: &Path, base: u64, e: DecodeError) -> Error {
    Error::corruption(path, base.saturating_add(e.offset as u64), e.reason)
}

/// An open SSTable. Immutable; shared as `Rc<Table>` by readers and iterators.
pub struct Table {
    file: DirectFile,
    path: PathBuf,
    meta: TableMeta,
    index: Index,
    bloom: Bloom,
    cache: Rc<BlockCache>,
}

struct Loaded {
    meta: TableMeta,
    index: Index,
    bloom: Bloom,
}

/// Reads exactly `len` bytes at `offset`, or reports the short read as corruption.
async fn read_exact(
    file: &DirectFile,
    path: &Path,
    offset: u64,
    len: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    file.read_into(offset, len, out).await?;
    if out.len() < len {
        return Err(Error::corruption(
            path,
            offset + out.len() as u64,
            format!("short read: {} of {len} bytes (file truncated?)", out.len()),
        ));
    }
    out.truncate(len);
    Ok(())
}

impl Table {
    /// Opens and validates the table at `path`. On error nothing stays open.
    pub async fn open(path: &Path, id: FileId, level: u32, cache: Rc<BlockCache>) -> Result<Table> {
        let file = DirectFile::open_read(path).await?;
        match load(&file, path, id, level).await {
            Ok(Loaded { meta, index, bloom }) => Ok(Table {
                file,
                path: path.to_path_buf(),
                meta,
                index,
                bloom,
                cache,
            }),
            Err(e) => {
                // The validation error is what matters; a close error adds nothing.
                let _ = file.close().await;
                Err(e)
            }
        }
    }

    /// The table's metadata (from its properties and file size).
    pub fn meta(&self) -> &TableMeta {
        &self.meta
    }

    /// The table's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of data blocks.
    pub fn block_count(&self) -> usize {
        self.index.len()
    }

    /// False when `key` is surely absent (bloom filter); true when it may be present.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        self.bloom.may_contain(key)
    }

    /// The record stored for `key` in this table, if any. Reads at most one
    /// data block, through the block cache (on a miss, one direct read of
    /// exactly that block, which is then cached).
    pub async fn get(&self, key: &[u8]) -> Result<Option<Record>> {
        if self.meta.entry_count == 0
            || key < self.meta.smallest_key.as_slice()
            || key > self.meta.largest_key.as_slice()
        {
            return Ok(None);
        }
        if !self.bloom.may_contain(key) {
            return Ok(None);
        }
        let Some(i) = self.index.find(key) else {
            return Ok(None);
        };
        let block = self.block(i).await?;
        Ok(block.get(key))
    }

    /// Block `i`, from the cache or read, validated and cached.
    async fn block(&self, i: usize) -> Result<Rc<Block>> {
        let h = self.index.handle(i);
        if let Some(b) = self.cache.get(self.meta.id, h.offset) {
            return Ok(b);
        }
        let mut buf = Vec::new();
        read_exact(&self.file, &self.path, h.offset, h.len, &mut buf).await?;
        let b = Rc::new(self.decode_block(i, h.offset, &buf)?);
        self.cache.insert(self.meta.id, h.offset, Rc::clone(&b));
        Ok(b)
    }

    fn decode_block(&self, i: usize, offset: u64, bytes: &[u8]) -> Result<Block> {
        let b = block::decode(bytes).map_err(|e| corrupt(&self.path, offset, e))?;
        if b.last_key() != self.index.last_key(i) {
            return Err(Error::corruption(
                &self.path,
                offset,
                format!("block {i}'s last key differs from the index's"),
            ));
        }
        Ok(b)
    }

    /// An iterator over the entries with keys from `start` on, in key order.
    /// With `fill_cache` false (compaction) blocks read are not cached and
    /// are read ahead in large sequential reads.
    pub fn iter(self: &Rc<Self>, start: Bound<Vec<u8>>, fill_cache: bool) -> TableIter {
        TableIter {
            table: Rc::clone(self),
            fill_cache,
            start: Some(start),
            block_idx: 0,
            block: None,
            pos: 0,
            current_key: 0..0,
            readahead: Vec::new(),
            readahead_offset: 0,
            next_chunk: None,
            chunks_read_ahead: 0,
        }
    }

    /// Bytes held in memory by the index and the bloom filter.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes() + self.bloom.memory_bytes()
    }

    /// Closes the file.
    pub async fn close(self) -> Result<()> {
        self.file.close().await
    }
}

async fn load(file: &DirectFile, path: &Path, id: FileId, level: u32) -> Result<Loaded> {
    let size = file.size().await?;
    let page = BLOCK_SIZE as u64;
    if size < page || size % page != 0 {
        return Err(Error::corruption(
            path,
            size,
            format!("file size {size} is not a whole number of pages"),
        ));
    }
    let mut buf = Vec::new();
    read_exact(file, path, size - page, BLOCK_SIZE, &mut buf).await?;
    let footer_at = size - FOOTER_SIZE as u64;
    let f = footer::decode(&buf[BLOCK_SIZE - FOOTER_SIZE..], size)
        .map_err(|e| corrupt(path, footer_at, e))?;
    // Every section lies in [data_end, footer): one read fetches them all.
    let base = f.data_end;
    read_exact(file, path, base, (size - base) as usize, &mut buf).await?;
    let slice = |s: footer::Section| {
        let start = (s.offset - base) as usize;
        &buf[start..start + s.len as usize]
    };
    let index = index::decode(slice(f.index), f.index.crc, f.data_end)
        .map_err(|e| corrupt(path, f.index.offset, e))?;
    let bloom =
        bloom::decode(slice(f.bloom), f.bloom.crc).map_err(|e| corrupt(path, f.bloom.offset, e))?;
    let props = footer::decode_properties(slice(f.props), f.props.crc)
        .map_err(|e| corrupt(path, f.props.offset, e))?;
    let consistent = if props.entry_count == 0 {
        index.is_empty()
    } else {
        // Each block holds at least one and at most ENTRIES_PER_BLOCK_MAX
        // entries: a count outside that (checksummed, but hostile or written
        // by a bug) would feed wrong figures, even overflows, to the engine.
        let blocks = index.len() as u64;
        !index.is_empty()
            && props.largest_key.as_slice() == index.last_key(index.len() - 1)
            && props.entry_count >= blocks
            && props.entry_count <= blocks.saturating_mul(block::ENTRIES_PER_BLOCK_MAX as u64)
    };
    if !consistent {
        return Err(Error::corruption(
            path,
            f.props.offset,
            "properties disagree with the index",
        ));
    }
    Ok(Loaded {
        meta: TableMeta {
            id,
            level,
            size,
            entry_count: props.entry_count,
            tombstone_count: props.tombstone_count,
            smallest_key: props.smallest_key,
            largest_key: props.largest_key,
            max_version: props.max_version,
        },
        index,
        bloom,
    })
}

#[cfg(test)]
mod tests;

/// Iterates over a table's entries in key order, one block at a time.
pub struct TableIter {
    table: Rc<Table>,
    fill_cache: bool,
    /// The start bound, until the first `next` positions the iterator.
    start: Option<Bound<Vec<u8>>>,
    block_idx: usize,
    block: Option<Rc<Block>>,
    pos: usize,
    /// Where the current entry's key (entry `pos - 1`) lies in `block`.
    current_key: std::ops::Range<usize>,
    readahead: Vec<u8>,
    readahead_offset: u64,
    /// Compaction only: the read of the chunk after `readahead`, started as
    /// soon as that one arrived, so the merge finds it done instead of
    /// waiting for it (see [`TableIter::start_next_chunk`]).
    next_chunk: Option<NextChunk>,
    /// Chunks that were read in the background by the time they were needed
    /// (tests look at it).
    chunks_read_ahead: u64,
}

/// A readahead chunk being read in the background.
struct NextChunk {
    offset: u64,
    len: usize,
    read: crate::io::BackgroundTask<Result<Vec<u8>>>,
}

impl NextChunk {
    /// Whether the chunk holds the whole of `len` bytes at `offset`.
    fn holds(&self, offset: u64, len: usize) -> bool {
        self.offset <= offset && offset + len as u64 <= self.offset + self.len as u64
    }
}

impl TableIter {
    /// The table's file.
    pub fn path(&self) -> &Path {
        self.table.path()
    }

    /// The file offset of the block the last entry came from (the first
    /// block before any).
    pub fn block_offset(&self) -> u64 {
        match self.table.index.len() {
            0 => 0,
            blocks => {
                self.table
                    .index
                    .handle(self.block_idx.min(blocks - 1))
                    .offset
            }
        }
    }

    /// The next entry, owned, or `None` at the end of the table.
    pub async fn next(&mut self) -> Result<Option<(Vec<u8>, Record)>> {
        if !self.advance().await? {
            return Ok(None);
        }
        Ok(self.current().map(|e| (e.key.to_vec(), e.to_record())))
    }

    /// Moves to the next entry; `false` at the end of the table. The entry is
    /// then read in place with [`current`](Self::current) (a merge compares
    /// and copies entries where their block holds them).
    pub async fn advance(&mut self) -> Result<bool> {
        if let Some(start) = self.start.take() {
            self.seek(start).await?;
        }
        loop {
            if self.block.is_none() {
                if self.block_idx >= self.table.index.len() {
                    return Ok(false);
                }
                self.block = Some(self.load(self.block_idx).await?);
                self.pos = 0;
            }
            if let Some(b) = &self.block {
                if self.pos < b.len() {
                    self.current_key = b.key_range(self.pos);
                    self.pos += 1;
                    return Ok(true);
                }
            }
            self.block = None;
            self.block_idx += 1;
        }
    }

    /// The entry the last [`advance`](Self::advance) moved to; `None` before
    /// the first one and after the end.
    pub fn current(&self) -> Option<EntryRef<'_>> {
        let b = self.block.as_ref()?;
        (self.pos > 0).then(|| b.entry(self.pos - 1))
    }

    /// The key of [`current`](Self::current), located once per entry (a
    /// merge compares it against every other source's).
    pub fn current_key(&self) -> Option<&[u8]> {
        let b = self.block.as_ref()?;
        (self.pos > 0).then(|| b.key_at(self.current_key.clone()))
    }

    async fn seek(&mut self, start: Bound<Vec<u8>>) -> Result<()> {
        let (key, exclusive) = match &start {
            Bound::Unbounded => return Ok(()),
            Bound::Included(k) => (k.as_slice(), false),
            Bound::Excluded(k) => (k.as_slice(), true),
        };
        let Some(i) = self.table.index.find(key) else {
            self.block_idx = self.table.index.len();
            return Ok(());
        };
        let b = self.load(i).await?;
        let mut pos = b.seek(key);
        if exclusive && pos < b.len() && b.entry(pos).key == key {
            pos += 1;
        }
        self.block_idx = i;
        self.pos = pos;
        self.block = Some(b);
        Ok(())
    }

    async fn load(&mut self, i: usize) -> Result<Rc<Block>> {
        // A handle of our own: the iterator is changed below while `t` is used.
        let t = Rc::clone(&self.table);
        if self.fill_cache {
            return t.block(i).await;
        }
        let h = t.index.handle(i);
        if let Some(b) = t.cache.peek(t.meta.id, h.offset) {
            return Ok(b);
        }
        let ra_end = self.readahead_offset + self.readahead.len() as u64;
        if h.offset < self.readahead_offset || h.offset + h.len as u64 > ra_end {
            let (read, at) = match self.next_chunk.take() {
                // Also when the chunk's first blocks came from the cache.
                Some(next) if next.holds(h.offset, h.len) => {
                    self.chunks_read_ahead += 1;
                    (next.read.await, next.offset)
                }
                // Not the chunk this block needs (a seek, or none started):
                // dropping the task cancels its read.
                _ => {
                    let len = chunk_len(&t, h.offset, h.len);
                    let mut buf = std::mem::take(&mut self.readahead);
                    let read = read_exact(&t.file, &t.path, h.offset, len, &mut buf)
                        .await
                        .map(|()| buf);
                    (read, h.offset)
                }
            };
            match read {
                Ok(buf) => {
                    self.readahead = buf;
                    self.readahead_offset = at;
                }
                Err(e) => {
                    // The buffer holds bytes of another offset (or none):
                    // never serve from it.
                    self.readahead.clear();
                    return Err(e);
                }
            }
            self.start_next_chunk(i);
        }
        let start = (h.offset - self.readahead_offset) as usize;
        let bytes = &self.readahead[start..start + h.len];
        Ok(Rc::new(t.decode_block(i, h.offset, bytes)?))
    }

    /// Starts reading, in the background, the chunk the iterator will need
    /// after the one just read for block `i`: from the first block that the
    /// buffer does not hold whole, as long as the read `load` would have
    /// issued there. A compaction merging twenty tables waited for each
    /// 128 KiB chunk in turn and handed the core to requests meanwhile; it
    /// read at about 100 MB/s, slower than sustained SETs fill L0 (writers
    /// then stalled for over a second at a time).
    fn start_next_chunk(&mut self, i: usize) {
        let t = &self.table;
        let ra_end = self.readahead_offset + self.readahead.len() as u64;
        let next = (i..t.index.len()).find(|&j| {
            let h = t.index.handle(j);
            h.offset + h.len as u64 > ra_end
        });
        let Some(j) = next else { return };
        let h = t.index.handle(j);
        let len = chunk_len(t, h.offset, h.len);
        let table = Rc::clone(t);
        let offset = h.offset;
        let read = crate::io::spawn_beside(async move {
            let mut buf = Vec::new();
            read_exact(&table.file, &table.path, offset, len, &mut buf)
                .await
                .map(|()| buf)
        });
        self.next_chunk = Some(NextChunk { offset, len, read });
    }

    /// Chunks this iterator found read in the background when it needed them.
    #[cfg(test)]
    pub(crate) fn chunks_read_ahead(&self) -> u64 {
        self.chunks_read_ahead
    }
}

/// Bytes a readahead from the block at `offset` (`len` bytes long) reads:
/// [`TABLE_READAHEAD_SIZE`], or the block if longer, never past the data.
fn chunk_len(t: &Table, offset: u64, len: usize) -> usize {
    (len as u64).max((TABLE_READAHEAD_SIZE as u64).min(t.index.data_end() - offset)) as usize
}
