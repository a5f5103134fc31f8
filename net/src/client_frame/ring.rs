//! The RING response body: the cluster's ring as a node sees it, decoded
//! zero-copy ([`RingNodeList`] iterates [`RingNode`]s borrowed from the frame).
//!
//! Body layout (integers little-endian):
//!
//! ```text
//!  u64 ring_version | u32 replication_factor | u32 node_count
//!  node_count x ( u32 id | u16 port | u32 shards | u16 host_len | host
//!               | u16 rack_len | rack | u32 token_count | token_count x u64 token )
//! ```
//!
//! Invariants: decoding checks `node_count` against [`RING_NODES_MAX`] and the
//! bytes left (a node takes at least [`RING_NODE_SIZE_MIN`] bytes), each
//! `token_count` against [`RING_TOKENS_MAX`] and the bytes left, host and rack
//! against [`RING_NAME_SIZE_MAX`] and UTF-8, and `shards` against
//! `1..=SHARD_COUNT_MAX`, before iterating; iteration afterwards cannot fail.
//! Whether the nodes form a valid ring (distinct ids, tokens present) is
//! checked by `ringkv_cluster::ring::Ring::new`, not here.

use std::fmt;

use ringkv_cluster::ring::NodeInfo;

use super::status::Status;
use super::wire::{put_u16, put_u32, put_u64, BodyError, Reader};
use crate::error::FrameError;
use crate::limits::{
    RING_NAME_SIZE_MAX, RING_NODES_MAX, RING_NODE_SIZE_MIN, RING_TOKENS_MAX, SHARD_COUNT_MAX,
};

/// The vnode tokens of one ring node, borrowed from the frame (8 bytes each).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenList<'a> {
    bytes: &'a [u8],
}

impl<'a> TokenList<'a> {
    /// Number of tokens.
    #[must_use]
    pub fn len(&self) -> usize {
        self.bytes.len() / 8
    }

    /// Whether there is no token.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The tokens, in wire order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = u64> + 'a {
        self.bytes.chunks_exact(8).map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
    }
}

impl fmt::Debug for TokenList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenList({} tokens)", self.len())
    }
}

/// One node of a RING answer, borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingNode<'a> {
    /// Stable node id.
    pub id: u32,
    /// Host clients connect to (UTF-8, at most `RING_NAME_SIZE_MAX` bytes).
    pub host: &'a [u8],
    /// Base client port; shard `s` listens on `port + 1 + s`.
    pub port: u16,
    /// Shard count, in `1..=SHARD_COUNT_MAX`.
    pub shards: u32,
    /// Rack name (UTF-8), empty = none.
    pub rack: &'a [u8],
    /// Vnode tokens (at most `RING_TOKENS_MAX`).
    pub tokens: TokenList<'a>,
}

impl RingNode<'_> {
    /// An owned [`NodeInfo`]. Host and rack were validated as UTF-8 when the
    /// frame was decoded; the error is kept for nodes built by hand.
    pub fn to_node_info(&self) -> Result<NodeInfo, FrameError> {
        let text = |what: &str, bytes: &[u8]| {
            String::from_utf8(bytes.to_vec()).map_err(|_| FrameError::Malformed {
                id: None,
                status: Status::BadRequest,
                reason: format!("ring node {} {what} is not UTF-8", self.id),
            })
        };
        Ok(NodeInfo {
            id: self.id,
            host: text("host", self.host)?,
            port: self.port,
            shards: self.shards,
            rack: text("rack", self.rack)?,
            tokens: self.tokens.iter().collect(),
        })
    }
}

/// The nodes of a RING answer: a validated span of the frame plus the node
/// count; iterating re-reads the nodes in place (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RingNodeList<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> RingNodeList<'a> {
    /// Number of nodes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the list has no node.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The nodes, in wire order.
    #[must_use]
    pub fn iter(&self) -> RingNodeIter<'a> {
        RingNodeIter {
            reader: Reader::new(self.bytes),
            left: self.count,
        }
    }

    /// Owned copies of every node, for `Ring::new`.
    pub fn to_node_infos(&self) -> Result<Vec<NodeInfo>, FrameError> {
        self.iter().map(|n| n.to_node_info()).collect()
    }

    /// Reads `u32 node_count` and validates every node; the list borrows them.
    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, BodyError> {
        let count = r.count(
            "ring node count",
            RING_NODES_MAX,
            Status::BadRequest,
            RING_NODE_SIZE_MIN,
        )?;
        let start = r.position();
        for _ in 0..count {
            read_node(r)?;
        }
        Ok(RingNodeList {
            bytes: r.since(start),
            count,
        })
    }

    /// Writes `u32 node_count` then the nodes' bytes as they were received.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        // count <= RING_NODES_MAX, validated by `decode`.
        put_u32(out, self.count as u32);
        out.extend_from_slice(self.bytes);
    }
}

impl<'a> IntoIterator for RingNodeList<'a> {
    type Item = RingNode<'a>;
    type IntoIter = RingNodeIter<'a>;
    fn into_iter(self) -> RingNodeIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for RingNodeList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over the nodes of a [`RingNodeList`].
#[derive(Debug, Clone)]
pub struct RingNodeIter<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for RingNodeIter<'a> {
    type Item = RingNode<'a>;

    fn next(&mut self) -> Option<RingNode<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Every node was validated by `decode`; an error here would be a bug,
        // and ends the iteration rather than panic.
        read_node(&mut self.reader).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for RingNodeIter<'_> {}

fn read_name<'a>(r: &mut Reader<'a>, what: &str) -> Result<&'a [u8], BodyError> {
    let len = usize::from(r.u16(what)?);
    if len > RING_NAME_SIZE_MAX {
        return Err(BodyError::new(
            Status::BadRequest,
            format!("{what} of {len} bytes exceeds the limit of {RING_NAME_SIZE_MAX} bytes"),
        ));
    }
    let bytes = r.bytes(len, what)?;
    if std::str::from_utf8(bytes).is_err() {
        return Err(BodyError::new(
            Status::BadRequest,
            format!("{what} is not UTF-8"),
        ));
    }
    Ok(bytes)
}

fn read_node<'a>(r: &mut Reader<'a>) -> Result<RingNode<'a>, BodyError> {
    let id = r.u32("ring node id")?;
    let port = r.u16("ring node port")?;
    let shards = r.u32("ring node shards")?;
    if shards == 0 || shards > SHARD_COUNT_MAX {
        return Err(BodyError::new(
            Status::BadRequest,
            format!("ring node {id} shard count {shards} is outside 1..={SHARD_COUNT_MAX}"),
        ));
    }
    let host = read_name(r, "ring node host")?;
    let rack = read_name(r, "ring node rack")?;
    let tokens = r.count(
        "ring node token count",
        RING_TOKENS_MAX,
        Status::BadRequest,
        8,
    )?;
    let tokens = TokenList {
        bytes: r.bytes(tokens * 8, "ring node tokens")?,
    };
    Ok(RingNode {
        id,
        host,
        port,
        shards,
        rack,
        tokens,
    })
}

/// Writes a ring body: version, replication factor, then `nodes`.
///
/// Panics if our own ring breaks the wire limits (more than `RING_NODES_MAX`
/// nodes, `RING_TOKENS_MAX` tokens or `RING_NAME_SIZE_MAX`-byte names): the
/// cluster crate's `Ring::new` refuses such rings.
pub(crate) fn encode_ring_body(
    version: u64,
    replication_factor: u32,
    nodes: &[NodeInfo],
    out: &mut Vec<u8>,
) {
    assert!(
        nodes.len() <= RING_NODES_MAX,
        "ring of {} nodes",
        nodes.len()
    );
    put_u64(out, version);
    put_u32(out, replication_factor);
    put_u32(out, nodes.len() as u32);
    for n in nodes {
        assert!(n.host.len() <= RING_NAME_SIZE_MAX && n.rack.len() <= RING_NAME_SIZE_MAX);
        assert!(n.tokens.len() <= RING_TOKENS_MAX);
        put_u32(out, n.id);
        put_u16(out, n.port);
        put_u32(out, n.shards);
        put_u16(out, n.host.len() as u16);
        out.extend_from_slice(n.host.as_bytes());
        put_u16(out, n.rack.len() as u16);
        out.extend_from_slice(n.rack.as_bytes());
        put_u32(out, n.tokens.len() as u32);
        for t in &n.tokens {
            put_u64(out, *t);
        }
    }
}
