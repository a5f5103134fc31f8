//! ringkv-perf: the load generator (`loadgen`), the echo baseline (`echo-server`) and the pieces
//! they share. Nothing here is on ringkv's request path; it measures it.
//!
//! - [`workload`]: operation mixes (YCSB A–F), key distributions, values.
//! - [`resp`]: a small pipelined RESP client codec (encode commands, decode replies).
//! - [`stats`]: HdrHistogram recording per operation, per-second intervals, summaries.
//! - [`schedule`]: open-loop send times (coordinated-omission corrected latency).

pub mod echo;
pub mod limits;
pub mod plot;
pub mod report;
pub mod resp;
pub mod runner;
pub mod schedule;
pub mod stats;
pub mod target;
pub mod workload;
