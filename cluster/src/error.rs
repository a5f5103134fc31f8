//! The errors of the cluster layer, one enum per job, each variant carrying
//! the evidence needed to act on it. None of them leaves state half-changed:
//! a refused ring, hint or peers file changes nothing.

use crate::record::NodeId;

/// Why a ring could not be built from a membership. Nothing was built; fix
/// the membership (configuration, seeds, peers file) and try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// The membership holds no node.
    #[error("ring has no nodes")]
    NoNodes,
    /// More nodes than [`crate::limits::NODES_MAX`].
    #[error("ring has {nodes} nodes, more than {nodes_max}")]
    TooManyNodes {
        /// Nodes given.
        nodes: usize,
        /// The limit.
        nodes_max: usize,
    },
    /// Two nodes share one id.
    #[error("duplicate node id {node}")]
    DuplicateNode {
        /// The id given twice.
        node: NodeId,
    },
    /// Node id `u32::MAX` is reserved (delivered-hint tombstones use it).
    #[error("node id {node} is reserved")]
    ReservedNodeId {
        /// The id.
        node: NodeId,
    },
    /// A node owns no token, so it could never be a replica.
    #[error("node {node} has no tokens")]
    NoTokens {
        /// The node.
        node: NodeId,
    },
    /// A node owns more than [`crate::limits::TOKENS_PER_NODE_MAX`] tokens.
    #[error("node {node} has {tokens} tokens, more than {tokens_max}")]
    TooManyTokens {
        /// The node.
        node: NodeId,
        /// Distinct tokens given.
        tokens: usize,
        /// The limit.
        tokens_max: usize,
    },
    /// A node declares 0 shards.
    #[error("node {node} has 0 shards")]
    NoShards {
        /// The node.
        node: NodeId,
    },
    /// A host or rack name longer than [`crate::limits::NAME_SIZE_MAX`].
    #[error("node {node}: {what} is {size} bytes, more than {size_max}")]
    NameTooLong {
        /// The node.
        node: NodeId,
        /// "host" or "rack".
        what: &'static str,
        /// Its length in bytes.
        size: usize,
        /// The limit.
        size_max: usize,
    },
    /// Replication factor 0 or above [`crate::limits::REPLICATION_FACTOR_MAX`].
    #[error("replication factor {rf} is outside 1..={rf_max}")]
    BadReplicationFactor {
        /// The factor given.
        rf: u32,
        /// The limit.
        rf_max: u32,
    },
}

/// Why a stored hint could not be decoded. The hint is unusable; the caller
/// should report it (with the engine key) and delete it rather than replay it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HintError {
    /// The engine key is shorter than the 4-byte target prefix.
    #[error("hint key is {size} bytes, shorter than the {size_min}-byte target prefix")]
    ShortKey {
        /// Key length.
        size: usize,
        /// Bytes needed.
        size_min: usize,
    },
    /// The engine value is shorter than its 9-byte header.
    #[error("hint value is {size} bytes, shorter than the {size_min}-byte header")]
    ShortValue {
        /// Value length.
        size: usize,
        /// Bytes needed.
        size_min: usize,
    },
    /// The kind byte is neither 0 (tombstone) nor 1 (value).
    #[error("hint value has kind byte {kind}, expected 0 or 1")]
    BadKind {
        /// The byte found.
        kind: u8,
    },
    /// A tombstone hint carries value bytes after its header.
    #[error("tombstone hint carries {size} trailing bytes")]
    TrailingBytes {
        /// Bytes after the header.
        size: usize,
    },
    /// The target node id is the reserved `u32::MAX`.
    #[error("hint targets reserved node id {node}")]
    ReservedTarget {
        /// The id found.
        node: NodeId,
    },
}

/// Why membership refused what it was told. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The node at `addr` claims an id another known node (at `other_addr`) has.
    #[error("node at {addr} claims id {node}, already held by the node at {other_addr}")]
    DuplicateId {
        /// The seed address that answered.
        addr: String,
        /// The id it claimed.
        node: NodeId,
        /// Where the id is already known from.
        other_addr: String,
    },
    /// The node at `addr` claims this node's own id.
    #[error("node at {addr} claims id {node}, which is this node's id")]
    MyId {
        /// The seed address that answered.
        addr: String,
        /// The id.
        node: NodeId,
    },
    /// `addr` is not one of the seeds.
    #[error("{addr} is not a seed")]
    UnknownSeed {
        /// The address.
        addr: String,
    },
    /// The peers file is malformed at `line` (1-based).
    #[error("peers file line {line}: {reason}")]
    BadPeersLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The peers file's checksum does not match its contents.
    #[error(
        "peers file line {line}: checksum {found:016x} does not match contents {expected:016x}"
    )]
    BadPeersChecksum {
        /// 1-based line number of the checksum line.
        line: usize,
        /// Checksum computed over the lines before it.
        expected: u64,
        /// Checksum written in the file.
        found: u64,
    },
}
