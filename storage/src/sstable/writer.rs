//! [`TableWriter`]: writes one SSTable with O_DIRECT, front to back.
//!
//! Entries are encoded into the current block; finished blocks (padded to
//! 4 KiB pages) are staged and written in large sequential writes of about
//! [`TABLE_WRITE_SIZE`], up to [`TABLE_WRITES_IN_FLIGHT`] of them at once
//! (one write at a time left the disk idle between round trips: a 64 MiB
//! flush took 0.3 s on an idle shard and over 1 s on a busy one, whose
//! reactor reaps completions less often, and writers stalled behind it).
//! `finish` appends the index, bloom filter,
//! properties and footer, fdatasyncs and closes the file. The writer never
//! renames: the engine creates `<id>.sst.tmp`, and renames it after `finish`.
//! If any call fails the file is incomplete and must be deleted.

use super::block::{entry_encoded_size, BlockBuilder};
use super::bloom::{key_hash, Bloom};
use super::footer::{Footer, Properties, Section, FOOTER_SIZE};
use super::index::Index;
use super::{TableOptions, TABLE_BLOCK_SIZE_MAX, TABLE_WRITE_SIZE};
use crate::error::Result;
use crate::io::{self, align_up, BackgroundTask, DirectFile};
use crate::limits::BLOCK_SIZE;
use crate::types::{FileId, Record, RecordRef, TableMeta};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// Keys added to a table's bloom filter between yields (about 0.2 ms).
const BLOOM_FILL_STEP_KEYS: usize = 16 * 1024;

/// Most key hashes (4M, 32 MiB) whose vector a thread keeps for its next
/// table writer (see [`SPARE_HASHES`]).
const SPARE_HASHES_MAX: usize = 4 << 20;

thread_local! {
    /// The emptied key-hash vector of the largest table this thread finished
    /// lately (up to [`SPARE_HASHES_MAX`]), which the next writer fills. A
    /// fresh vector grew by doubling onto fresh pages in every flush: for a
    /// 1M-key memtable 8 MiB faulted in 4 KiB at a time plus the copies of
    /// each doubling, about a tenth of the flush (`TableWriter::push` was a
    /// third page faults). Per thread, as a shard's flushes and compactions
    /// all run on its own.
    static SPARE_HASHES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Staged writes a table writer keeps in flight before it waits for the oldest.
pub const TABLE_WRITES_IN_FLIGHT: usize = 4;

/// The file is allocated on disk this far ahead of its writes (`fallocate`,
/// which also moves its size), so each write lands inside the file on
/// allocated blocks: on ext4 a write that extends a file or allocates blocks
/// cannot be issued without blocking, so io_uring hands it to a worker
/// thread, which runs on the shard's core (2.7 % of it under sustained SETs,
/// and the shard waited up to 3 ms behind one). The file is cut to its real
/// size before it is synced.
const PREALLOCATE_STEP: u64 = 16 << 20;

/// Writes one SSTable. Keys must be added in strictly increasing order.
pub struct TableWriter {
    file: Rc<DirectFile>,
    /// Writes issued and not yet awaited, oldest first. Dropping the writer
    /// cancels them (the caller deletes the incomplete file).
    in_flight: VecDeque<BackgroundTask<Result<()>>>,
    id: FileId,
    level: u32,
    options: TableOptions,
    block: BlockBuilder,
    /// Encoded blocks not yet written; starts at file offset `written`.
    staged: Vec<u8>,
    written: u64,
    /// Bytes allocated on disk so far (the file's size until `finish`);
    /// `None` once the filesystem refused an allocation (no more tries).
    preallocated: Option<u64>,
    index: Index,
    hashes: Vec<u64>,
    props: Properties,
}

impl TableWriter {
    /// A writer for table `id` at `level` into `file` (new and empty).
    pub fn new(file: DirectFile, id: FileId, level: u32, options: TableOptions) -> Self {
        assert!(
            options.block_size > 0 && options.block_size <= TABLE_BLOCK_SIZE_MAX,
            "block size {} not in 1..={TABLE_BLOCK_SIZE_MAX}",
            options.block_size
        );
        TableWriter {
            file: Rc::new(file),
            in_flight: VecDeque::new(),
            id,
            level,
            options,
            block: BlockBuilder::new(),
            staged: Vec::with_capacity(TABLE_WRITE_SIZE + BLOCK_SIZE),
            written: 0,
            preallocated: Some(0),
            index: Index::new(),
            hashes: SPARE_HASHES.with(|spare| std::mem::take(&mut *spare.borrow_mut())),
            props: Properties::default(),
        }
    }

    /// Adds an entry, writing out staged blocks when enough are ready. Keys
    /// must be strictly increasing (asserted) and within the engine's limits
    /// (asserted: the engine validated them on write).
    pub async fn add(&mut self, key: &[u8], record: &Record) -> Result<()> {
        self.push(key, record);
        if self.wants_write() {
            self.write_staged().await?;
        }
        Ok(())
    }

    /// Adds an entry to the table's buffers without writing anything (same
    /// rules as [`add`](Self::add)). A caller that pushes must call
    /// [`write_staged`](Self::write_staged) whenever
    /// [`wants_write`](Self::wants_write) says so, or staged bytes grow
    /// without bound. For a caller that borrows the record and cannot hold
    /// the borrow across an `.await`.
    pub fn push<'r>(&mut self, key: &[u8], record: impl Into<RecordRef<'r>>) {
        let record = record.into();
        // The block builder keeps the last key added across blocks: the
        // one ordering check (and key copy) per entry is its.
        assert!(
            self.props.entry_count == 0 || key > self.block.last_key(),
            "table keys must be strictly increasing"
        );
        if !self.block.is_empty()
            && self.block.raw_size() + entry_encoded_size(key, record) > self.options.block_size
        {
            self.finish_block();
        }
        self.block.add(key, record);
        self.hashes.push(key_hash(key));
        let p = &mut self.props;
        if p.entry_count == 0 {
            p.smallest_key = key.to_vec();
        }
        p.entry_count += 1;
        if record.is_tombstone() {
            p.tombstone_count += 1;
        }
        p.max_version = p.max_version.max(record.version);
    }

    /// Whether enough finished blocks are staged for a write.
    pub fn wants_write(&self) -> bool {
        self.staged.len() >= TABLE_WRITE_SIZE
    }

    /// Bytes of the table so far (written, staged and the open block); the
    /// engine uses it to split compaction outputs.
    pub fn estimated_size(&self) -> u64 {
        self.written + self.staged.len() as u64 + self.block.raw_size() as u64
    }

    fn finish_block(&mut self) {
        let len = self
            .block
            .finish(self.options.compression, &mut self.staged);
        self.index.push(self.block.last_key(), len);
    }

    /// Issues writes of every staged byte (a whole number of pages) at
    /// `written`, waiting for the oldest writes to keep at most
    /// [`TABLE_WRITES_IN_FLIGHT`] in flight.
    pub async fn write_staged(&mut self) -> Result<()> {
        assert!(
            self.staged.len() % BLOCK_SIZE == 0,
            "staged bytes are whole pages"
        );
        let end = self.written + self.staged.len() as u64;
        if self.preallocated.is_some_and(|allocated| end > allocated) {
            let target = end.next_multiple_of(PREALLOCATE_STEP);
            // An optimization only: a filesystem without fallocate takes
            // the writes as they come.
            self.preallocated = match self.file.preallocate(target, false).await {
                Ok(()) => Some(target),
                Err(_) => None,
            };
        }
        for piece in self.staged.chunks(TABLE_WRITE_SIZE) {
            // Staged bytes are whole pages: nothing to zero around the copy.
            let buf = self.file.alloc_copy(piece);
            let (file, offset) = (Rc::clone(&self.file), self.written);
            self.in_flight.push_back(io::spawn_background(async move {
                file.write_at(buf, offset).await
            }));
            self.written += piece.len() as u64;
            while self.in_flight.len() > TABLE_WRITES_IN_FLIGHT {
                if let Some(oldest) = self.in_flight.pop_front() {
                    oldest.await?;
                }
            }
        }
        self.staged.clear();
        Ok(())
    }

    /// Waits for every write in flight.
    async fn drain_writes(&mut self) -> Result<()> {
        while let Some(oldest) = self.in_flight.pop_front() {
            oldest.await?;
        }
        Ok(())
    }

    /// Writes the last block, index, bloom filter, properties and footer,
    /// fdatasyncs and closes the file. Returns the table's metadata.
    pub async fn finish(mut self) -> Result<TableMeta> {
        if !self.block.is_empty() {
            self.finish_block();
        }
        if self.props.entry_count > 0 {
            self.props.largest_key = self.block.last_key().to_vec();
        }
        let data_end = self.written + self.staged.len() as u64;
        assert_eq!(data_end, self.index.data_end(), "index and data disagree");
        // Filled in steps with yields between: in one go, a compaction
        // output's filter held the shard for 8 ms.
        let mut bloom = Bloom::sized_for(self.hashes.len(), self.options.bloom_bits_per_key);
        for hashes in self.hashes.chunks(BLOOM_FILL_STEP_KEYS) {
            bloom.insert_hashes(hashes);
            io::yield_now().await;
        }
        keep_spare_hashes(std::mem::take(&mut self.hashes));
        let section = |staged: &mut Vec<u8>, encode: &dyn Fn(&mut Vec<u8>)| {
            let start = staged.len();
            encode(staged);
            let bytes = &staged[start..];
            Section {
                offset: self.written + start as u64,
                len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                crc: crc32c::crc32c(bytes),
            }
        };
        let mut staged = std::mem::take(&mut self.staged);
        let index = section(&mut staged, &|out| self.index.encode(out));
        let bloom_section = section(&mut staged, &|out| bloom.encode(out));
        let props = section(&mut staged, &|out| self.props.encode(out));
        for s in [index, bloom_section, props] {
            assert!(s.len < u32::MAX, "table metadata section over 4 GiB");
        }
        let footer = Footer {
            data_end,
            index,
            bloom: bloom_section,
            props,
        };
        let total = align_up(staged.len() + FOOTER_SIZE);
        staged.resize(total - FOOTER_SIZE, 0);
        staged.extend_from_slice(&footer.encode());
        self.staged = staged;
        self.write_staged().await?;
        self.drain_writes().await?;
        if self.preallocated.is_some_and(|a| a > self.written) {
            self.file.truncate(self.written).await?;
        }
        self.file.sync().await?;
        let size = self.written;
        let TableWriter {
            file,
            id,
            level,
            props,
            ..
        } = self;
        // Every write task finished (drained above), so this is the last
        // reference; were it not, dropping it would still close the file.
        if let Ok(file) = Rc::try_unwrap(file) {
            file.close().await?;
        }
        Ok(TableMeta {
            id,
            level,
            size,
            entry_count: props.entry_count,
            tombstone_count: props.tombstone_count,
            smallest_key: props.smallest_key,
            largest_key: props.largest_key,
            max_version: props.max_version,
        })
    }
}

/// Keeps `hashes`, emptied, as this thread's spare if it is within
/// [`SPARE_HASHES_MAX`] and larger than the spare held (two writers may run
/// at once on a thread: a flush and a compaction).
fn keep_spare_hashes(mut hashes: Vec<u64>) {
    if hashes.capacity() > SPARE_HASHES_MAX {
        return;
    }
    hashes.clear();
    SPARE_HASHES.with(|spare| {
        let mut spare = spare.borrow_mut();
        if hashes.capacity() > spare.capacity() {
            *spare = hashes;
        }
    });
}
