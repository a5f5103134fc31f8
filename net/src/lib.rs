//! ringkv-net: everything on the wire between clients and ringkv nodes.
//!
//! - [`client_frame`]: the binary client protocol (request/response frames,
//!   zero-copy decoding, status codes). Specified in `docs/protocol.md`.
//! - [`internode`]: frames between shards of different nodes (rkyv
//!   archives, checksummed, read in place), and their receive buffer.
//! - [`routing`]: key -> token -> shard -> port, shared by servers and clients.
//! - [`limits`]: every protocol limit, with compile-time relations.
//! - [`client`]: the blocking token- and shard-aware [`client::Client`] and the
//!   pipelined [`client::AsyncConnection`].
//! - [`error`]: [`FrameError`] and [`ClientError`].
//! - [`resp`]: the Redis protocol (RESP2/RESP3): request parser, typed
//!   commands, command table and reply encoder.
//!
//! This crate knows nothing of storage or executors; the async client is
//! generic over `futures-lite` I/O traits.

#![warn(missing_docs)]

pub mod client;
pub mod client_frame;
pub mod error;
pub mod internode;
pub mod limits;
pub mod resp;
pub mod routing;

pub use error::{ClientError, FrameError};
