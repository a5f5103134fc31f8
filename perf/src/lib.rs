//! ringkv-perf: the load generator (`loadgen`), the echo baseline (`echo-server`) and the pieces
//! they share. Nothing here is on ringkv's request path; it measures it.
//!
//! - [`workload`]: operation mixes (YCSB A–F), key distributions, values.
//! - [`resp`]: a small pipelined RESP client codec (encode commands, decode replies).
//! - [`target`]: RESP and shard-aware ringkv connections behind one queue/flush/recv interface.
//! - [`schedule`]: open-loop send times (coordinated-omission corrected latency).
//! - [`stats`]: HdrHistogram recording per operation, per-second intervals, summaries.
//! - [`runner`]: one phase of a run: pinned glommio executors, connection loops, progress.
//! - [`uring_stream`]: connections on a per-thread io_uring with `COOP_TASKRUN` (`--transport
//!   uring`), so that a loopback server pays no IPI to interrupt the client.
//! - [`report`] and [`plot`]: JSON, HdrHistogram logs, PNG charts.
//! - [`echo`]: the canned-reply io_uring server, the machine's loopback and syscall limit.
//! - [`stalls`]: the machine's own CPU stalls and the latency floor they set (`stall-probe`).
//! - [`memprobe`]: what a random memory access costs here (`memory-probe`).
//! - [`pin`]: pinning a thread to a CPU, refusing one it may not run on.
//! - `bin/storage-bench.rs` (another owner): the storage engine against RocksDB.

pub mod echo;
pub mod limits;
pub mod memprobe;
pub mod pin;
pub mod plot;
pub mod report;
pub mod resp;
pub mod runner;
pub mod schedule;
pub mod stalls;
pub mod stats;
pub mod target;
pub mod uring_stream;
pub mod workload;
