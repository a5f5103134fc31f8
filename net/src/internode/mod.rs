//! Internode frames: the messages between shards of different nodes, over
//! persistent TCP connections. The dialer (a coordinator shard) sends
//! [`PREFACE`] once right after connecting, then request batches; the acceptor
//! (the peer node's owning shard) answers on the same connection. The first
//! message each way is a [`Message::Hello`].
//!
//! A frame carries one [`Batch`]: every message queued for that peer shard in
//! one reactor turn, with the sender's hybrid logical clock. Its body is an
//! rkyv 0.8 archive, validated (CRC32C, then bytecheck) and then read in place
//! from the receive buffer (zero-copy, see [`decode_frame`]).
//!
//! Frame on the wire (integers little-endian):
//!
//! ```text
//!  0             4             8             12            16
//!  +-------------+-------------+-------------+-------------+----------------------+-----------+
//!  | archive_len | crc32c      | reserved=0  | reserved=0  | rkyv archive of      | zero pad  |
//!  | u32         | u32 of the  | u32         | u32         | Batch (archive_len   | to a      |
//!  |             | archive     |             |             | bytes, root at end)  | multiple  |
//!  +-------------+-------------+-------------+-------------+----------------------+ of 16     |
//!                                                                                 +-----------+
//!  frame size = 16 + archive_len + pad, a multiple of 16; archive_len <= INTERNODE_FRAME_SIZE_MAX
//! ```
//!
//! Why the padding: rkyv reads in place only from aligned bytes. Frames are
//! multiples of 16, so consecutive frames in a 16-aligned receive buffer
//! ([`FrameBuffer`]) keep every archive 16-aligned; the archive's root sits at
//! its end, so the padding stays outside the slice handed to rkyv.
//!
//! Invariants: the archive length is checked against the limit from the first
//! four bytes, before the body is buffered; the CRC is checked before rkyv sees
//! a byte; reserved fields and padding must be zero; no input panics the
//! decoder. This module knows nothing of sockets or executors.
//!
//! Versioning: the preface's last byte is the internode protocol version (1).
//! A schema change bumps it; the reserved header words are for flags.

mod buffer;
mod error;
mod frame;
mod message;

pub use buffer::FrameBuffer;
pub use error::InternodeError;
pub use frame::{decode_frame, encode_frame};
pub use message::{
    ArchivedBatch, ArchivedHello, ArchivedMessage, ArchivedWireRecord, Batch, Hello, Message,
    WireRecord,
};

/// Sent once by the dialer right after connect, before any frame. No valid
/// client-protocol frame starts with it (byte 4 of a client frame is the
/// protocol version 1, here it is `'O'`), so a shard port can serve both.
pub const PREFACE: [u8; 8] = *b"RKVNODE\x01";

/// What the first bytes of a connection on a shard port announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// Too few bytes to tell yet: read more.
    Incomplete,
    /// The internode [`PREFACE`]: consume its 8 bytes, then read internode frames.
    Internode,
    /// Anything else: a client-protocol connection (its frames decide whether
    /// they are valid).
    Client,
}

/// Tells an internode connection from a client one by its first bytes (see
/// [`PREFACE`]): decided as soon as a byte differs from the preface, at the
/// latest after 8 bytes.
#[must_use]
pub fn sniff(first: &[u8]) -> Sniffed {
    let n = first.len().min(PREFACE.len());
    if first[..n] != PREFACE[..n] {
        Sniffed::Client
    } else if n < PREFACE.len() {
        Sniffed::Incomplete
    } else {
        Sniffed::Internode
    }
}

/// Bytes of a frame header: archive length, CRC32C, two reserved words.
pub const FRAME_HEADER_SIZE: usize = 16;

/// Every frame, and so every archive in a receive buffer, starts on a multiple
/// of this many bytes.
pub const FRAME_ALIGNMENT: usize = 16;

const _: () = assert!(FRAME_HEADER_SIZE % FRAME_ALIGNMENT == 0);
const _: () = assert!(PREFACE[4] != crate::client_frame::PROTOCOL_VERSION);
