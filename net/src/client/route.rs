//! Token-aware routing of single-key requests: which node of the ring a
//! client sends a key's request to. Pure (no sockets, no clock), so it is
//! tested on its own; the blocking client feeds it its view of which nodes
//! answer.
//!
//! Rule (shared/DESIGN.md, "The request path"): the client's home node (the
//! one it connected to) if it holds a replica of the token; else the first
//! replica, in ring order (primary first), that is reachable; else the home
//! node, which coordinates any key. Any node accepts any key, so the choice is
//! an optimisation (one network hop fewer), never a requirement.

use ringkv_cluster::ring::Ring;
use ringkv_cluster::NodeId;

/// The node a single-key request for `token` goes to: `home` if it is a
/// replica, else the first replica (ring order) for which `reachable` holds,
/// else `home`. `reachable` is not asked about `home`.
#[must_use]
pub fn pick_node(
    ring: &Ring,
    token: u64,
    home: NodeId,
    reachable: impl Fn(NodeId) -> bool,
) -> NodeId {
    let replicas = ring.replicas(token);
    if replicas.contains(home) {
        return home;
    }
    let first_reachable = replicas.iter().find(|&id| reachable(id));
    first_reachable.unwrap_or(home)
}
