//! The engine: one shard's LSM tree, tying the WAL, memtables, tables, the
//! manifest and compaction together behind put/get/delete/scan.
//!
//! Write path: validate -> `wal.append` (no I/O) -> memtable insert -> `wal.commit`
//! (durable per the durability mode). A memtable over its budget is frozen (the
//! WAL rotates at the same point, so every entry of the new memtable lies in a
//! later segment), flushed to an L0 table by a background task, recorded in the
//! manifest together with the WAL retirement point, and only then are its WAL
//! segments retired.
//!
//! Backpressure: a write waits while a rotation runs, while more than
//! [`LEVEL0_STALL_TABLES`] L0 tables wait for compaction, or when the memtable
//! is full and [`FROZEN_MEMTABLES_MAX`] frozen ones still wait for their flush.
//! Before it comes to that, the background queue's CPU shares rise with the
//! backlog (`Inner::backlog`, registered with [`io::register_backlog`]).
//!
//! Read path: the row cache answers keys read recently that the active
//! memtable does not hold (a write forgets its key there); otherwise the
//! highest version wins across the active memtable, the frozen
//! ones and every table (version pruning by `TableMeta::max_version`; bloom
//! filter before any disk read). Scans merge every source in key order
//! (`merge`). Compaction jobs come from [`crate::compaction::pick()`](fn@crate::compaction::pick) and run in
//! the background queue (`compact`), one at a time.
//!
//! Files in the shard directory:
//! ```text
//!   {id:020}.sst            live tables (listed in the manifest)
//!   {id:020}.sst.tmp        a table being written (deleted on open)
//!   CURRENT, MANIFEST-<n>   the manifest (crate::manifest)
//!   wal/                    WAL segments (crate::wal)
//!   .direct-io-probe        the first file opened on each thread (crate::io)
//! ```
//! Invariants:
//! - Single-threaded: state lives in `RefCell`s and no borrow is held across an
//!   `.await`; the manifest and the compaction slot are async locks.
//! - Every memtable holding acknowledged data is reachable by reads at every
//!   moment: a frozen memtable joins the frozen list before its WAL rotation
//!   starts and leaves it in the step its table joins L0.
//! - A table is visible to reads from the moment it is recorded in the
//!   manifest; its memtable or input tables disappear in the same step.
//! - WAL segments are retired only after the manifest records the table
//!   holding their data; files are deleted only after the manifest no longer
//!   lists them.
//! - Tombstones are dropped only at the bottommost level, after the grace
//!   period, and only when no memtable or table outside the job may hold an
//!   older version of the key.

mod batch;
mod compact;
mod flush;
mod merge;
mod options;
mod read;
mod sync;

pub use crate::wal::Durability;
pub use batch::{ScanRange, WriteBatch};
pub use options::{Clock, Options, Stats};

use crate::cache::BlockCache;
use crate::compaction::{LevelConfig, LEVEL_COUNT};
use crate::error::{Error, Result};
use crate::io;
use crate::limits::{BATCH_ENTRIES_MAX, BATCH_SIZE_MAX};
use crate::manifest::Manifest;
use crate::memtable::{ChunkPool, Memtable, Put};
use crate::row_cache::RowCache;
use crate::sstable::{table_file_name, Table};
use crate::types::{Entry, FileId, Record, RecordRef, Version};
use crate::wal::{Lsn, SegmentId, Wal, WalOptions};
use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;
use sync::{AsyncLock, Signal};

/// Frozen memtables allowed to wait for their flush before writes stall.
pub const FROZEN_MEMTABLES_MAX: usize = 2;
/// L0 tables above which writes stall until compaction catches up.
pub const LEVEL0_STALL_TABLES: usize = 20;
/// The WAL an active memtable may span, in memtable budgets: past it, the
/// memtable is frozen (and flushed) however small it is. Overwrites of a hot
/// keyspace replace entries in place, so a memtable whose keys all fit never
/// fills: nothing was ever flushed, the WAL it kept alive grew without bound
/// (2.8 GB in 30 s of SETs over 1M keys with a 256 MiB memtable), and with it
/// the disk used and the replay at the next start. RocksDB bounds its WAL
/// with `max_total_wal_size` in the same way.
pub const WAL_SPAN_MEMTABLES_MAX: u64 = 4;
/// Spare WAL segments an engine keeps: as many as the WAL span of one
/// memtable holds (see [`WAL_SPAN_MEMTABLES_MAX`]), so that the segments a
/// flush retires become the next span's segments by a rename, and a steady
/// stream of writes neither deletes WAL files nor writes new ones full of
/// zeros. The WAL's files then stay at about that span on disk (they would
/// reach it before every flush anyway), as PostgreSQL keeps recycled WAL
/// segments up to `max_wal_size`. At most
/// [`WAL_SPARE_SEGMENTS_KEPT_MAX`](crate::limits::WAL_SPARE_SEGMENTS_KEPT_MAX).
pub fn wal_spares_for_span(memtable_size: usize, segment_size: u64) -> usize {
    let span = WAL_SPAN_MEMTABLES_MAX.saturating_mul(memtable_size as u64);
    let segments = span.div_ceil(segment_size.max(1)).saturating_add(1);
    usize::try_from(segments).unwrap_or(usize::MAX).clamp(
        crate::limits::WAL_SPARE_SEGMENTS_MAX,
        crate::limits::WAL_SPARE_SEGMENTS_KEPT_MAX,
    )
}

/// Bytes of overhead per batch entry counted against `BATCH_SIZE_MAX`.
const BATCH_ENTRY_OVERHEAD_BYTES: usize = 32;

/// One shard's storage engine. Cheap to clone (an `Rc` inside); `!Send`: use it
/// only on the thread (executor) that opened it.
#[derive(Clone)]
pub struct Engine {
    inner: Rc<Inner>,
}

struct Inner {
    dir: PathBuf,
    options: Options,
    cache: Rc<BlockCache>,
    /// Current records of recently read keys; every accepted write passes
    /// through it (see `row_cache` for the invariant).
    rows: RefCell<RowCache>,
    /// Memory for the entries of every memtable this engine makes: a
    /// flushed memtable's chunks go back here for the next ones.
    memtable_chunks: ChunkPool,
    wal: Wal,
    manifest: AsyncLock<Manifest>,
    /// Held by whoever runs compactions (the background task or `compact`).
    compaction_slot: AsyncLock<()>,
    state: RefCell<State>,
    /// Notified on every change writers or waiters may be waiting for.
    changed: Signal,
}

impl Inner {
    /// The worst of two backlogs, each 0 when nothing waits and 1 at its
    /// write stall: flush (frozen memtable bytes against the
    /// [`FROZEN_MEMTABLES_MAX`] memtables that may wait) and compaction (L0
    /// tables past the compaction trigger against [`LEVEL0_STALL_TABLES`]).
    fn backlog(&self) -> f64 {
        let Ok(state) = self.state.try_borrow() else {
            return 0.0;
        };
        let memtable = self.options.memtable_size.max(1) as f64;
        let frozen: usize = state
            .frozen
            .iter()
            .map(|f| f.memtable.try_borrow().map_or(0, |m| m.approximate_bytes()))
            .sum();
        let flush = frozen as f64 / (memtable * FROZEN_MEMTABLES_MAX as f64);
        let trigger = self.options.level0_trigger;
        let over = state.levels[0].len().saturating_sub(trigger);
        let room = LEVEL0_STALL_TABLES.saturating_sub(trigger).max(1);
        let compaction = over as f64 / room as f64;
        flush.max(compaction).min(1.0)
    }
}

struct Frozen {
    memtable: Rc<RefCell<Memtable>>,
    /// Last WAL segment holding its entries (`None` while the WAL rotation
    /// that froze it runs, or if that rotation failed).
    segment: Option<SegmentId>,
}

#[derive(Default)]
struct Counters {
    user_bytes: u64,
    flushes: u64,
    flush_bytes: u64,
    compactions: u64,
    compaction_time: Duration,
    compaction_bytes_read: u64,
    compaction_bytes_written: u64,
    write_stalls: u64,
}

struct State {
    active: Rc<RefCell<Memtable>>,
    /// Oldest first; flushed in this order.
    frozen: VecDeque<Frozen>,
    /// `levels[0]` in flush order (oldest first); deeper levels sorted by key.
    levels: Vec<Vec<Rc<Table>>>,
    next_file_id: FileId,
    /// Largest key of the last compaction input per level (round-robin).
    cursors: Vec<Vec<u8>>,
    /// Bumped whenever tables join or leave the read path (a flush or a
    /// compaction installs): a read that waited across it does not fill the
    /// row cache.
    tables_generation: u64,
    /// The WAL's `appended_bytes` when the active memtable took over, less
    /// the WAL bytes replayed into it at open (see [`Engine::active_wal_span`]).
    active_since_wal: i128,
    rotating: bool,
    flushing: bool,
    compacting: bool,
    closed: bool,
    /// Set when a background flush or compaction failed: writes are refused.
    failed: Option<String>,
    counters: Counters,
}

impl Engine {
    /// Opens (or creates) the engine in `dir`: prepares the directory for
    /// direct I/O, reads the manifest, opens its tables, removes files of
    /// interrupted flushes and compactions, and replays the WAL into the
    /// memtable. Every write acknowledged before a crash is readable after it.
    pub async fn open(dir: &Path, options: Options) -> Result<Engine> {
        io::prepare_dir(dir, options.require_direct_io).await?;
        // glommio opens directories (for fsync) by absolute path only: a
        // relative one fails with EBADF at the first directory sync.
        let dir = &std::fs::canonicalize(dir).map_err(|e| Error::io("canonicalize", dir, e))?;
        io::set_background_queue(options.background_shares);
        let (manifest, manifest_state) = Manifest::open(dir).await?;
        let listed: HashSet<FileId> = manifest_state.tables.iter().map(|t| t.id).collect();
        // One budget kept idle: under steady writes the chunks of a flushed
        // memtable are what the active one fills next, so no memtable
        // faults fresh memory in under writers past the first two; more
        // would only stay with the shard after writes stop (a memtable
        // sized from memory is up to 512 MiB).
        let memtable_chunks = ChunkPool::for_budget(options.memtable_size, options.memtable_size);
        let opened = async {
            let cache = Rc::new(BlockCache::new(options.block_cache_size));
            let mut levels: Vec<Vec<Rc<Table>>> = vec![Vec::new(); LEVEL_COUNT];
            let mut next_file_id = manifest_state.next_file_id;
            let mut metas = manifest_state.tables.clone();
            metas.sort_by(|a, b| {
                (a.level, &a.smallest_key, a.id).cmp(&(b.level, &b.smallest_key, b.id))
            });
            for meta in &metas {
                let level = meta.level as usize;
                if level >= LEVEL_COUNT {
                    return Err(Error::corruption(
                        dir.join("manifest"),
                        0,
                        format!(
                            "table {} is at level {level}, beyond the last level {}",
                            meta.id,
                            LEVEL_COUNT - 1
                        ),
                    ));
                }
                let table = Table::open(
                    &dir.join(table_file_name(meta.id)),
                    meta.id,
                    meta.level,
                    cache.clone(),
                )
                .await?;
                next_file_id = next_file_id.max(meta.id + 1);
                levels[level].push(Rc::new(table));
            }
            // L0 is searched newest first: keep it in flush (= id) order.
            levels[0].sort_by_key(|t| t.meta().id);

            let mut memtable = Memtable::with_capacity(
                Memtable::presize_keys(options.memtable_size),
                memtable_chunks.clone(),
            );
            let wal_options = WalOptions {
                segment_size: options.wal_segment_size,
                durability: options.durability,
                spare_segments_max: wal_spares_for_span(
                    options.memtable_size,
                    options.wal_segment_size,
                ),
            };
            let wal = Wal::open(
                dir,
                wal_options,
                manifest_state.wal_retired_through,
                |_lsn, entries| {
                    for (key, record) in entries {
                        memtable.insert(&key, &record);
                    }
                    Ok(())
                },
            )
            .await?;
            Ok((cache, levels, next_file_id, memtable, wal))
        }
        .await;
        let (cache, levels, next_file_id, memtable, wal) =
            opened.map_err(|e| with_torn_manifest(&manifest, e))?;
        // The replayed WAL is all the new memtable's: a node that restarts
        // after a long run flushes it soon.
        let active_since_wal = -(wal.replayed_bytes() as i128);
        // Only now that the files match the manifest's state is an unlisted
        // table stale. (Removed earlier, a manifest whose damaged last record
        // was cut would delete the newer tables that record named.)
        remove_stale_files(dir, &listed)?;

        let rows = RefCell::new(RowCache::new(options.row_cache_size));
        let engine = Engine {
            inner: Rc::new(Inner {
                dir: dir.to_path_buf(),
                options,
                cache,
                rows,
                memtable_chunks,
                wal,
                manifest: AsyncLock::new(manifest),
                compaction_slot: AsyncLock::new(()),
                state: RefCell::new(State {
                    active: Rc::new(RefCell::new(memtable)),
                    frozen: VecDeque::new(),
                    levels,
                    next_file_id,
                    cursors: vec![Vec::new(); LEVEL_COUNT],
                    tables_generation: 0,
                    active_since_wal,
                    rotating: false,
                    flushing: false,
                    compacting: false,
                    closed: false,
                    failed: None,
                    counters: Counters::default(),
                }),
                changed: Signal::default(),
            }),
        };
        let weak = Rc::downgrade(&engine.inner);
        io::register_backlog(Box::new(move || {
            weak.upgrade().map(|inner| inner.backlog())
        }));
        engine.schedule_compaction();
        Ok(engine)
    }

    /// Writes `value` for `key` at `version`, expiring at `expires_at_ms`
    /// (0 = never). A lower version than the stored one loses (is kept out of
    /// reads). Returns once durable per the durability mode.
    pub async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        version: Version,
        expires_at_ms: u64,
    ) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(key, value, version, expires_at_ms);
        self.write(batch).await
    }

    /// Deletes `key` at `version` (writes a tombstone).
    pub async fn delete(&self, key: &[u8], version: Version) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete(key, version);
        self.write(batch).await
    }

    /// Applies every entry of `batch` atomically (one WAL record): after a
    /// crash either all of them are there or none. Refused as a whole, before
    /// anything is written, if any key or value is over its limit.
    pub async fn write(&self, batch: WriteBatch) -> Result<()> {
        let user_bytes = validate(&batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        self.make_room().await?;
        // From here to `commit` nothing awaits: the entries land in the WAL
        // and the memtable of the same generation.
        let refs: Vec<(&[u8], RecordRef<'_>)> = batch
            .entries
            .iter()
            .map(|(k, r)| (k.as_slice(), r.into()))
            .collect();
        let lsn = self.inner.wal.append(&refs)?;
        self.apply(&refs, user_bytes);
        self.inner.wal.commit(lsn).await
    }

    /// Writes one record (`value` `None` is a tombstone) without waiting,
    /// when the engine can take it at once: open, not failed, room in the
    /// memtable and no stall. Then the record is in the WAL and the memtable
    /// (visible to reads) when this returns, and durable once
    /// [`commit`](Self::commit) of the returned LSN returns (at once when
    /// [`is_durable`](Self::is_durable)). `None`: it would have to wait, and
    /// nothing was done; use [`write`](Self::write). An error (a key or value
    /// over its limit, a failed WAL) also leaves nothing written.
    ///
    /// This is the write path of a pipelined request answered without a
    /// task: no batch, no future, no allocation (the value is copied into the WAL
    /// tail and the memtable's arena).
    pub fn try_write_now(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        version: Version,
        expires_at_ms: u64,
    ) -> Option<Result<Lsn>> {
        if self.room() != Room::Ready {
            return None;
        }
        let record = RecordRef {
            version,
            expires_at_ms,
            value,
        };
        let user_bytes = match validate_entry(key, record) {
            Ok(bytes) => bytes as u64,
            Err(e) => return Some(Err(e)),
        };
        let entry = [(key, record)];
        let lsn = match self.inner.wal.append(&entry) {
            Ok(lsn) => lsn,
            Err(e) => return Some(Err(e)),
        };
        self.apply(&entry, user_bytes);
        Some(Ok(lsn))
    }

    /// Whether the write at `lsn` (from [`try_write_now`](Self::try_write_now))
    /// is already as durable as the durability mode asks.
    pub fn is_durable(&self, lsn: Lsn) -> bool {
        self.inner.wal.is_durable(lsn)
    }

    /// Waits until the write at `lsn` is durable per the durability mode.
    pub async fn commit(&self, lsn: Lsn) -> Result<()> {
        self.inner.wal.commit(lsn).await
    }

    /// Puts records already in the WAL into the memtable, and keeps the row
    /// cache away from the keys the active memtable holds (see
    /// `row_cache`): a key new to the active memtable is forgotten there
    /// (and marked as read in the memtable if it was cached),
    /// and a key it held already cannot be cached, so an overwrite, the
    /// common write, does not touch the cache at all. No await: called right
    /// after the WAL append, so both hold the entries of the same generation.
    fn apply(&self, entries: &[(&[u8], RecordRef<'_>)], user_bytes: u64) {
        let inner = &self.inner;
        let mut state = inner.state.borrow_mut();
        let mut active = state.active.borrow_mut();
        let mut rows = inner.rows.borrow_mut();
        for &(key, record) in entries {
            // A key that was cached is being read: it goes back to the
            // cache when this memtable is flushed (see `flush`).
            if active.put(key, record) == Put::Added && rows.forget(key) {
                active.mark_read(key);
            }
        }
        drop(rows);
        drop(active);
        state.counters.user_bytes += user_bytes;
    }

    /// The live value of `key` at `now_ms`: `None` if absent, deleted or expired.
    pub async fn get(&self, key: &[u8], now_ms: u64) -> Result<Option<Record>> {
        Ok(self
            .get_record(key)
            .await?
            .filter(|r| !r.is_dead_at(now_ms)))
    }

    /// The highest-version record of `key`, tombstones and expired values included.
    pub async fn get_record(&self, key: &[u8]) -> Result<Option<Record>> {
        self.check_open()?;
        read::get_record(self, key).await
    }

    /// Calls `f` with the record [`get_record`](Self::get_record) would
    /// return (`None`: `key` has no record), borrowed, when that is known
    /// without I/O: the row cache holds it, or the memtables hold a version
    /// no table can beat (every key, before the first flush), or no source
    /// can hold the key. An answer without waiting or a copy of the value.
    /// `f` must not call back into the engine. `None`, having called
    /// nothing, says only "a table must be read" (or the engine is closed):
    /// call `get_record`.
    pub fn read_now<R>(&self, key: &[u8], f: impl FnOnce(Option<RecordRef<'_>>) -> R) -> Option<R> {
        self.check_open().ok()?;
        read::read_now(self, key, f)
    }

    /// Hints that `reads` are about to be read and `writes` written: starts
    /// loading the row-cache memory every read's lookup touches and the
    /// memtable-index bucket every read and write starts from, so a batch's
    /// cache misses overlap. Changes no result.
    pub fn prefetch(&self, reads: &[&[u8]], writes: &[&[u8]]) {
        self.inner.rows.borrow().prefetch(reads);
        let state = self.inner.state.borrow();
        let active = state.active.borrow();
        if !active.is_empty() {
            active.prefetch_keys(reads);
        }
        active.prefetch_keys(writes);
    }

    /// The second stage of [`prefetch`](Self::prefetch), for a few requests
    /// ahead of the one about to run: starts loading the memtable entries
    /// the index buckets of `reads` and `writes` name (see
    /// [`Memtable::prefetch_records`] and [`Memtable::prefetch_entries`]),
    /// and, for a write whose key the memtable seems not to hold, the
    /// row-cache buckets it will look in to forget the key. Reads the
    /// buckets `prefetch` hinted, so call it a little after. Changes no
    /// result.
    pub fn prefetch_entries(&self, reads: &[&[u8]], writes: &[&[u8]]) {
        let state = self.inner.state.borrow();
        let active = state.active.borrow();
        active.prefetch_records(reads);
        let rows = self.inner.rows.borrow();
        active.prefetch_entries(writes, |key| rows.prefetch_buckets(key));
    }

    /// Up to `limit` live entries of `range` at `now_ms`, in key order.
    pub async fn scan(&self, range: ScanRange, limit: usize, now_ms: u64) -> Result<Vec<Entry>> {
        self.check_open()?;
        read::scan(self, range, limit, now_ms).await
    }

    /// Flushes the memtable to an L0 table and waits until every frozen
    /// memtable is durable in a table (and its WAL segments retired).
    pub async fn flush(&self) -> Result<()> {
        self.check_open()?;
        // Wait for a rotation in progress, then freeze the current memtable.
        loop {
            self.check_failed()?;
            let (rotating, empty) = {
                let state = self.inner.state.borrow();
                let empty = state.active.borrow().is_empty();
                (state.rotating, empty)
            };
            if !rotating {
                if !empty {
                    self.freeze().await?;
                }
                break;
            }
            self.inner.changed.wait().await;
        }
        loop {
            self.check_failed()?;
            let pending = {
                let state = self.inner.state.borrow();
                !state.frozen.is_empty() || state.flushing
            };
            if !pending {
                return Ok(());
            }
            self.schedule_flush();
            self.inner.changed.wait().await;
        }
    }

    /// Runs compactions until no level is over its target (L0 under its
    /// trigger, every other level within its size).
    pub async fn compact(&self) -> Result<()> {
        self.check_open()?;
        self.check_failed()?;
        let _slot = self.inner.compaction_slot.lock().await;
        while let Some(job) = self.pick_compaction() {
            if let Err(e) = compact::run(self, job).await {
                self.fail(&e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The engine's figures now.
    pub fn stats(&self) -> Stats {
        let inner = &self.inner;
        let state = inner.state.borrow();
        let wal = inner.wal.stats();
        let c = &state.counters;
        let mut memtable_bytes = state.active.borrow().approximate_bytes() as u64;
        let mut keys = state.active.borrow().len() as u64;
        for f in &state.frozen {
            memtable_bytes += f.memtable.borrow().approximate_bytes() as u64;
            keys += f.memtable.borrow().len() as u64;
        }
        let mut index_bloom_bytes = 0u64;
        for t in state.levels.iter().flatten() {
            keys += t.meta().entry_count;
            index_bloom_bytes += t.memory_bytes() as u64;
        }
        let written = wal.bytes_written + c.flush_bytes + c.compaction_bytes_written;
        Stats {
            keys_estimate: keys,
            memtable_bytes,
            frozen_memtables: state.frozen.len(),
            bytes_per_level: state
                .levels
                .iter()
                .map(|l| l.iter().map(|t| t.meta().size).sum())
                .collect(),
            tables_per_level: state.levels.iter().map(Vec::len).collect(),
            user_bytes_written: c.user_bytes,
            wal_bytes_written: wal.bytes_written,
            flush_bytes_written: c.flush_bytes,
            write_amplification: if c.user_bytes == 0 {
                0.0
            } else {
                written as f64 / c.user_bytes as f64
            },
            block_cache: inner.cache.stats(),
            row_cache: inner.rows.borrow().stats(),
            flushes: c.flushes,
            compactions: c.compactions,
            compaction_time: c.compaction_time,
            compaction_bytes_read: c.compaction_bytes_read,
            compaction_bytes_written: c.compaction_bytes_written,
            wal_syncs: wal.syncs,
            index_bloom_bytes,
            write_stalls: c.write_stalls,
            memtable_vectors_reused: inner.memtable_chunks.key_vectors_reused(),
        }
    }

    /// Waits for background flushes and compactions, then writes and syncs
    /// the WAL. Later calls on any clone return [`Error::Closed`]. Returns the
    /// background failure, if one happened, after closing.
    pub async fn close(&self) -> Result<()> {
        self.check_open()?;
        self.inner.state.borrow_mut().closed = true;
        self.inner.changed.notify_all();
        loop {
            let busy = {
                let state = self.inner.state.borrow();
                state.flushing || state.compacting || state.rotating
            };
            if !busy && !self.inner.compaction_slot.is_locked() {
                break;
            }
            self.inner.changed.wait().await;
        }
        self.inner.wal.close().await?;
        self.inner.manifest.lock().await.close().await?;
        let tables: Vec<Rc<Table>> = {
            let mut state = self.inner.state.borrow_mut();
            state.levels.iter_mut().flat_map(std::mem::take).collect()
        };
        for table in tables {
            if let Ok(table) = Rc::try_unwrap(table) {
                table.close().await?;
            }
        }
        self.check_failed()
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.state.borrow().closed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn check_failed(&self) -> Result<()> {
        match &self.inner.state.borrow().failed {
            Some(reason) => Err(Error::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records a background failure: later writes are refused.
    fn fail(&self, e: &Error) {
        tracing::error!(dir = %self.inner.dir.display(), error = %e, "storage background work failed");
        let mut state = self.inner.state.borrow_mut();
        if state.failed.is_none() {
            state.failed = Some(e.to_string());
        }
        drop(state);
        self.inner.changed.notify_all();
    }

    /// Waits until the active memtable may take a write: not too many L0
    /// tables, and the memtable under its budget (freezing it when over, if
    /// no rotation is in flight and not too many are already frozen).
    async fn make_room(&self) -> Result<()> {
        let mut stalled = false;
        loop {
            self.check_open()?;
            self.check_failed()?;
            match self.room() {
                Room::Ready => return Ok(()),
                Room::Freeze => {
                    // Boxed: a freeze is rare and its future is large; inline,
                    // it would size every write's future (and each request
                    // that awaits one) for it.
                    Box::pin(self.freeze()).await?;
                    continue;
                }
                Room::Wait { rotating } => {
                    if !stalled && !rotating {
                        stalled = true;
                        self.inner.state.borrow_mut().counters.write_stalls += 1;
                    }
                }
            }
            self.schedule_flush();
            self.schedule_compaction();
            self.inner.changed.wait().await;
        }
    }

    /// Whether a write can go in now (see [`Room`]). A closed or failed
    /// engine is never `Ready`.
    fn room(&self) -> Room {
        let state = self.inner.state.borrow();
        if state.closed || state.failed.is_some() {
            return Room::Wait {
                rotating: state.rotating,
            };
        }
        let budget = self.inner.options.memtable_size;
        let full = state.active.borrow().approximate_bytes() >= budget
            || self.active_wal_span(&state) >= WAL_SPAN_MEMTABLES_MAX * budget as u64;
        // A full memtable waits for a rotation still in flight (one freeze
        // at a time); other writes go on during it.
        let must_wait = state.levels[0].len() > LEVEL0_STALL_TABLES
            || (full && (state.rotating || state.frozen.len() >= FROZEN_MEMTABLES_MAX));
        if must_wait {
            Room::Wait {
                rotating: state.rotating,
            }
        } else if full {
            Room::Freeze
        } else {
            Room::Ready
        }
    }

    /// WAL bytes the active memtable's entries span (appended since it took
    /// over, plus those replayed into it at open).
    fn active_wal_span(&self, state: &State) -> u64 {
        let appended = self.inner.wal.appended_bytes() as i128;
        (appended - state.active_since_wal).max(0) as u64
    }

    fn level_config(&self) -> LevelConfig {
        let o = &self.inner.options;
        LevelConfig {
            level0_trigger: o.level0_trigger,
            level1_size: o.level1_size,
            level_size_ratio: o.level_size_ratio,
        }
    }

    fn alloc_file_id(&self) -> FileId {
        let mut state = self.inner.state.borrow_mut();
        let id = state.next_file_id;
        state.next_file_id += 1;
        id
    }
}

/// What a write must do before it goes into the memtable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Go in now.
    Ready,
    /// Freeze the full memtable first.
    Freeze,
    /// Wait: too many L0 tables, or the memtable is full while a rotation
    /// (or the most frozen memtables) is still in flight, or the engine is
    /// closed or failed (the caller's checks then report why).
    Wait { rotating: bool },
}

/// Checks sizes before anything is written; returns the user bytes of the batch.
fn validate(batch: &WriteBatch) -> Result<u64> {
    let (mut size, mut user_bytes) = (0usize, 0u64);
    for (key, record) in &batch.entries {
        let bytes = validate_entry(key, record.into())?;
        size += bytes + BATCH_ENTRY_OVERHEAD_BYTES;
        user_bytes += bytes as u64;
    }
    if batch.len() > BATCH_ENTRIES_MAX || size > BATCH_SIZE_MAX {
        return Err(Error::BatchTooLarge {
            entries: batch.len(),
            entries_max: BATCH_ENTRIES_MAX,
            size,
            size_max: BATCH_SIZE_MAX,
        });
    }
    Ok(user_bytes)
}

/// Checks one entry's key and record against the limits; returns its user
/// bytes (key and value). Shared by batches and [`Engine::try_write_now`].
fn validate_entry(key: &[u8], record: RecordRef<'_>) -> Result<usize> {
    if key.is_empty() {
        return Err(Error::KeyEmpty);
    }
    crate::wal::batch::check_entry(key, record)?;
    Ok(key.len() + record.value.map_or(0, <[u8]>::len))
}

/// Removes files an interrupted flush or compaction left: `*.tmp` files and
/// tables the manifest does not list.
/// `e` (a failure to open the files the manifest names), explained by the
/// manifest's cut tail when there is one: the cut edits are why the files
/// do not match, so the error names the manifest and where it was cut.
fn with_torn_manifest(manifest: &Manifest, e: Error) -> Error {
    match manifest.torn_tail() {
        Some(tail) => Error::corruption(
            &tail.file,
            tail.offset,
            format!(
                "the manifest's last record was damaged ({}) and cut as a torn write, and the \
                 files do not match the older state it leaves: {e}",
                tail.reason
            ),
        ),
        None => e,
    }
}

fn remove_stale_files(dir: &Path, listed: &HashSet<FileId>) -> Result<()> {
    for path in io::list_dir(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let stale = if name.ends_with(".tmp") {
            true
        } else if let Some(stem) = name.strip_suffix(".sst") {
            stem.parse::<FileId>().is_ok_and(|id| !listed.contains(&id))
        } else {
            false
        };
        if stale {
            tracing::info!(file = %path.display(), "removing a file left by an interrupted flush or compaction");
            io::remove_file(&path)?;
        }
    }
    Ok(())
}
