//! RESP, the Redis protocol: everything between bytes and typed commands and
//! between replies and bytes, as pure functions over byte slices (no
//! sockets, no executor). The server's RESP listener wires these together.
//!
//! - [`parse`]: [`parse_command`], the incremental zero-copy request parser
//!   (arrays of bulk strings and [`inline`] commands), checked against
//!   [`RespLimits`] before anything is buffered.
//! - [`command`]: [`Command`], typed commands with Redis's argument rules and
//!   error strings, and the unknown-command formatter.
//! - [`table`]: the static command table behind COMMAND, COMMAND COUNT,
//!   COMMAND INFO and COMMAND DOCS.
//! - [`reply`]: [`Reply`], the RESP2/RESP3 reply encoder.
//! - [`replies`]: canned error lines for execution-time conditions, and the
//!   HELLO reply.
//! - [`info`]: INFO's section selection and text format.
//! - [`error`]: [`RespError`], protocol errors with Redis's exact messages.
//!
//! Wire formats are drawn in [`parse`], [`inline`] and [`reply`]; user-facing
//! semantics (and where they differ from Redis) in `docs/resp.md`.
//!
//! A connection's loop: `parse_command` until `Incomplete`; for each
//! non-empty [`Args`], [`Command::parse`] then execute, or answer the
//! [`CommandError`]; on a [`RespError`], send its `redis_message` and close.

pub mod args;
pub mod command;
pub mod error;
pub mod info;
pub mod inline;
pub mod num;
pub mod parse;
pub mod replies;
pub mod reply;
pub mod request;
pub mod table;

pub use args::{ArgSlice, Args};
pub use command::{Command, CommandError};
pub use error::RespError;
pub use parse::{parse_command, RespLimits};
pub use reply::{Reply, RespVersion};
pub use request::encode_command;

pub use crate::client_frame::Decoded;
