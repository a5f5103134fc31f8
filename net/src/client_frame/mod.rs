//! The client protocol: request and response frames between clients and a
//! node's shards. Encoding appends to a `Vec<u8>`; decoding borrows keys,
//! values and lists from the receive buffer (zero-copy) and never panics on
//! hostile bytes. The full specification is `docs/protocol.md`.
//!
//! Request frame (all integers little-endian):
//!
//! ```text
//!  0       4       5        6                14            15      16                 24           28
//!  +-------+-------+--------+-----------------+-------------+-------+------------------+------------+------
//!  | len   | ver=1 | opcode | id              | consistency | flags | session.hlc      | sess.node  | body
//!  | u32   | u8    | u8     | u64             | u8          | u8=0  | u64              | u32        | ...
//!  +-------+-------+--------+-----------------+-------------+-------+------------------+------------+------
//!  len = number of bytes after the len field (24 + body)
//! ```
//!
//! Response frame:
//!
//! ```text
//!  0       4       5        6                14
//!  +-------+-------+--------+-----------------+------
//!  | len   | ver=1 | kind   | id (of request) | body
//!  | u32   | u8    | u8     | u64             | ...
//!  +-------+-------+--------+-----------------+------
//!  len = 10 + body
//! ```
//!
//! Body fields: `key` = `u16 len | bytes` (len <= KEY_SIZE_MAX), `value` =
//! `u32 len | bytes` (len <= VALUE_SIZE_MAX), `version` = `u64 hlc | u32 node`,
//! lists = `u32 count | items` (see [`KeyList`] and its siblings).
//!
//! Invariants: a frame's size is checked against the maximum from its length
//! prefix alone, before the body is buffered; the protocol version is checked
//! from the fifth byte; inside a complete frame every length is checked against
//! its limit and the bytes left; a frame must be consumed exactly (no trailing
//! bytes).

mod list;
mod request;
mod response;
mod ring;
mod status;
mod wire;

pub use list::{
    EntryList, EntryListIter, KeyItem, KeyList, KeyListIter, PairItem, PairList, PairListIter,
    ValueItem, ValueList, ValueListIter,
};
pub use request::{decode_request, encode_request, RequestError, Resync};
pub use response::{decode_response, encode_response, encode_ring_response};
pub use ring::{RingNode, RingNodeIter, RingNodeList, TokenList};
pub use status::Status;

use crate::error::FrameError;
use crate::limits::FRAME_SIZE_MAX_LIMIT;

/// The protocol version this build speaks, carried in byte 4 of every frame.
/// A peer receiving another version answers `UnsupportedVersion` and closes.
pub const PROTOCOL_VERSION: u8 = 1;

/// Request opcodes (byte 5 of a request frame). Stable numbers.
pub mod opcode {
    /// PING: empty body; answered with PONG.
    pub const PING: u8 = 0x01;
    /// HELLO: empty body; answered with HELLO (node id, shard count, base port).
    pub const HELLO: u8 = 0x02;
    /// STATS: empty body; answered with STATS text.
    pub const STATS: u8 = 0x03;
    /// RING: empty body; answered with RING (the node's view of the ring).
    pub const RING: u8 = 0x04;
    /// GET: `key`.
    pub const GET: u8 = 0x10;
    /// EXISTS: `key`.
    pub const EXISTS: u8 = 0x11;
    /// TTL: `key`.
    pub const TTL: u8 = 0x12;
    /// DELETE: `key`.
    pub const DELETE: u8 = 0x13;
    /// PUT: `u64 ttl_ms | key | value`.
    pub const PUT: u8 = 0x14;
    /// MGET: `u32 count | count x key`.
    pub const MGET: u8 = 0x15;
    /// MPUT: `u64 ttl_ms | u32 count | count x (key | value)`.
    pub const MPUT: u8 = 0x16;
    /// SCAN: `u8 flags | u32 limit | key start | key end | key after`.
    pub const SCAN: u8 = 0x17;
    /// CAS: `u64 ttl_ms | key | u8 expect kind | expect | value`.
    pub const CAS: u8 = 0x18;
    /// INCR: `key | i64 delta`.
    pub const INCR: u8 = 0x19;
    /// DECR: `key | i64 delta` (decoded as INCR by `-delta`).
    pub const DECR: u8 = 0x1A;
}

/// Response kinds (byte 5 of a response frame). Stable numbers.
pub mod kind {
    /// PONG: empty body.
    pub const PONG: u8 = 0x01;
    /// HELLO: `u32 node_id | u32 shard_count | u16 base_port | u8 protocol_version`.
    pub const HELLO: u8 = 0x02;
    /// VALUE: `version | u64 expires_at_ms | value`.
    pub const VALUE: u8 = 0x03;
    /// NOT_FOUND: empty body.
    pub const NOT_FOUND: u8 = 0x04;
    /// WRITTEN: `version`.
    pub const WRITTEN: u8 = 0x05;
    /// VALUES: `u32 count | count x (u8 present [| version | value])`.
    pub const VALUES: u8 = 0x06;
    /// SCAN_PAGE: `u32 count | count x (key | version | value) | key next_after`.
    pub const SCAN_PAGE: u8 = 0x07;
    /// CAS_MISMATCH: `u8 present [| version | value]`.
    pub const CAS_MISMATCH: u8 = 0x08;
    /// INTEGER: `i64 value | version`.
    pub const INTEGER: u8 = 0x09;
    /// TTL: `u8 state (0 missing, 1 no expiry, 2 remaining) | u64 remaining_ms`.
    pub const TTL: u8 = 0x0A;
    /// BOOL: `u8 (0 or 1)`.
    pub const BOOL: u8 = 0x0B;
    /// STATS: `u32 len | text`.
    pub const STATS: u8 = 0x0C;
    /// RING: `u64 ring_version | u32 replication_factor | u32 node_count |
    /// node_count x (u32 id | u16 port | u32 shards | u16 host_len | host |
    /// u16 rack_len | rack | u32 token_count | token_count x u64 token)`.
    pub const RING: u8 = 0x0D;
    /// ERROR: `u16 status | u16 len | message`.
    pub const ERROR: u8 = 0xFF;
}

/// The consistency level a request asks for (byte 14 of a request). On a
/// single node every level is trivially met. Unknown numbers are refused with
/// `BadRequest`; new levels (LOCAL_QUORUM = 4) may be added without a version bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Consistency {
    /// The node's configured default (QUORUM unless configured otherwise).
    #[default]
    Default = 0,
    /// One replica answers.
    One = 1,
    /// A majority of replicas answer.
    Quorum = 2,
    /// Every replica answers.
    All = 3,
}

impl Consistency {
    /// The level for a wire number, or `None` if unknown.
    #[must_use]
    pub fn from_u8(v: u8) -> Option<Consistency> {
        match v {
            0 => Some(Consistency::Default),
            1 => Some(Consistency::One),
            2 => Some(Consistency::Quorum),
            3 => Some(Consistency::All),
            _ => None,
        }
    }
}

/// A write's version: a hybrid logical clock timestamp and the id of the node
/// that stamped it. Ordered by `hlc`, then `node`. 12 bytes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WireVersion {
    /// Hybrid logical clock timestamp.
    pub hlc: u64,
    /// Id of the node that stamped the version (breaks ties).
    pub node: u32,
}

impl WireVersion {
    /// "No version": what a client sends as its session before it has seen one.
    pub const ZERO: WireVersion = WireVersion { hlc: 0, node: 0 };
}

/// The fields every request carries besides its opcode and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestHeader {
    /// Chosen by the client; echoed in the response so pipelined answers can
    /// come back out of order. Id 0 is reserved for connection-level errors.
    pub id: u64,
    /// Requested consistency level.
    pub consistency: Consistency,
    /// Highest version the client has seen in replies ([`WireVersion::ZERO`] if
    /// none): writes are stamped above it (session guarantees).
    pub session: WireVersion,
}

/// What a CAS compares against before writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasExpect<'a> {
    /// The key must not exist. Wire: kind 0, nothing.
    Absent,
    /// The key's current version must be this one. Wire: kind 1, `version`.
    Version(WireVersion),
    /// The key's current value must be these bytes. Wire: kind 2, `value`.
    Value(&'a [u8]),
}

/// One SCAN result entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanEntry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// Its value.
    pub value: &'a [u8],
    /// The value's version.
    pub version: WireVersion,
}

/// A decoded (or to-be-encoded) request. Byte fields borrow the frame.
// Variant fields are described in each variant's doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Liveness check.
    Ping,
    /// Asks for node id, shard count and base port.
    Hello,
    /// Asks for the shard's statistics.
    Stats,
    /// Asks for the node's view of the ring (a standalone node answers a
    /// one-node ring).
    Ring,
    /// Reads a key.
    Get { key: &'a [u8] },
    /// Whether a key exists.
    Exists { key: &'a [u8] },
    /// A key's remaining time to live.
    Ttl { key: &'a [u8] },
    /// Deletes a key (writes a tombstone).
    Delete { key: &'a [u8] },
    /// Writes a key; `ttl_ms` 0 = no expiry.
    Put {
        key: &'a [u8],
        value: &'a [u8],
        ttl_ms: u64,
    },
    /// Reads many keys; answered in request order.
    MGet { keys: KeyList<'a> },
    /// Writes many keys with one TTL (0 = none).
    MPut { pairs: PairList<'a>, ttl_ms: u64 },
    /// Reads a key range or prefix, at most `limit` entries, resuming strictly
    /// after `after` (empty = from the start). `end` empty = unbounded; with
    /// `prefix`, `start` is the prefix and `end` is ignored.
    Scan {
        start: &'a [u8],
        end: &'a [u8],
        prefix: bool,
        limit: u32,
        after: &'a [u8],
    },
    /// Compare-and-swap: writes `value` if the key matches `expect`.
    Cas {
        key: &'a [u8],
        expect: CasExpect<'a>,
        value: &'a [u8],
        ttl_ms: u64,
    },
    /// Adds `delta` to an integer value stored as decimal text, as in Redis (absent = 0).
    /// DECR by n decodes as `Incr { delta: -n }`.
    Incr { key: &'a [u8], delta: i64 },
}

impl<'a> Request<'a> {
    /// The opcode this request is encoded with.
    #[must_use]
    pub fn opcode(&self) -> u8 {
        match self {
            Request::Ping => opcode::PING,
            Request::Hello => opcode::HELLO,
            Request::Stats => opcode::STATS,
            Request::Ring => opcode::RING,
            Request::Get { .. } => opcode::GET,
            Request::Exists { .. } => opcode::EXISTS,
            Request::Ttl { .. } => opcode::TTL,
            Request::Delete { .. } => opcode::DELETE,
            Request::Put { .. } => opcode::PUT,
            Request::MGet { .. } => opcode::MGET,
            Request::MPut { .. } => opcode::MPUT,
            Request::Scan { .. } => opcode::SCAN,
            Request::Cas { .. } => opcode::CAS,
            Request::Incr { .. } => opcode::INCR,
        }
    }

    /// The single key this request is about (for routing), if it has one.
    #[must_use]
    pub fn key(&self) -> Option<&'a [u8]> {
        match *self {
            Request::Get { key }
            | Request::Exists { key }
            | Request::Ttl { key }
            | Request::Delete { key }
            | Request::Put { key, .. }
            | Request::Cas { key, .. }
            | Request::Incr { key, .. } => Some(key),
            _ => None,
        }
    }

    /// Whether sending this request twice has the same effect as once (safe
    /// to retry after a lost connection): the reads and PING/HELLO/STATS.
    #[must_use]
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Request::Ping
                | Request::Hello
                | Request::Stats
                | Request::Ring
                | Request::Get { .. }
                | Request::Exists { .. }
                | Request::Ttl { .. }
                | Request::MGet { .. }
                | Request::Scan { .. }
        )
    }
}

/// A key's time-to-live state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlState {
    /// The key does not exist.
    Missing,
    /// The key exists and never expires.
    NoExpiry,
    /// The key expires in this many milliseconds.
    RemainingMs(u64),
}

/// A decoded (or to-be-encoded) response. Byte fields borrow the frame.
// Variant fields are described in each variant's doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response<'a> {
    /// Answer to PING.
    Pong,
    /// Answer to HELLO. `shard_count` is in `1..=SHARD_COUNT_MAX`; shard `i`
    /// listens on `base_port + 1 + i`.
    Hello {
        node_id: u32,
        shard_count: u32,
        base_port: u16,
        protocol_version: u8,
    },
    /// A value found by GET. `expires_at_ms` 0 = no expiry (Unix ms otherwise).
    Value {
        value: &'a [u8],
        version: WireVersion,
        expires_at_ms: u64,
    },
    /// The key does not exist (GET).
    NotFound,
    /// A write succeeded with this version (PUT, DELETE, MPUT, CAS).
    Written { version: WireVersion },
    /// MGET answers, one per key in request order.
    Values { items: ValueList<'a> },
    /// One SCAN page, in key order; `next_after` empty = the scan is done,
    /// otherwise send it as `after` to continue.
    ScanPage {
        entries: EntryList<'a>,
        next_after: &'a [u8],
    },
    /// A CAS found another state: the current value and version, or `None`
    /// if the key is absent.
    CasMismatch {
        current: Option<(&'a [u8], WireVersion)>,
    },
    /// INCR/DECR result and the write's version.
    Integer { value: i64, version: WireVersion },
    /// TTL answer.
    Ttl { state: TtlState },
    /// EXISTS answer.
    Bool(bool),
    /// STATS text: `key value\n` lines.
    Stats { text: &'a [u8] },
    /// Answer to RING: the ring's version (a fingerprint of its membership),
    /// the configured replication factor and the nodes.
    Ring {
        version: u64,
        replication_factor: u32,
        nodes: RingNodeList<'a>,
    },
    /// The request failed; `message` is human-readable (at most
    /// `ERROR_MESSAGE_SIZE_MAX` bytes).
    Error { status: Status, message: &'a [u8] },
}

/// Result of decoding from a buffer that may hold a partial frame.
// Variant fields are described in each variant's doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<T> {
    /// A complete frame, `len` bytes long from the start of the buffer
    /// (consume them, then decode again for the next frame).
    Frame { frame: T, len: usize },
    /// The buffer holds only part of a frame: read at least `needed` more bytes
    /// (a lower bound) and decode again. Nothing was consumed.
    Incomplete { needed: usize },
}

/// Where a complete frame ends, or how many more bytes are needed.
enum Extent {
    Complete { total: usize },
    Incomplete { needed: usize },
}

/// Finds a frame's extent from its header alone: the declared size is checked
/// against `frame_size_max` and the version byte against
/// [`PROTOCOL_VERSION`] before the body is buffered.
fn frame_extent(
    buf: &[u8],
    frame_size_max: usize,
    header_size: usize,
) -> Result<Extent, FrameError> {
    if buf.len() < 4 {
        return Ok(Extent::Incomplete {
            needed: header_size - buf.len(),
        });
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let total = len + 4;
    let size_max = frame_size_max.min(FRAME_SIZE_MAX_LIMIT);
    if total > size_max {
        return Err(FrameError::TooLarge {
            size: total,
            size_max,
        });
    }
    if buf.len() >= 5 && buf[4] != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion {
            version: buf[4],
            supported: PROTOCOL_VERSION,
        });
    }
    if total < header_size {
        return Err(FrameError::Malformed {
            id: None,
            status: Status::BadRequest,
            reason: format!(
                "frame length {len} is shorter than the {} byte header",
                header_size - 4
            ),
        });
    }
    if buf.len() < total {
        return Ok(Extent::Incomplete {
            needed: total - buf.len(),
        });
    }
    Ok(Extent::Complete { total })
}

fn frame_id(frame: &[u8]) -> u64 {
    let mut id = [0u8; 8];
    id.copy_from_slice(&frame[6..14]);
    u64::from_le_bytes(id)
}

/// Writes the `len` placeholder; returns where the frame starts.
fn begin_frame(out: &mut Vec<u8>, code: u8, id: u64) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, PROTOCOL_VERSION, code]);
    out.extend_from_slice(&id.to_le_bytes());
    start
}

/// Patches the `len` field of the frame that starts at `start`.
fn end_frame(out: &mut [u8], start: usize) {
    let len = out.len() - start - 4;
    let len = u32::try_from(len);
    assert!(len.is_ok(), "frame larger than the u32 length prefix");
    let len = len.unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}
