//! The internode message types ([`Batch`] and what it carries) and their rkyv
//! archived forms (`ArchivedBatch`...), which receivers read in place.
//!
//! Every type and field here is documented; the lint is relaxed only because
//! rkyv's derive generates resolver types whose fields carry no docs.
#![allow(missing_docs)]

use super::InternodeError;

/// One frame's contents: every message queued for one peer shard in one
/// reactor turn, with the sender's identity and clock.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
#[rkyv(derive(Debug))]
pub struct Batch {
    /// Node id of the sender.
    pub from_node: u32,
    /// Shard of the sender on its node.
    pub from_shard: u32,
    /// Sender's HLC (hlc form: `ms << 16 | logical`); the receiver advances its
    /// own clock past it.
    pub clock: u64,
    /// The messages, in the order they were queued.
    pub messages: Vec<Message>,
}

/// One internode message. `op` is chosen by the sender of a request and echoed
/// in its answer (unique per connection among requests in flight).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
#[rkyv(derive(Debug))]
pub enum Message {
    /// First message each way on a connection.
    Hello(
        /// The sender's identity and ring membership.
        Hello,
    ),
    /// Apply `record` to `key` if it is newer than the replica's version.
    Write {
        /// Request id, echoed in the `WriteAck`.
        op: u64,
        /// The key.
        key: Vec<u8>,
        /// The versioned value (or tombstone) to keep if newer.
        record: WireRecord,
    },
    /// Answer to `Write`: `error` is `None` once the write is durable.
    WriteAck {
        /// The `Write`'s id.
        op: u64,
        /// Why the write failed, `None` on success.
        error: Option<String>,
    },
    /// Read `key`'s current record (tombstones included).
    Read {
        /// Request id, echoed in the `ReadReply`.
        op: u64,
        /// The key.
        key: Vec<u8>,
    },
    /// Answer to `Read`: the record (`None` = never written), or an error.
    ReadReply {
        /// The `Read`'s id.
        op: u64,
        /// The replica's record, `None` if it has none.
        record: Option<WireRecord>,
        /// Why the read failed, `None` on success.
        error: Option<String>,
    },
}

/// A versioned record as replicas exchange it.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
#[rkyv(derive(Debug))]
pub struct WireRecord {
    /// The value; `None` = a tombstone (delete).
    pub value: Option<Vec<u8>>,
    /// The version's HLC timestamp.
    pub hlc: u64,
    /// The id of the node that stamped the version (breaks ties).
    pub node: u32,
    /// Expiry in Unix ms; 0 = never.
    pub expires_at_ms: u64,
}

/// A node's identity and ring membership, exchanged when a connection opens.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
#[rkyv(derive(Debug))]
pub struct Hello {
    /// The node's stable id.
    pub node_id: u32,
    /// The node's shard count.
    pub shards: u32,
    /// The sending shard.
    pub shard: u32,
    /// The node's client address host.
    pub host: String,
    /// The node's base client port.
    pub port: u16,
    /// The node's rack ("" = none).
    pub rack: String,
    /// The node's virtual-node tokens.
    pub tokens: Vec<u64>,
    /// The replication factor the node is configured with.
    pub replication_factor: u32,
    /// The version of the ring the sender holds.
    pub ring_version: u64,
}

impl Batch {
    /// An owned copy of a validated archived batch (for code that must keep
    /// messages past the receive buffer's next `consume`).
    pub fn from_archived(archived: &ArchivedBatch) -> Result<Batch, InternodeError> {
        rkyv::deserialize::<Batch, rkyv::rancor::Error>(archived).map_err(|e| {
            InternodeError::InvalidArchive {
                offset: 0,
                size: 0,
                reason: format!("deserialize: {e}"),
            }
        })
    }
}
