//! ringkv-storage: the LSM engine one shard owns.
//!
//! One [`Engine`] per shard, used from that shard's thread only (no locks, no
//! `Send`). Writes go to a write-ahead log (O_DIRECT, group commit) and an
//! ordered memtable; full memtables are flushed to SSTables (aligned blocks,
//! index, bloom filter, checksummed footer) and merged by leveled compaction in
//! a background task queue. A manifest log records which tables are live.
//!
//! Layout: format code (block, index, bloom, footer, WAL record, manifest
//! record) is plain functions over byte slices with no I/O; [`io`] is the only
//! module that touches glommio.

pub mod cache;
pub mod compaction;
pub mod engine;
mod entry_slab;
pub mod error;
mod huge_pages;
pub mod io;
pub mod key_index;
mod le;
pub mod limits;
pub mod manifest;
pub mod memtable;
mod prefaulted;
mod prefetch;
pub mod row_cache;
pub mod sstable;
pub mod types;
pub mod wal;

// Re-exports of the engine API are added when the engine lands:
pub use engine::{Durability, Engine, Options, ScanRange, Stats, WriteBatch};
pub use error::{Error, Result};
pub use types::{Entry, FileId, Record, RecordRef, TableMeta, Version};
