//! Every limit of the node runtime, named, qualifier last, with the relations
//! between them checked at compile time.

use std::time::Duration;

/// Default largest number of client connections open at once on one node
/// (all shards together). A connection over the limit is answered with an
/// `Overloaded` error frame and closed.
pub const CONNECTIONS_MAX_DEFAULT: usize = 10_000;

/// Capacity of each shard-to-shard channel of the mesh (messages). A sender
/// whose channel is full waits; the receiver side never blocks on work.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

/// Initial size of a connection's receive buffer; it grows up to the frame
/// size limit when a large frame arrives and shrinks back after it.
pub const RECEIVE_BUFFER_SIZE_INITIAL: usize = 64 * 1024;

/// Largest number of frames decoded from one connection and executed
/// concurrently as one batch; the rest wait for the next batch. Bounds the
/// memory and the tasks one connection can hold.
pub const BATCH_FRAMES_MAX: usize = 256;

/// Shares of the foreground (request) task queue of every shard.
pub const FOREGROUND_SHARES: usize = 1000;

/// Default shares of the storage background queue (flush, compaction): a
/// tenth of the foreground, so background work never takes its latency budget.
pub const BACKGROUND_SHARES_DEFAULT: usize = 100;

/// How often a shard looks at the node-wide stop flag (set by a signal).
pub const STOP_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long a stopping shard waits for its in-flight connections to finish
/// their current batch before it closes them anyway.
pub const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// glommio refuses to start a reactor below this RLIMIT_MEMLOCK (bytes).
pub const MEMLOCK_BYTES_MIN: u64 = 512 * 1024;

/// io_uring buffer memory each shard registers with the kernel (bytes).
pub const IO_MEMORY_DEFAULT: usize = 10 << 20;

/// A session version whose clock is further ahead of ours than this is
/// refused: a client must not be able to push the clock into the far future.
pub const SESSION_AHEAD_MAX: Duration = Duration::from_secs(60);

/// How far ahead of the last stamp a shard's persisted clock lease is
/// moved (see `clock.rs`): the lease is rewritten about once per period.
pub const CLOCK_LEASE_AHEAD: Duration = Duration::from_secs(10);

/// Default port of the Redis protocol listener (6380, so a local Redis on
/// 6379 keeps its port).
pub const RESP_PORT_DEFAULT: u16 = 6380;

/// Largest number of SCAN cursors a RESP connection remembers (the oldest is
/// forgotten first; SCAN with a forgotten cursor answers `ERR invalid cursor`).
pub const RESP_SCAN_CURSORS_MAX: usize = 64;

/// Default COUNT of a RESP SCAN, and the page size of KEYS, DBSIZE and
/// FLUSHDB when they walk a shard.
pub const RESP_SCAN_COUNT_DEFAULT: usize = 10;

/// Page size of KEYS, DBSIZE and FLUSHDB walking a shard's keys.
pub const RESP_WALK_PAGE: usize = 4096;

/// Largest SCAN COUNT honoured (a larger one is clamped).
pub const RESP_SCAN_COUNT_MAX: usize = 100_000;

/// Largest shard count a node accepts.
pub const SHARDS_MAX: u32 = 1024;

const _: () = assert!(MEMLOCK_BYTES_MIN as usize <= IO_MEMORY_DEFAULT);
const _: () = assert!(BACKGROUND_SHARES_DEFAULT < FOREGROUND_SHARES);
const _: () = assert!(BATCH_FRAMES_MAX <= MESH_CHANNEL_CAPACITY);
// A restarted clock may run ahead of the wall by up to the lease; sessions
// carrying such versions must still be accepted.
const _: () = assert!(CLOCK_LEASE_AHEAD.as_secs() * 2 <= SESSION_AHEAD_MAX.as_secs());
