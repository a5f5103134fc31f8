//! ringkv-cluster: the cluster layer as pure state machines (no sockets, no
//! executor, no clock reads): time, messages and storage results are inputs;
//! messages to send, storage calls and replies are outputs. The glommio shell
//! in `ringkv-shards` drives it in production; a simulator can drive it in tests
//! (`tests/simulation.rs` does, from a seed).
//!
//! Modules, one job each:
//! - [`record`]: versions (HLC + node id), records, mutations, [`newest`].
//! - [`ring`]: the consistent-hash ring with vnodes and racks, [`ReplicaSet`].
//! - [`consistency`]: ONE / QUORUM / ALL and how many answers each needs.
//! - [`coordinator`]: the quorum state machine of one shard: writes, reads,
//!   hints for replicas that miss a write, hint replay, read repair.
//! - [`hints`]: the codec of hints stored in a storage engine.
//! - [`membership`]: static membership from seeds and the peers file.
//! - [`limits`], [`error`]: named limits; errors with evidence.
//!
//! Nothing here reads a clock or draws randomness: every time is an argument,
//! so a run is a pure function of its inputs.

pub mod consistency;
pub mod coordinator;
pub mod error;
pub mod hints;
pub mod limits;
pub mod membership;
pub mod record;
pub mod ring;

pub use consistency::Level;
pub use coordinator::{
    CoordError, Coordinator, CoordinatorConfig, CoordinatorStats, Effect, Liveness, OpId, Outcome,
    ReadFanout,
};
pub use error::{HintError, MembershipError, RingError};
pub use membership::Membership;
pub use record::{newest, Mutation, NodeId, Record, Version};
pub use ring::{default_tokens, token_of, NodeInfo, ReplicaSet, Ring};
