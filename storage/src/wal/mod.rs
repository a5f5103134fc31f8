//! The write-ahead log: every batch is appended here, checksummed, before it
//! is acknowledged; on open the live segments are replayed into the memtable.
//!
//! Owns `<dir>/wal/`: segment files `<id:020>.log` (all the same size,
//! [`WalOptions::segment_size`], zero-filled before first use), spare segments
//! `*.spare` ready to become the next segment, and `*.tmp` files of an
//! interrupted preparation (removed on open).
//!
//! # Segment format
//!
//! A segment is a sequence of frames from offset 0, each 8-byte aligned, that
//! may span 4 KiB pages (frame layout in [`record`]):
//!
//! ```text
//! offset 0                                                         segment_size
//! | batch lsn=n | batch lsn=n+1 | ... | batch lsn=m | end lsn=m | zeros or stale bytes |
//!   kind 1        kind 1                kind 1        kind 2
//! ```
//!
//! - kind 1 (batch): payload = the batch's entries ([`batch`]); seq = its LSN.
//!   LSNs rise by exactly one per batch, across segments.
//! - kind 2 (segment end): empty payload; seq = LSN of the segment's last batch.
//!   Written and fdatasync'd before the next segment is created, so every
//!   segment but the last ends with one.
//! - Every frame carries its segment id inside the checksum: bytes left in a
//!   recycled segment from its previous life never validate.
//!
//! # Writing (group commit)
//!
//! [`Wal::append`] only encodes into an in-memory tail that starts at the page
//! holding the first byte not yet durable. [`Wal::commit`] makes one caller the
//! leader: it yields once so every batch appended in the same reactor turn
//! joins, then writes the whole tail (padded with zeros to 4 KiB) with one
//! O_DIRECT write and one fdatasync, and wakes every waiter now durable plus
//! the next waiter still waiting (who leads the next round). A partial last
//! page is rewritten by the next round. A failed write or sync poisons the WAL:
//! after a failed fdatasync the state of the page cache is unknown.
//!
//! # Preallocation and recycling
//!
//! A commit must cost a data write and a flush, not a journal commit: writing
//! into unwritten extents (fallocate) or past end of file makes fdatasync
//! commit metadata. So new segments are written full of zeros once (in the
//! background, started when the current segment is half full, in paced 1 MiB
//! writes), and retired segments are renamed to spares and reused. Only the
//! very first segment of a new WAL is prepared inline, by `open` (about 50 ms
//! for 64 MiB here). Renaming a spare into place is followed by an fsync of
//! the directory before anything in it is acknowledged.
//!
//! Rewriting a page that holds acknowledged bytes is safe against a torn
//! write: those bytes are rewritten with the same values, so whichever
//! sectors land, only the new bytes can be damaged.
//!
//! # Replay
//!
//! Segments with id > `retired_through` are replayed in id order (see
//! [`replay`] for the rules that separate a torn tail from corruption). The
//! writer continues after the last good frame of the last segment, rewriting
//! its page, or in a new segment if the last one is finished.
//!
//! Invariants: single-threaded (one shard); `durable_lsn <= last appended LSN`;
//! at most one write is in flight; tails are written in segment order.

pub mod batch;
pub mod record;
pub mod replay;
mod tail_buf;
mod writer;

#[cfg(test)]
mod hostile_tests;

pub use writer::{Rotation, Wal};

use std::time::Duration;

/// Rising sequence number of one appended batch. LSNs continue across
/// reopens after the last replayed batch; when no live segment holds a batch
/// they start again at 1 (then no durable record carries an LSN).
pub type Lsn = u64;
/// Identifier of a WAL segment; segment files are `<id:020>.log`.
pub type SegmentId = u64;
/// The entries of one replayed batch, in the order they were appended.
pub type BatchEntries = Vec<(Vec<u8>, crate::types::Record)>;

/// Frame kind of a batch record.
pub const KIND_BATCH: u8 = 1;
/// Frame kind of a segment-end record.
pub const KIND_SEGMENT_END: u8 = 2;

// The WAL limits live in `crate::limits`; re-exported at their old paths.
/// Flush period in [`Durability::None`] mode (see
/// [`crate::limits::WAL_BACKGROUND_FLUSH_INTERVAL`]).
pub use crate::limits::WAL_BACKGROUND_FLUSH_INTERVAL as BACKGROUND_FLUSH_INTERVAL;
/// Pause between zero writes (see [`crate::limits::WAL_PREPARE_CHUNK_PAUSE`]).
pub use crate::limits::WAL_PREPARE_CHUNK_PAUSE as PREPARE_CHUNK_PAUSE;
/// Zero-write size of segment preparation (see
/// [`crate::limits::WAL_PREPARE_CHUNK_SIZE`]).
pub use crate::limits::WAL_PREPARE_CHUNK_SIZE as PREPARE_CHUNK_SIZE;
/// Smallest segment size accepted (see [`crate::limits::WAL_SEGMENT_SIZE_MIN`]).
pub use crate::limits::WAL_SEGMENT_SIZE_MIN as SEGMENT_SIZE_MIN;
/// Spare segments kept by default (see [`crate::limits::WAL_SPARE_SEGMENTS_MAX`]).
pub use crate::limits::WAL_SPARE_SEGMENTS_MAX as SPARE_SEGMENTS_MAX;

/// When a commit is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// After the batch is written and fdatasync'd (group commit).
    Sync,
    /// After a sync that happens at most once per `window`.
    Batch {
        /// Shortest time between two syncs.
        window: Duration,
    },
    /// At once; the bytes are written within [`BACKGROUND_FLUSH_INTERVAL`] and
    /// on close (rely on replication).
    None,
}

/// How the WAL is run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Size of every segment file, a multiple of 4 KiB and at least
    /// [`SEGMENT_SIZE_MIN`]. A batch must fit in one segment.
    pub segment_size: u64,
    /// When commits are acknowledged.
    pub durability: Durability,
    /// Most retired segments kept as spares (at least 1). A spare becomes a
    /// later segment by a rename: no zero fill for the new segment, no
    /// delete for the old one. Kept as many as one memtable's WAL span
    /// holds, the WAL reuses its files and neither writes zeros nor deletes
    /// in a steady stream of writes: with too few, every flush deleted the
    /// rest (on a filesystem mounted with `discard`, 2 GB of deletes held
    /// the device, and the WAL's writes, for 250 ms) and every new segment
    /// was written full of zeros first (doubling the WAL's disk writes).
    pub spare_segments_max: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: crate::limits::WAL_SEGMENT_SIZE_DEFAULT,
            durability: Durability::Sync,
            spare_segments_max: SPARE_SEGMENTS_MAX,
        }
    }
}

/// Counters of one WAL since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// fdatasync calls on segment files.
    pub syncs: u64,
    /// Bytes written to segment files (whole pages, rewrites included).
    pub bytes_written: u64,
    /// Batches appended.
    pub batches: u64,
    /// Segment files not yet retired (the one being written included).
    pub live_segments: u64,
    /// In-memory tail buffers allocated for new segments. A segment's tail
    /// reuses the buffer of the last segment written out when that one is
    /// large enough, so this stays small in a steady stream of appends.
    pub tail_buffers_allocated: u64,
}

/// File name of segment `id` inside `<dir>/wal/`.
pub fn segment_file_name(id: SegmentId) -> String {
    format!("{id:020}.log")
}
