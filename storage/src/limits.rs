//! Every limit of the storage engine, named, with the relations between them
//! checked at compile time. Qualifier last: `KEY_SIZE_MAX`, not `MAX_KEY_SIZE`.
//!
//! The modules that use a limit re-export it under its old path
//! (`sstable::DATA_BLOCK_SIZE_MAX`, `wal::SEGMENT_SIZE_MIN`, ...).

use std::time::Duration;

/// Largest key the engine accepts, in bytes. Larger keys are refused with
/// [`crate::Error::KeyTooLarge`] before anything is written.
pub const KEY_SIZE_MAX: usize = 1024;

/// Largest value the engine accepts, in bytes. Larger values are refused with
/// [`crate::Error::ValueTooLarge`] before anything is written.
pub const VALUE_SIZE_MAX: usize = 1024 * 1024;

/// Unit of every direct-I/O transfer and alignment: offsets and lengths of all
/// reads and writes are multiples of this.
pub const BLOCK_SIZE: usize = 4096;

/// Largest number of entries in one write batch.
pub const BATCH_ENTRIES_MAX: usize = 4096;

/// Largest encoded write batch (one WAL record), in bytes.
pub const BATCH_SIZE_MAX: usize = 16 * 1024 * 1024;

/// Largest single direct read issued, in bytes. Reads above this are split:
/// very large O_DIRECT reads through glommio have been reported to hang.
pub const DIRECT_READ_SIZE_MAX: usize = 128 * 1024;

// ---------------------------------------------------------------------------
// SSTables (see `crate::sstable`).

/// Largest raw (uncompressed) data block a reader accepts, header included:
/// a block holds at most `TableOptions::block_size` bytes of entries or a
/// single larger entry. Bounds the allocation made from a length read off disk.
pub const DATA_BLOCK_SIZE_MAX: usize = 4 * 1024 * 1024;

/// Largest `TableOptions::block_size` accepted (asserted by the writer).
pub const TABLE_BLOCK_SIZE_MAX: usize = 1024 * 1024;

/// Size of the table writer's staging buffer: finished blocks are written to
/// disk in pieces of this size, so a table is written with few large
/// sequential writes.
pub const TABLE_WRITE_SIZE: usize = 256 * 1024;

/// Bytes read at a time by a sequential table iterator that bypasses the cache.
pub const TABLE_READAHEAD_SIZE: usize = 128 * 1024;

/// Largest number of probes per key a bloom filter may declare.
pub const BLOOM_PROBES_MAX: u8 = 30;

// ---------------------------------------------------------------------------
// Write-ahead log (see `crate::wal`).

/// Smallest WAL segment size accepted (a few pages; real deployments use MiBs).
pub const WAL_SEGMENT_SIZE_MIN: u64 = 16 * 1024;

/// Default WAL segment size (`WalOptions::default`).
pub const WAL_SEGMENT_SIZE_DEFAULT: u64 = 64 * 1024 * 1024;

/// Spare (prepared or recycled) WAL segments kept by default; retired
/// segments beyond `WalOptions::spare_segments_max` are deleted. An engine
/// keeps more: as many as its WAL span holds.
pub const WAL_SPARE_SEGMENTS_MAX: usize = 2;

/// Most spare WAL segments an engine keeps, however many its WAL span
/// holds (so a tiny segment size cannot leave thousands of files): 64
/// segments of the default 64 MiB cover the span of a 1 GiB memtable.
pub const WAL_SPARE_SEGMENTS_KEPT_MAX: usize = 64;

/// Most bytes a WAL tail reserves up front (its segment's size, up to
/// this): the reservation is address space, touched only as used, but a
/// huge segment size should not become a huge reservation.
pub const WAL_TAIL_RESERVE_MAX: usize = 256 * 1024 * 1024;

/// How often unwritten WAL appends are flushed in `Durability::None` mode.
pub const WAL_BACKGROUND_FLUSH_INTERVAL: Duration = Duration::from_millis(10);

/// Most bytes of one WAL write: a leader writes a longer tail (one that
/// built up in `Durability::None` between background flushes, or during a
/// rotation) a chunk at a time, so no step holds the shard for the copy of
/// many megabytes; only the last chunk is synced.
pub const WAL_WRITE_CHUNK_SIZE: usize = 1024 * 1024;

/// Size of each zero write when preparing a WAL segment.
pub const WAL_PREPARE_CHUNK_SIZE: usize = 1024 * 1024;

/// Pause between two zero writes of a background segment preparation, so it
/// never takes the disk from commits for long (64 MiB take at least 64 pauses).
pub const WAL_PREPARE_CHUNK_PAUSE: Duration = Duration::from_millis(1);

/// Bytes read from a WAL segment (or manifest log) per read during replay.
pub const WAL_READ_CHUNK_SIZE: usize = 1024 * 1024;

/// Most bytes checksummed while scanning a WAL segment or manifest log past
/// a bad record for a later valid one, as a multiple of the file size:
/// crafted candidate frames cannot make opening a log quadratic.
pub const WAL_SCAN_CHECKSUM_RATIO_MAX: u64 = 4;

/// Largest LSN a WAL frame may carry. A larger one in a checksummed frame is
/// corruption (at a billion batches a second this is reached in 146 years);
/// the bound keeps `lsn + 1` from overflowing anywhere.
pub const LSN_MAX: u64 = 1 << 62;

/// Largest WAL segment id, by the same reasoning as [`LSN_MAX`]: a segment
/// named with a larger id is refused on open, so `id + 1` never overflows.
pub const WAL_SEGMENT_ID_MAX: u64 = 1 << 62;

// ---------------------------------------------------------------------------
// Manifest (see `crate::manifest`).

/// Largest manifest record payload accepted, in bytes.
pub const MANIFEST_RECORD_SIZE_MAX: usize = 64 * 1024 * 1024;

/// Default size of a manifest log after which it is replaced by a snapshot.
pub const MANIFEST_SNAPSHOT_SIZE_DEFAULT: u64 = 4 * 1024 * 1024;

/// Levels a table may be at: `0..LEVEL_COUNT_MAX`.
pub const LEVEL_COUNT_MAX: u32 = 64;

/// Largest table file id (and `next_file_id`) a manifest may record: larger
/// ones are corruption, so `id + 1` never overflows.
pub const FILE_ID_MAX: u64 = 1 << 62;

/// Largest manifest number `CURRENT` may name, so the next log's number
/// never overflows.
pub const MANIFEST_NUMBER_MAX: u64 = 1 << 62;

// ---------------------------------------------------------------------------
// How the limits relate, checked at compile time.

/// Fixed bytes of a one-entry WAL batch around its key and value: entry count
/// u32, and the entry header (key_len u32, flags u8, hlc u64, node u32,
/// expires u64, value_len u32). Checked against `wal::batch` there.
pub const WAL_BATCH_ENTRY_OVERHEAD: usize = 4 + (4 + 1 + 8 + 4 + 8 + 4);

/// Fixed bytes of one sstable entry around its key and value: key_len u16,
/// kind u8, hlc u64, node u32, expires u64, value_len u32, offset slot u32.
pub const TABLE_ENTRY_OVERHEAD: usize = 2 + 1 + 8 + 4 + 8 + 4 + 4;

/// Bytes of a data block around its entries: 16-byte header and entry count.
pub const TABLE_BLOCK_OVERHEAD: usize = 16 + 4;

const _: () = assert!(BLOCK_SIZE.is_power_of_two());
// Keys are stored with u16 lengths in tables; values and batches with u32.
const _: () = assert!(KEY_SIZE_MAX <= u16::MAX as usize);
const _: () = assert!(VALUE_SIZE_MAX <= u32::MAX as usize);
const _: () = assert!(BATCH_SIZE_MAX <= u32::MAX as usize);
const _: () = assert!(MANIFEST_RECORD_SIZE_MAX <= u32::MAX as usize);
// A maximal entry fits in a WAL batch, and a maximal batch (plus its frame
// header and the segment-end frame, each at most 32 + 7 bytes of header and
// padding) fits in a default segment.
const _: () = assert!(WAL_BATCH_ENTRY_OVERHEAD + KEY_SIZE_MAX + VALUE_SIZE_MAX <= BATCH_SIZE_MAX);
const _: () = assert!(BATCH_SIZE_MAX as u64 + 2 * 40 <= WAL_SEGMENT_SIZE_DEFAULT);
// A full block plus one maximal entry fits in the block limit readers accept.
const _: () = assert!(
    TABLE_BLOCK_SIZE_MAX
        + TABLE_BLOCK_OVERHEAD
        + TABLE_ENTRY_OVERHEAD
        + KEY_SIZE_MAX
        + VALUE_SIZE_MAX
        <= DATA_BLOCK_SIZE_MAX
);
// Block and I/O sizes are whole pages; reads issued as one stay within the
// direct-read limit.
const _: () = assert!(DIRECT_READ_SIZE_MAX % BLOCK_SIZE == 0);
const _: () = assert!(DATA_BLOCK_SIZE_MAX % BLOCK_SIZE == 0);
const _: () = assert!(TABLE_BLOCK_SIZE_MAX % BLOCK_SIZE == 0);
const _: () = assert!(TABLE_WRITE_SIZE % BLOCK_SIZE == 0);
const _: () = assert!(TABLE_WRITE_SIZE >= BLOCK_SIZE);
const _: () = assert!(TABLE_READAHEAD_SIZE % BLOCK_SIZE == 0);
const _: () = assert!(TABLE_READAHEAD_SIZE <= DIRECT_READ_SIZE_MAX);
const _: () = assert!(WAL_PREPARE_CHUNK_SIZE % BLOCK_SIZE == 0);
const _: () = assert!(WAL_WRITE_CHUNK_SIZE % BLOCK_SIZE == 0 && WAL_WRITE_CHUNK_SIZE > 0);
const _: () = assert!(WAL_READ_CHUNK_SIZE % BLOCK_SIZE == 0);
const _: () = assert!(WAL_SEGMENT_SIZE_MIN % BLOCK_SIZE as u64 == 0);
const _: () = assert!(WAL_SEGMENT_SIZE_DEFAULT % BLOCK_SIZE as u64 == 0);
const _: () = assert!(WAL_SEGMENT_SIZE_MIN <= WAL_SEGMENT_SIZE_DEFAULT);
const _: () = assert!(WAL_SPARE_SEGMENTS_MAX >= 1);
// The bloom probe bound fits its u8 field; id bounds leave room for `+ 1`.
const _: () = assert!(BLOOM_PROBES_MAX >= 1);
const _: () = assert!(LSN_MAX < u64::MAX && WAL_SEGMENT_ID_MAX < u64::MAX);
const _: () = assert!(FILE_ID_MAX < u64::MAX && MANIFEST_NUMBER_MAX < u64::MAX);
