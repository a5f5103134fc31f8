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

/// Shares of the foreground (request) task queue of every shard (the figure
/// the storage background queue's controller scales against).
pub const FOREGROUND_SHARES: usize = ringkv_storage::io::FOREGROUND_SHARES;

/// Latency goal of the request queue: the executor switches task queues (and
/// reaps the background work's I/O) at least this often while requests run.
pub const FOREGROUND_LATENCY: Duration = Duration::from_millis(1);

/// Default base shares of the storage background queue (flush, compaction):
/// a tenth of the foreground while they keep up, rising to the foreground's
/// as their backlog nears a write stall (`ringkv_storage::io`).
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

/// Default replication factor of a clustered node (N).
pub const REPLICATION_FACTOR_DEFAULT: u32 = 3;

/// Default number of virtual-node tokens per node.
pub const VNODES_DEFAULT: u32 = 256;

/// Largest number of virtual-node tokens per node.
pub const VNODES_MAX: u32 = 4096;

/// Default time a coordinator waits for replicas.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(2);

/// Default age after which an undelivered hint is dropped (as Cassandra's
/// `max_hint_window`, 3 hours).
pub const HINT_WINDOW_DEFAULT: Duration = Duration::from_secs(3 * 3600);

/// Default largest size of one shard's hints, bytes.
pub const HINTS_BYTES_MAX_DEFAULT: u64 = 256 << 20;

/// Largest test clock offset accepted (`--clock-offset-ms`).
pub const CLOCK_OFFSET_MAX_MS: u64 = 3_600_000;

/// Bytes an internode connection asks of its socket per read (the frame
/// buffer grows past it for larger frames).
pub const INTERNODE_READ_CHUNK: usize = 64 * 1024;

/// How long a shard waits before dialing a peer again after a failure.
pub const PEER_RECONNECT_INTERVAL: Duration = Duration::from_millis(200);

/// Deadline of connecting to a peer and exchanging HELLO.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a shard retries the seeds it has not reached yet.
pub const SEED_RETRY_INTERVAL: Duration = Duration::from_millis(250);

/// How often a shard looks for hints to replay to live peers.
pub const HINT_REPLAY_INTERVAL: Duration = Duration::from_secs(5);

/// Hints replayed per page (one scan of the hint store).
pub const HINT_REPLAY_PAGE: usize = 256;

/// Memtable size of a shard's hint store.
pub const HINT_MEMTABLE_SIZE: usize = 4 << 20;

/// How long a stopping shard waits for its running cluster effects (local
/// writes, hint stores) before closing its stores anyway.
pub const EFFECTS_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the coordinator's deadlines are checked at the latest.
pub const COORDINATOR_TICK_INTERVAL: Duration = Duration::from_millis(20);

const _: () = assert!(MEMLOCK_BYTES_MIN as usize <= IO_MEMORY_DEFAULT);
const _: () = assert!(BACKGROUND_SHARES_DEFAULT < FOREGROUND_SHARES);
const _: () = assert!(BATCH_FRAMES_MAX <= MESH_CHANNEL_CAPACITY);
// A restarted clock may run ahead of the wall by up to the lease; sessions
// carrying such versions must still be accepted.
const _: () = assert!(CLOCK_LEASE_AHEAD.as_secs() * 2 <= SESSION_AHEAD_MAX.as_secs());
