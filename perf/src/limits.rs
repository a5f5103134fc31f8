//! Every limit of the load generator and the echo baseline, in one place.
//!
//! Qualifier last (`PIPELINE_DEPTH_MAX`). These bound memory and refuse nonsense on the command
//! line; the RESP limits bound what a hostile or broken server can make the client buffer.

/// Most executor threads `loadgen --threads` accepts.
pub const THREADS_MAX: usize = 256;
/// Most connections one loadgen thread opens (ringkv: per shard, so the socket count is this times shards).
pub const CONNECTIONS_PER_THREAD_MAX: usize = 10_000;
/// Deepest pipeline (requests in flight on one connection).
pub const PIPELINE_DEPTH_MAX: usize = 4_096;
/// Largest value loadgen writes; equals the ringkv value limit (1 MiB).
pub const VALUE_SIZE_MAX: usize = 1 << 20;
/// Largest key loadgen builds (its keys are `key:` + 12 digits, far below ringkv's 1 KiB).
pub const KEY_SIZE_MAX: usize = 64;
/// Largest keyspace; key indexes are printed with [`KEY_DIGITS`] digits.
pub const KEYSPACE_MAX: u64 = 1_000_000_000_000;
/// Digits of the key index in every key (`key:000000000042`).
pub const KEY_DIGITS: usize = 12;
/// Longest scan YCSB E asks for (YCSB's default `maxscanlength`).
pub const SCAN_LENGTH_MAX: u32 = 100;

/// Largest RESP reply the client buffers before calling the server broken.
pub const RESP_REPLY_SIZE_MAX: usize = 8 << 20;
/// Longest simple string, error or number line in a RESP reply.
pub const RESP_LINE_SIZE_MAX: usize = 64 << 10;
/// Deepest nesting of RESP arrays the client follows (recursion bound).
pub const RESP_DEPTH_MAX: usize = 8;
/// Most elements of one RESP array.
pub const RESP_ARRAY_LEN_MAX: i64 = 1 << 20;

/// Highest latency the histograms hold exactly; slower requests are recorded at this value.
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;
/// Significant digits of the whole-run histograms (0.1 % resolution).
pub const HISTOGRAM_DIGITS: u8 = 3;
/// Significant digits of the per-second histograms (1 % resolution, 30 KiB each).
pub const INTERVAL_HISTOGRAM_DIGITS: u8 = 2;

/// Most simultaneous connections of the echo server (its completion tags hold a 24-bit slot).
pub const ECHO_CONNECTIONS_MAX: usize = 65_536;
/// Largest partial request an echo connection may leave buffered before it is closed.
pub const ECHO_PENDING_SIZE_MAX: usize = 16 << 20;

/// Size of the shared random buffer values are sliced from.
pub const VALUE_POOL_SIZE: usize = 2 * VALUE_SIZE_MAX;

const _: () = assert!(KEY_DIGITS + 4 <= KEY_SIZE_MAX);
const _: () = assert!(VALUE_POOL_SIZE >= 2 * VALUE_SIZE_MAX);
const _: () = assert!(KEYSPACE_MAX <= 10u64.pow(KEY_DIGITS as u32));
