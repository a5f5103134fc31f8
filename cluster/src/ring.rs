//! The consistent-hash ring: which nodes hold the replicas of a token.
//!
//! Each node owns many virtual-node tokens (u64 points on a circle). The
//! replicas of a token are the first N distinct nodes met walking the circle
//! clockwise from the first vnode token `>=` it, wrapping past `u64::MAX` to 0
//! (Dynamo, Cassandra). Equal tokens of two nodes order by node id.
//!
//! Rack awareness (when any node names a rack): the walk first takes nodes of
//! racks not used yet, then fills up with the nodes it skipped, in walk order.
//! A node without a rack (`""`) counts as a rack of its own, so it never
//! conflicts with anyone.
//!
//! Invariants: a [`Ring`] is only built by [`Ring::new`], which validates and
//! normalises the membership (nodes sorted by id, tokens sorted and
//! deduplicated), so the same membership in any order gives the same ring and
//! the same [`Ring::version`]. Lookups never allocate.
//!
//! Not here: token→shard mapping inside a node (the shell), membership
//! (`membership.rs`), topology changes.

use crate::error::RingError;
use crate::limits::{NAME_SIZE_MAX, NODES_MAX, REPLICATION_FACTOR_MAX, TOKENS_PER_NODE_MAX};
use crate::record::NodeId;
use xxhash_rust::xxh3::xxh3_64;

const RF_MAX: usize = REPLICATION_FACTOR_MAX as usize;

/// What the ring knows of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Stable node id (never `u32::MAX`).
    pub id: NodeId,
    /// Host clients and peers connect to.
    pub host: String,
    /// The node's base port (shard `s` also listens on `port + 1 + s`).
    pub port: u16,
    /// Number of shards (cores) of the node, at least 1.
    pub shards: u32,
    /// Rack name; `""` means no rack.
    pub rack: String,
    /// Vnode tokens, sorted and deduplicated ([`Ring::new`] normalises them).
    pub tokens: Vec<u64>,
}

/// The token of a key: xxh3-64 of its bytes (what clients and coordinators hash).
pub fn token_of(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// The default tokens of a node: `vnodes` tokens = xxh3_64 over (node id LE
/// bytes ++ i LE u32 bytes) for i in 0..vnodes, sorted and deduplicated.
/// Deterministic, so a restarted node keeps its tokens.
pub fn default_tokens(node: NodeId, vnodes: u32) -> Vec<u64> {
    let mut tokens: Vec<u64> = (0..vnodes)
        .map(|i| {
            let mut buf = [0u8; 8];
            buf[..4].copy_from_slice(&node.to_le_bytes());
            buf[4..].copy_from_slice(&i.to_le_bytes());
            xxh3_64(&buf)
        })
        .collect();
    tokens.sort_unstable();
    tokens.dedup();
    tokens
}

/// Up to [`REPLICATION_FACTOR_MAX`] distinct node ids, in replica order (the
/// first is the primary), held inline: no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSet {
    // Slots at and past `len` are always 0, so the derived `PartialEq` is exact.
    ids: [NodeId; RF_MAX],
    len: u8,
}

impl ReplicaSet {
    /// The empty set.
    pub const EMPTY: ReplicaSet = ReplicaSet {
        ids: [0; RF_MAX],
        len: 0,
    };

    /// The ids, in replica order.
    pub fn as_slice(&self) -> &[NodeId] {
        &self.ids[..usize::from(self.len)]
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether there is no id.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `node` is in the set.
    pub fn contains(&self, node: NodeId) -> bool {
        self.as_slice().contains(&node)
    }

    /// The ids, in replica order.
    pub fn iter(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.as_slice().iter().copied()
    }

    /// Appends `node`. Callers keep ids distinct and within capacity.
    pub(crate) fn push(&mut self, node: NodeId) {
        assert!(self.len() < RF_MAX, "replica set full");
        debug_assert!(!self.contains(node));
        self.ids[self.len()] = node;
        self.len += 1;
    }
}

impl<'a> IntoIterator for &'a ReplicaSet {
    type Item = &'a NodeId;
    type IntoIter = std::slice::Iter<'a, NodeId>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

/// A validated ring: nodes, their vnode tokens and the replication factor.
#[derive(Debug, Clone)]
pub struct Ring {
    /// Sorted by id.
    nodes: Vec<NodeInfo>,
    /// Every vnode token with the index of its node in `nodes`, sorted by
    /// (token, index); index order is id order, so ties go to the lower id.
    tokens: Vec<(u64, u32)>,
    /// Rack number per node index: equal for equal rack names, unique for
    /// rackless nodes.
    rack_of: Vec<u32>,
    /// Number of distinct racks (rackless nodes count one each).
    racks: usize,
    /// Whether any node names a rack.
    has_racks: bool,
    rf_configured: u32,
    rf: u32,
    version: u64,
}

impl Ring {
    /// Builds a ring from `nodes` (any order; tokens are sorted and deduplicated).
    ///
    /// Errors: no nodes or more than [`NODES_MAX`], duplicate node ids, node id
    /// `u32::MAX` (reserved), a node with no tokens, more than
    /// [`TOKENS_PER_NODE_MAX`] tokens or 0 shards, a host or rack name longer
    /// than [`NAME_SIZE_MAX`], replication_factor 0 or above
    /// [`REPLICATION_FACTOR_MAX`].
    pub fn new(mut nodes: Vec<NodeInfo>, replication_factor: u32) -> Result<Ring, RingError> {
        if replication_factor == 0 || replication_factor > REPLICATION_FACTOR_MAX {
            return Err(RingError::BadReplicationFactor {
                rf: replication_factor,
                rf_max: REPLICATION_FACTOR_MAX,
            });
        }
        if nodes.is_empty() {
            return Err(RingError::NoNodes);
        }
        if nodes.len() > NODES_MAX {
            return Err(RingError::TooManyNodes {
                nodes: nodes.len(),
                nodes_max: NODES_MAX,
            });
        }
        nodes.sort_by_key(|n| n.id);
        for n in nodes.iter_mut() {
            Self::validate_node(n)?;
        }
        for w in nodes.windows(2) {
            if w[0].id == w[1].id {
                return Err(RingError::DuplicateNode { node: w[0].id });
            }
        }
        let mut tokens = Vec::with_capacity(nodes.iter().map(|n| n.tokens.len()).sum());
        for (i, n) in nodes.iter().enumerate() {
            // `i < NODES_MAX`, which fits in u32.
            tokens.extend(n.tokens.iter().map(|&t| (t, i as u32)));
        }
        tokens.sort_unstable();
        let (rack_of, racks) = Self::number_racks(&nodes);
        let has_racks = nodes.iter().any(|n| !n.rack.is_empty());
        let rf = replication_factor.min(nodes.len() as u32);
        let version = Self::compute_version(&nodes, replication_factor);
        Ok(Ring {
            nodes,
            tokens,
            rack_of,
            racks,
            has_racks,
            rf_configured: replication_factor,
            rf,
            version,
        })
    }

    fn validate_node(n: &mut NodeInfo) -> Result<(), RingError> {
        let node = n.id;
        if node == NodeId::MAX {
            return Err(RingError::ReservedNodeId { node });
        }
        if n.shards == 0 {
            return Err(RingError::NoShards { node });
        }
        for (what, size) in [("host", n.host.len()), ("rack", n.rack.len())] {
            if size > NAME_SIZE_MAX {
                return Err(RingError::NameTooLong {
                    node,
                    what,
                    size,
                    size_max: NAME_SIZE_MAX,
                });
            }
        }
        n.tokens.sort_unstable();
        n.tokens.dedup();
        if n.tokens.is_empty() {
            return Err(RingError::NoTokens { node });
        }
        if n.tokens.len() > TOKENS_PER_NODE_MAX {
            return Err(RingError::TooManyTokens {
                node,
                tokens: n.tokens.len(),
                tokens_max: TOKENS_PER_NODE_MAX,
            });
        }
        Ok(())
    }

    /// Numbers the racks: nodes with equal non-empty rack names share a
    /// number; every rackless node gets its own.
    fn number_racks(nodes: &[NodeInfo]) -> (Vec<u32>, usize) {
        let mut rack_of: Vec<u32> = Vec::with_capacity(nodes.len());
        let mut next = 0u32;
        for (i, n) in nodes.iter().enumerate() {
            let earlier = if n.rack.is_empty() {
                None
            } else {
                nodes[..i].iter().position(|m| m.rack == n.rack)
            };
            match earlier {
                Some(j) => rack_of.push(rack_of[j]),
                None => {
                    rack_of.push(next);
                    next += 1;
                }
            }
        }
        (rack_of, next as usize)
    }

    /// xxh3 of a canonical encoding: a format tag, then per node (sorted by id)
    /// id, host, port, shards, rack, tokens (lengths as u32 LE, numbers LE),
    /// then the configured replication factor.
    fn compute_version(nodes: &[NodeInfo], rf: u32) -> u64 {
        let mut buf: Vec<u8> = Vec::new();
        buf.extend_from_slice(b"ringkv-ring-v1");
        let put_str = |buf: &mut Vec<u8>, s: &str| {
            // Names are at most NAME_SIZE_MAX bytes.
            buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        };
        buf.extend_from_slice(&(nodes.len() as u32).to_le_bytes());
        for n in nodes {
            buf.extend_from_slice(&n.id.to_le_bytes());
            put_str(&mut buf, &n.host);
            buf.extend_from_slice(&n.port.to_le_bytes());
            buf.extend_from_slice(&n.shards.to_le_bytes());
            put_str(&mut buf, &n.rack);
            buf.extend_from_slice(&(n.tokens.len() as u32).to_le_bytes());
            for t in &n.tokens {
                buf.extend_from_slice(&t.to_le_bytes());
            }
        }
        buf.extend_from_slice(&rf.to_le_bytes());
        xxh3_64(&buf)
    }

    /// A fingerprint of the membership and replication factor: equal rings
    /// (same nodes, in any order, same rf) have equal versions.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The nodes, sorted by id.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// The node with id `id`, if it is in the ring. O(log nodes).
    pub fn node(&self, id: NodeId) -> Option<&NodeInfo> {
        self.nodes
            .binary_search_by_key(&id, |n| n.id)
            .ok()
            .map(|i| &self.nodes[i])
    }

    /// The replication factor the ring was built with.
    pub fn configured_replication_factor(&self) -> u32 {
        self.rf_configured
    }

    /// The replicas each token actually has: min(configured rf, number of nodes).
    pub fn replication_factor(&self) -> u32 {
        self.rf
    }

    /// The replica nodes of `token`, primary first: walk the vnode tokens
    /// clockwise from the first token `>= token` (wrapping), taking the first
    /// [`Ring::replication_factor`] distinct nodes, rack-aware as the module
    /// doc says. O(log T + walk); no allocation.
    pub fn replicas(&self, token: u64) -> ReplicaSet {
        let n = self.rf as usize;
        let total = self.tokens.len();
        let start = self.tokens.partition_point(|&(t, _)| t < token);
        let walk = (0..total).map(|i| {
            let at = start + i;
            self.tokens[if at >= total { at - total } else { at }].1 as usize
        });
        let mut set = ReplicaSet::EMPTY;
        if !self.has_racks {
            for idx in walk {
                let id = self.nodes[idx].id;
                if !set.contains(id) {
                    set.push(id);
                    if set.len() == n {
                        break;
                    }
                }
            }
            return set;
        }
        // Rack-aware: `set` takes nodes of unused racks; `skipped` keeps the
        // first nodes of used racks in walk order, to fill up with.
        let racks_target = n.min(self.racks);
        let mut racks_used = [u32::MAX; RF_MAX];
        let mut skipped = ReplicaSet::EMPTY;
        for idx in walk {
            if set.len() >= racks_target && set.len() + skipped.len() >= n {
                break;
            }
            let id = self.nodes[idx].id;
            if set.contains(id) || skipped.contains(id) {
                continue;
            }
            let rack = self.rack_of[idx];
            if set.len() < racks_target && !racks_used[..set.len()].contains(&rack) {
                racks_used[set.len()] = rack;
                set.push(id);
            } else if skipped.len() < n {
                skipped.push(id);
            }
        }
        for id in skipped.iter() {
            if set.len() == n {
                break;
            }
            set.push(id);
        }
        set
    }

    /// Whether `node` holds a replica of `token`.
    pub fn is_replica(&self, token: u64, node: NodeId) -> bool {
        self.replicas(token).contains(node)
    }
}
