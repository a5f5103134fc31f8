//! The narrow interface between a shard and its storage engine: exactly the
//! calls the request path makes, over one [`ringkv_storage::engine::Engine`]
//! in `<data-dir>/shard-<i>/`. Keeping it narrow lets the engine change (or
//! be simulated) without touching the request code.
//!
//! Invariants: one store per shard, used from that shard's thread only; a
//! write returns only once the engine acknowledged it (durable per the node's
//! durability mode); reads reconcile by highest version (the engine's rule).

use crate::config::{DurabilityMode, NodeConfig};
use ringkv_storage::engine::{Engine, Options, ScanRange, WriteBatch};
use ringkv_storage::wal::{Durability, Lsn};
use ringkv_storage::{Entry, Record, RecordRef, Result, Version};
use std::path::Path;

/// Requests ahead of the one running (reads and writes counted apart)
/// whose memtable entries are hinted (see [`EntryHints`]).
const ENTRY_HINT_AHEAD: usize = 4;

/// Hints the memory a batch's reads and writes will touch, a few of each
/// ahead of the one that runs, after [`Store::prefetch`] hinted the index
/// buckets: the entry a key's bucket names ([`Store::prefetch_entries`]),
/// which reads the bucket, by then landed, so it does not wait. Changes no
/// result.
pub struct EntryHints<'k> {
    reads: Ahead<'k>,
    writes: Ahead<'k>,
}

/// One kind of request's keys, in the order they run, and how far hints
/// and runs have come.
struct Ahead<'k> {
    keys: &'k [&'k [u8]],
    hinted: usize,
    started: usize,
}

impl<'k> Ahead<'k> {
    fn new(keys: &'k [&'k [u8]]) -> Self {
        Ahead {
            keys,
            hinted: 0,
            started: 0,
        }
    }

    /// The keys to hint now to stay [`ENTRY_HINT_AHEAD`] ahead (marked
    /// hinted).
    fn due(&mut self) -> &'k [&'k [u8]] {
        let to = (self.started + ENTRY_HINT_AHEAD).min(self.keys.len());
        let from = self.hinted.min(to);
        self.hinted = self.hinted.max(to);
        &self.keys[from..to]
    }
}

impl<'k> EntryHints<'k> {
    /// Hints the first reads and writes of `reads` and `writes` (the
    /// batch's keys of each kind, in the order they will run, already
    /// passed to [`Store::prefetch`]).
    pub fn new(store: &Store, reads: &'k [&'k [u8]], writes: &'k [&'k [u8]]) -> Self {
        let mut hints = EntryHints {
            reads: Ahead::new(reads),
            writes: Ahead::new(writes),
        };
        hints.keep_ahead(store);
        hints
    }

    /// A read of the batch is about to run: hints the next ones not yet
    /// hinted, keeping [`ENTRY_HINT_AHEAD`] reads ahead.
    pub fn next_read(&mut self, store: &Store) {
        self.reads.started += 1;
        self.keep_ahead(store);
    }

    /// A write of the batch is about to run: as [`next_read`](Self::next_read).
    pub fn next_write(&mut self, store: &Store) {
        self.writes.started += 1;
        self.keep_ahead(store);
    }

    fn keep_ahead(&mut self, store: &Store) {
        let (reads, writes) = (self.reads.due(), self.writes.due());
        if !reads.is_empty() || !writes.is_empty() {
            store.prefetch_entries(reads, writes);
        }
    }
}

/// Which keys a scan visits.
pub type ScanSpan = ScanRange;

/// One write of a batch.
#[derive(Debug, Clone)]
pub struct BatchWrite {
    /// The key.
    pub key: Vec<u8>,
    /// The record to write (value or tombstone).
    pub record: Record,
}

/// One shard's store. Cheap to clone (shared inside the shard).
#[derive(Clone)]
pub struct Store {
    engine: Engine,
}

/// The engine options for a node configuration.
pub fn engine_options(config: &NodeConfig) -> Options {
    Options {
        durability: match config.durability {
            DurabilityMode::Sync => Durability::Sync,
            DurabilityMode::Batch { window } => Durability::Batch { window },
            DurabilityMode::None => Durability::None,
        },
        memtable_size: config.memtable_size,
        block_cache_size: config.block_cache_size,
        row_cache_size: config.row_cache_size,
        background_shares: config.background_shares,
        ..Options::default()
    }
}

impl Store {
    /// Opens (or creates and recovers) the store in `dir`.
    pub async fn open(dir: &Path, config: &NodeConfig) -> Result<Store> {
        let options = engine_options(config);
        ringkv_storage::io::prepare_dir(dir, options.require_direct_io).await?;
        let engine = Engine::open(dir, options).await?;
        Ok(Store { engine })
    }

    /// The highest-version record of `key`, tombstones and expired values included.
    pub async fn get_record(&self, key: &[u8]) -> Result<Option<Record>> {
        self.engine.get_record(key).await
    }

    /// Calls `f` with the record of `key` (`None`: none), borrowed, when it
    /// is known without I/O (see [`Engine::read_now`]); `None` means "take
    /// the full read".
    pub fn read_now<R>(&self, key: &[u8], f: impl FnOnce(Option<RecordRef<'_>>) -> R) -> Option<R> {
        self.engine.read_now(key, f)
    }

    /// Hints that `reads` are about to be read and `writes` written (see
    /// [`Engine::prefetch`]).
    pub fn prefetch(&self, reads: &[&[u8]], writes: &[&[u8]]) {
        self.engine.prefetch(reads, writes);
    }

    /// Hints the memtable entries `reads` and `writes` will read (see
    /// [`Engine::prefetch_entries`]).
    pub fn prefetch_entries(&self, reads: &[&[u8]], writes: &[&[u8]]) {
        self.engine.prefetch_entries(reads, writes);
    }

    /// Writes a value; durable per the configured mode when this returns.
    pub async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        version: Version,
        expires_at_ms: u64,
    ) -> Result<()> {
        self.engine.put(key, value, version, expires_at_ms).await
    }

    /// Writes a value (`None`: a tombstone) at once when the engine can take
    /// it without waiting (see [`Engine::try_write_now`]): `None` means
    /// nothing was written, use [`put`](Self::put) or [`delete`](Self::delete).
    /// Acknowledge it only once [`commit`](Self::commit) of the returned LSN
    /// returns (or [`is_durable`](Self::is_durable) says it would at once).
    pub fn try_write_now(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        version: Version,
        expires_at_ms: u64,
    ) -> Option<Result<Lsn>> {
        self.engine
            .try_write_now(key, value, version, expires_at_ms)
    }

    /// Whether the write at `lsn` is already durable per the durability mode.
    pub fn is_durable(&self, lsn: Lsn) -> bool {
        self.engine.is_durable(lsn)
    }

    /// Waits until the write at `lsn` is durable per the durability mode.
    pub async fn commit(&self, lsn: Lsn) -> Result<()> {
        self.engine.commit(lsn).await
    }

    /// Writes a tombstone.
    pub async fn delete(&self, key: &[u8], version: Version) -> Result<()> {
        self.engine.delete(key, version).await
    }

    /// Writes every entry atomically (one WAL record).
    pub async fn write(&self, batch: Vec<BatchWrite>) -> Result<()> {
        let mut b = WriteBatch::new();
        for w in &batch {
            match &w.record.value {
                Some(v) => b.put(&w.key, v, w.record.version, w.record.expires_at_ms),
                None => b.delete(&w.key, w.record.version),
            }
        }
        self.engine.write(b).await
    }

    /// Live entries of `span` in key order, at most `limit`.
    pub async fn scan(&self, span: ScanSpan, limit: usize, now_ms: u64) -> Result<Vec<Entry>> {
        self.engine.scan(span, limit, now_ms).await
    }

    /// Makes everything written so far durable in tables.
    pub async fn flush(&self) -> Result<()> {
        self.engine.flush().await
    }

    /// Drains background work and closes.
    pub async fn close(&self) -> Result<()> {
        self.engine.close().await
    }

    /// `key value` statistics lines.
    pub fn stats(&self) -> Vec<(String, String)> {
        let s = self.engine.stats();
        let mut out = vec![
            (
                "storage_keys_estimate".to_string(),
                s.keys_estimate.to_string(),
            ),
            (
                "storage_memtable_bytes".into(),
                s.memtable_bytes.to_string(),
            ),
            (
                "storage_write_amplification".into(),
                format!("{:.3}", s.write_amplification),
            ),
            (
                "storage_frozen_memtables".into(),
                s.frozen_memtables.to_string(),
            ),
            ("storage_flushes".into(), s.flushes.to_string()),
            (
                "storage_flush_bytes_written".into(),
                s.flush_bytes_written.to_string(),
            ),
            (
                "storage_wal_bytes_written".into(),
                s.wal_bytes_written.to_string(),
            ),
            ("storage_compactions".into(), s.compactions.to_string()),
            (
                "storage_compaction_time_ms".into(),
                s.compaction_time.as_millis().to_string(),
            ),
            (
                "storage_compaction_bytes_read".into(),
                s.compaction_bytes_read.to_string(),
            ),
            (
                "storage_compaction_bytes_written".into(),
                s.compaction_bytes_written.to_string(),
            ),
            ("storage_wal_syncs".into(), s.wal_syncs.to_string()),
            (
                "storage_index_bloom_bytes".into(),
                s.index_bloom_bytes.to_string(),
            ),
        ];
        for (name, cache) in [("block_cache", s.block_cache), ("row_cache", s.row_cache)] {
            out.push((format!("storage_{name}_hits"), cache.hits.to_string()));
            out.push((format!("storage_{name}_misses"), cache.misses.to_string()));
            out.push((format!("storage_{name}_bytes"), cache.bytes.to_string()));
        }
        out.push(("storage_write_stalls".into(), s.write_stalls.to_string()));
        out.push((
            "storage_memtable_vectors_reused".into(),
            s.memtable_vectors_reused.to_string(),
        ));
        for (level, (bytes, tables)) in s
            .bytes_per_level
            .iter()
            .zip(&s.tables_per_level)
            .enumerate()
        {
            out.push((format!("storage_level{level}_bytes"), bytes.to_string()));
            out.push((format!("storage_level{level}_tables"), tables.to_string()));
        }
        out
    }
}
