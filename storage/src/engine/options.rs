//! The engine's configuration ([`Options`]), its clock ([`Clock`]) and the
//! figures it reports ([`Stats`]).

use crate::cache::CacheStats;
use crate::sstable::TableOptions;
use crate::wal::Durability;
use std::sync::Arc;
use std::time::Duration;

const MIB: usize = 1024 * 1024;

/// How one shard's engine behaves. `Default` gives production values.
#[derive(Clone, Debug)]
pub struct Options {
    /// When a write is acknowledged: after fdatasync (`Sync`, the default), after
    /// a bounded group-commit window, or without waiting (`None`).
    pub durability: Durability,
    /// Memtable budget in bytes; past it the memtable is frozen and flushed.
    pub memtable_size: usize,
    /// Byte budget of the block cache.
    pub block_cache_size: usize,
    /// Byte budget of the row cache (current records of recently read keys,
    /// answered with one hash lookup); 0 disables it.
    pub row_cache_size: usize,
    /// Size of one WAL segment in bytes (preallocated).
    pub wal_segment_size: u64,
    /// How tables are written (block size, compression, bloom bits).
    pub table: TableOptions,
    /// Number of L0 tables that triggers an L0 -> L1 compaction.
    pub level0_trigger: usize,
    /// Each level's target size is this many times the one above it.
    pub level_size_ratio: u64,
    /// Target size of L1 in bytes.
    pub level1_size: u64,
    /// Compaction outputs are split into tables of about this many bytes.
    pub table_size_target: u64,
    /// Compaction write rate limit in bytes per second; 0 = unlimited.
    pub compaction_rate_bytes_per_sec: u64,
    /// Tombstones (and expired values) younger than this are kept even at the
    /// bottommost level; must exceed the cluster's hint window.
    pub tombstone_grace: Duration,
    /// Refuse to open on a filesystem without O_DIRECT (tmpfs).
    pub require_direct_io: bool,
    /// Shares of the background task queue (flush, compaction); foreground
    /// work usually has 1000.
    pub background_shares: usize,
    /// Wall clock used by compaction to expire values and age tombstones.
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::Sync,
            memtable_size: 64 * MIB,
            block_cache_size: 256 * MIB,
            row_cache_size: 256 * MIB,
            wal_segment_size: 64 * MIB as u64,
            table: TableOptions::default(),
            level0_trigger: 4,
            level_size_ratio: 10,
            level1_size: 256 * MIB as u64,
            table_size_target: 64 * MIB as u64,
            compaction_rate_bytes_per_sec: 256 * MIB as u64,
            // Cassandra's default gc_grace_seconds.
            tombstone_grace: Duration::from_secs(10 * 24 * 3600),
            require_direct_io: true,
            background_shares: 200,
            clock: Clock::system(),
        }
    }
}

/// A source of wall-clock milliseconds since the Unix epoch. Tests pass a fake
/// one so expiry and tombstone aging are deterministic.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(Arc::new(crate::io::now_ms))
    }

    /// A clock reading `f`.
    pub fn new(f: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Clock(Arc::new(f))
    }

    /// Milliseconds since the Unix epoch now.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock(now_ms={})", self.now_ms())
    }
}

/// A snapshot of the engine's figures (since it was opened).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Keys held, estimated (entries in memtables and tables; overwritten
    /// versions in different places are counted more than once).
    pub keys_estimate: u64,
    /// Bytes charged to the active and frozen memtables.
    pub memtable_bytes: u64,
    /// Frozen memtables waiting for their flush.
    pub frozen_memtables: usize,
    /// Table bytes per level (index = level).
    pub bytes_per_level: Vec<u64>,
    /// Tables per level (index = level).
    pub tables_per_level: Vec<usize>,
    /// Key and value bytes accepted from callers.
    pub user_bytes_written: u64,
    /// Bytes written to the WAL.
    pub wal_bytes_written: u64,
    /// Bytes written to tables by flushes.
    pub flush_bytes_written: u64,
    /// (WAL + flush + compaction bytes written) / user bytes written.
    pub write_amplification: f64,
    /// Block cache hits, misses and size.
    pub block_cache: CacheStats,
    /// Row cache hits, misses and size.
    pub row_cache: CacheStats,
    /// Memtable flushes completed.
    pub flushes: u64,
    /// Compactions completed.
    pub compactions: u64,
    /// Time spent in compactions (including rate-limit waits).
    pub compaction_time: Duration,
    /// Bytes of input tables read by compactions.
    pub compaction_bytes_read: u64,
    /// Bytes of output tables written by compactions.
    pub compaction_bytes_written: u64,
    /// WAL fdatasync calls.
    pub wal_syncs: u64,
    /// Bytes of index and bloom filters held in memory.
    pub index_bloom_bytes: u64,
    /// Times a write waited for a flush or compaction (backpressure).
    pub write_stalls: u64,
    /// Memtables that took the index and slot vectors of one flushed before
    /// them instead of fresh memory (see `ChunkPool::key_vectors_reused`).
    pub memtable_vectors_reused: u64,
}
