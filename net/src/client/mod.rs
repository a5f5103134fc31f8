//! The client library: a blocking, shard-aware [`Client`] (for ringctl and
//! tests) and a runtime-agnostic pipelined [`AsyncConnection`] (for loadgen).
//!
//! This module holds the owned result types both share. Invariants: every
//! value returned to a caller is owned (copied out of the receive buffer); the
//! highest version seen in any reply is kept as the session version and sent
//! with every later request (session guarantees, shared/DESIGN.md).

#[path = "async.rs"]
mod asynchronous;
mod blocking;
mod buffer;
mod route;
mod scan;

pub use asynchronous::AsyncConnection;
pub use blocking::{Client, ClientOptions};
pub use route::pick_node;

use crate::client_frame::{Response, ScanEntry, Status, TtlState, WireVersion};

/// A value read by GET (owned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueOwned {
    /// The value bytes.
    pub value: Vec<u8>,
    /// Its version.
    pub version: WireVersion,
    /// Expiry time in Unix milliseconds; 0 = never.
    pub expires_at_ms: u64,
}

/// One SCAN entry (owned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEntryOwned {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The value's version.
    pub version: WireVersion,
}

impl From<ScanEntry<'_>> for ScanEntryOwned {
    fn from(e: ScanEntry<'_>) -> Self {
        ScanEntryOwned {
            key: e.key.to_vec(),
            value: e.value.to_vec(),
            version: e.version,
        }
    }
}

/// One page of a scan (owned): entries in key order; `next_after` empty when
/// the scan is complete, otherwise pass it as [`ScanSpec::after`] to continue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPageOwned {
    /// Entries in ascending key order.
    pub entries: Vec<ScanEntryOwned>,
    /// Continuation key; empty = done.
    pub next_after: Vec<u8>,
}

/// What to scan: a key range `[start, end)` (empty `end` = unbounded) or, with
/// `prefix`, every key starting with `start`; at most `limit` entries
/// (`1..=SCAN_LIMIT_MAX`), strictly after `after` (empty = from the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanSpec {
    /// Range start (inclusive) or the prefix.
    pub start: Vec<u8>,
    /// Range end (exclusive); empty = unbounded; ignored with `prefix`.
    pub end: Vec<u8>,
    /// Whether `start` is a prefix.
    pub prefix: bool,
    /// Largest number of entries in the page.
    pub limit: u32,
    /// Continuation: resume strictly after this key; empty = from the start.
    pub after: Vec<u8>,
}

impl Default for ScanSpec {
    fn default() -> Self {
        ScanSpec {
            start: Vec::new(),
            end: Vec::new(),
            prefix: false,
            limit: 100,
            after: Vec::new(),
        }
    }
}

/// What a CAS compares against (owned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasExpectOwned {
    /// The key must not exist.
    Absent,
    /// The key's version must be this one.
    Version(WireVersion),
    /// The key's value must be these bytes.
    Value(Vec<u8>),
}

/// The outcome of a CAS.
// Variant fields are described in each variant's doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// The value was written with this version.
    Written(WireVersion),
    /// The key's state differed: its current value and version, or `None`
    /// if it is absent. Nothing was written.
    Mismatch {
        current: Option<(Vec<u8>, WireVersion)>,
    },
}

/// A response copied out of the receive buffer.
// Variant fields are described in each variant's doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedResponse {
    /// See [`Response::Pong`].
    Pong,
    /// See [`Response::Hello`].
    Hello {
        node_id: u32,
        shard_count: u32,
        base_port: u16,
        protocol_version: u8,
    },
    /// See [`Response::Value`].
    Value(ValueOwned),
    /// See [`Response::NotFound`].
    NotFound,
    /// See [`Response::Written`].
    Written { version: WireVersion },
    /// See [`Response::Values`].
    Values(Vec<Option<(Vec<u8>, WireVersion)>>),
    /// See [`Response::ScanPage`].
    ScanPage(ScanPageOwned),
    /// See [`Response::CasMismatch`].
    CasMismatch {
        current: Option<(Vec<u8>, WireVersion)>,
    },
    /// See [`Response::Integer`].
    Integer { value: i64, version: WireVersion },
    /// See [`Response::Ttl`].
    Ttl(TtlState),
    /// See [`Response::Bool`].
    Bool(bool),
    /// See [`Response::Stats`].
    Stats(Vec<u8>),
    /// See [`Response::Ring`].
    Ring {
        version: u64,
        replication_factor: u32,
        nodes: Vec<ringkv_cluster::ring::NodeInfo>,
    },
    /// See [`Response::Error`].
    Error { status: Status, message: String },
}

impl From<&Response<'_>> for OwnedResponse {
    fn from(r: &Response<'_>) -> Self {
        match *r {
            Response::Pong => OwnedResponse::Pong,
            Response::Hello {
                node_id,
                shard_count,
                base_port,
                protocol_version,
            } => OwnedResponse::Hello {
                node_id,
                shard_count,
                base_port,
                protocol_version,
            },
            Response::Value {
                value,
                version,
                expires_at_ms,
            } => OwnedResponse::Value(ValueOwned {
                value: value.to_vec(),
                version,
                expires_at_ms,
            }),
            Response::NotFound => OwnedResponse::NotFound,
            Response::Written { version } => OwnedResponse::Written { version },
            Response::Values { items } => OwnedResponse::Values(
                items
                    .iter()
                    .map(|i| i.map(|(v, ver)| (v.to_vec(), ver)))
                    .collect(),
            ),
            Response::ScanPage {
                entries,
                next_after,
            } => OwnedResponse::ScanPage(ScanPageOwned {
                entries: entries.iter().map(ScanEntryOwned::from).collect(),
                next_after: next_after.to_vec(),
            }),
            Response::CasMismatch { current } => OwnedResponse::CasMismatch {
                current: current.map(|(v, ver)| (v.to_vec(), ver)),
            },
            Response::Integer { value, version } => OwnedResponse::Integer { value, version },
            Response::Ttl { state } => OwnedResponse::Ttl(state),
            Response::Bool(b) => OwnedResponse::Bool(b),
            Response::Stats { text } => OwnedResponse::Stats(text.to_vec()),
            Response::Ring {
                version,
                replication_factor,
                nodes,
            } => OwnedResponse::Ring {
                version,
                replication_factor,
                // Host and rack were validated as UTF-8 when the frame was
                // decoded, so this cannot fail; an empty list would be caught
                // by `Ring::new`.
                nodes: nodes.to_node_infos().unwrap_or_default(),
            },
            Response::Error { status, message } => OwnedResponse::Error {
                status,
                message: String::from_utf8_lossy(message).into_owned(),
            },
        }
    }
}

/// A response with the id of the request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseOwned {
    /// The id of the request this answers (0 = a connection-level error).
    pub id: u64,
    /// The response, owned.
    pub response: OwnedResponse,
}

/// The highest version carried by `response` (for session tracking).
#[must_use]
pub fn highest_version(response: &Response<'_>) -> Option<WireVersion> {
    match response {
        Response::Value { version, .. }
        | Response::Written { version }
        | Response::Integer { version, .. } => Some(*version),
        Response::Values { items } => items.iter().flatten().map(|(_, v)| v).max(),
        Response::ScanPage { entries, .. } => entries.iter().map(|e| e.version).max(),
        Response::CasMismatch { current } => current.map(|(_, v)| v),
        _ => None,
    }
}
