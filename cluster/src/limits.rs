//! Every limit of the cluster layer, named, qualifier last, with the relations
//! between them checked at compile time.

/// Largest replication factor a ring accepts. Bounds [`crate::ReplicaSet`],
/// which holds its node ids inline (no allocation per lookup).
pub const REPLICATION_FACTOR_MAX: u32 = 7;

/// Replication factor used when none is configured.
pub const REPLICATION_FACTOR_DEFAULT: u32 = 3;

/// Virtual-node tokens per node when none are configured.
pub const VNODES_DEFAULT: u32 = 256;

/// Most tokens one node may own. Bounds the ring's size and the memory a
/// hostile handshake or peers file can make a node allocate.
pub const TOKENS_PER_NODE_MAX: usize = 4096;

/// Most nodes a ring may hold.
pub const NODES_MAX: usize = 1024;

/// Longest host name or rack name accepted in a [`crate::NodeInfo`], in bytes.
pub const NAME_SIZE_MAX: usize = 255;

/// Largest number of lines a peers file may hold (one per seed plus the checksum).
pub const PEERS_LINES_MAX: usize = NODES_MAX + 1;

const _: () = assert!(REPLICATION_FACTOR_DEFAULT <= REPLICATION_FACTOR_MAX);
const _: () = assert!(REPLICATION_FACTOR_MAX >= 1 && REPLICATION_FACTOR_MAX < u8::MAX as u32);
const _: () = assert!(VNODES_DEFAULT as usize <= TOKENS_PER_NODE_MAX);
