//! The echo baseline: the fastest a server on this machine can possibly answer, because it does
//! nothing but read requests, find where each ends, and write a canned reply of the real size.
//! Any server's throughput over the echo's is the share of the machine's loopback and syscall
//! limit that it reaches.
//!
//! - [`framing`]: where requests end and what to answer (pure, tested).
//! - [`server`]: one pinned thread, one io_uring: multishot accept, multishot recv into a
//!   provided buffer ring, one send per connection per loop turn.

pub mod framing;
pub mod server;
