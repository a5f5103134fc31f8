//! The quorum coordinator of one shard: a sans-I/O state machine.
//!
//! Inputs are method calls carrying the time ([`Coordinator::write`],
//! [`Coordinator::read`], [`Coordinator::on_write_ack`],
//! [`Coordinator::on_read_reply`], [`Coordinator::on_peer_down`],
//! [`Coordinator::tick`], [`Coordinator::replay_hint`]); outputs are
//! [`Effect`]s pushed to a caller-owned `Vec`, which the shell performs
//! (send, apply locally, store a hint, reply). Nothing here reads a clock,
//! touches a socket or spawns a task, so a simulator can drive many
//! coordinators on one thread from a seed.
//!
//! Rules (Dynamo-style quorum; see the crate's brief and DESIGN.md):
//! - Replicas = `ring.replicas(token)`, `n` of them; W or R =
//!   `level.required(n)`. A replica is alive when it is this node or
//!   [`Liveness::is_up`]. Fewer alive than needed → `Reply(Err(Unavailable))`
//!   at once and nothing else.
//! - Writes go to every alive replica; down replicas, replicas that answer an
//!   error, time out or are reported down get a hint (once per replica per op,
//!   never for this node). The reply comes on the W-th ack, or `Failed` as soon
//!   as W cannot be reached, or `Timeout` at the deadline.
//! - Reads ask every alive replica ([`ReadFanout::All`]) or the first R
//!   ([`ReadFanout::Required`]), this node first; a read at ONE on a replica
//!   asks only this node. The reply carries the newest record once R answers
//!   are in. When every target answered or the deadline passed, every
//!   answerer that returned an older record (or none) is repaired.
//! - Exactly one `Reply` per `write`/`read` op; acks for unknown or finished
//!   ops are ignored. Hint replays and read repairs never reply or hint.
//!
//! Invariants: every pending op has exactly one entry in `deadlines`; an op
//! is removed (with its deadline) once no replica is outstanding.

mod read;
mod write;

use crate::limits::REPLICATION_FACTOR_MAX;
use crate::record::{Mutation, NodeId, Record, Version};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use read::ReadOp;
use write::WriteOp;

/// Id of one coordinator operation; never 0, sequential per coordinator.
pub type OpId = u64;

/// The shell's current view of which peers are up.
pub trait Liveness {
    /// Whether `node` is believed up (requests are sent only to up nodes).
    fn is_up(&self, node: NodeId) -> bool;
}

impl<F: Fn(NodeId) -> bool> Liveness for F {
    fn is_up(&self, node: NodeId) -> bool {
        self(node)
    }
}

/// Which replicas a read asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFanout {
    /// Every alive replica; the reply comes after R answers, the rest only
    /// serve read repair (finds stale replicas sooner, costs more messages).
    All,
    /// Only the first R alive replicas (this node first).
    Required,
}

/// How a coordinator behaves.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// This node.
    pub node: NodeId,
    /// Per request: after this long without enough answers, the request
    /// times out and replicas still outstanding are hinted.
    pub request_timeout_ms: u64,
    /// Which replicas reads ask.
    pub read_fanout: ReadFanout,
    /// Store hints for replicas that did not ack.
    pub hints: bool,
}

impl CoordinatorConfig {
    /// The defaults for `node`: 1 s timeout, reads to every alive replica, hints on.
    pub fn new(node: NodeId) -> Self {
        CoordinatorConfig {
            node,
            request_timeout_ms: 1000,
            read_fanout: ReadFanout::All,
            hints: true,
        }
    }
}

/// Why a request failed. The `Display` texts are what clients see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoordError {
    /// Fewer live replicas than needed, checked before anything is sent.
    #[error("unavailable: needed {needed}, got {alive}")]
    Unavailable {
        /// Replicas the level needs.
        needed: usize,
        /// Replicas alive.
        alive: usize,
    },
    /// The deadline passed with too few answers.
    #[error("timeout: needed {needed}, got {got} within {ms} ms")]
    Timeout {
        /// Answers the level needs.
        needed: usize,
        /// Successful answers received.
        got: usize,
        /// The request timeout.
        ms: u64,
    },
    /// Too many replicas answered with an error to reach the level; carries
    /// the first error text.
    #[error("failed: needed {needed}, got {got}: {error}")]
    Failed {
        /// Answers the level needs.
        needed: usize,
        /// Successful answers received.
        got: usize,
        /// The first replica error.
        error: String,
    },
}

/// What a request achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The write is on W replicas, at this version.
    Written(Version),
    /// The newest record among R answers (tombstones and expired values
    /// included: the caller decides what reads as absent).
    Read(Option<Record>),
}

/// What the shell must do.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Send `mutation` to `to`'s owning shard; its ack comes back as `on_write_ack(to, op)`.
    SendWrite {
        /// Destination node.
        to: NodeId,
        /// The op the ack belongs to.
        op: OpId,
        /// The write.
        mutation: Rc<Mutation>,
    },
    /// Send a read of `key` to `to`; the answer comes back as `on_read_reply(to, op)`.
    SendRead {
        /// Destination node.
        to: NodeId,
        /// The op the answer belongs to.
        op: OpId,
        /// The key.
        key: Rc<[u8]>,
    },
    /// Apply the write locally, then call `on_write_ack(self node, op)`.
    LocalWrite {
        /// The op the ack belongs to.
        op: OpId,
        /// The write.
        mutation: Rc<Mutation>,
    },
    /// Read locally, then call `on_read_reply(self node, op)`.
    LocalRead {
        /// The op the answer belongs to.
        op: OpId,
        /// The key.
        key: Rc<[u8]>,
    },
    /// Store a hint: `mutation` must reach `target` later ([`crate::hints`]).
    StoreHint {
        /// The replica that missed the write.
        target: NodeId,
        /// The write.
        mutation: Rc<Mutation>,
    },
    /// A replayed hint was acked: delete it ([`crate::hints::delivered_version`]).
    HintDelivered {
        /// The replica that now has the write.
        target: NodeId,
        /// The write.
        mutation: Rc<Mutation>,
    },
    /// The answer to a `write` or `read`, exactly once per such op.
    Reply {
        /// The op.
        op: OpId,
        /// Its result.
        result: Result<Outcome, CoordError>,
    },
}

/// Counters since the coordinator was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoordinatorStats {
    /// Writes started.
    pub writes: u64,
    /// Reads started.
    pub reads: u64,
    /// Requests refused as unavailable.
    pub unavailable: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Requests failed by replica errors.
    pub failures: u64,
    /// Hints stored.
    pub hints_stored: u64,
    /// Hints delivered by replay.
    pub hints_delivered: u64,
    /// Read-repair writes sent.
    pub read_repairs: u64,
}

const RF_MAX: usize = REPLICATION_FACTOR_MAX as usize;

/// Where one replica of an op stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Sent, no answer yet.
    Pending,
    /// Acked a write.
    Acked,
    /// Answered a read: the version it holds (`None`: no record).
    Answered(Option<Version>),
    /// Errored, timed out or went down (hinted when hints apply).
    Failed,
}

/// The replicas an op waits on, inline (no allocation).
#[derive(Debug, Clone)]
struct Slots {
    nodes: [NodeId; RF_MAX],
    states: [Slot; RF_MAX],
    len: usize,
}

impl Slots {
    fn new() -> Self {
        Slots {
            nodes: [0; RF_MAX],
            states: [Slot::Failed; RF_MAX],
            len: 0,
        }
    }

    fn push(&mut self, node: NodeId, state: Slot) {
        assert!(
            self.len < RF_MAX,
            "more targets than the replication factor max"
        );
        self.nodes[self.len] = node;
        self.states[self.len] = state;
        self.len += 1;
    }

    /// Index of `node` if it is still pending.
    fn pending_index(&self, node: NodeId) -> Option<usize> {
        (0..self.len).find(|&i| self.nodes[i] == node && self.states[i] == Slot::Pending)
    }

    fn pending(&self) -> usize {
        self.states[..self.len]
            .iter()
            .filter(|s| **s == Slot::Pending)
            .count()
    }
}

/// One op in flight.
#[derive(Debug)]
enum Op {
    Write(WriteOp),
    Read(ReadOp),
}

/// The quorum state machine of one shard. Not `Send` (one per shard thread).
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    next_op: OpId,
    /// Ordered, so effects that visit many ops come out in a deterministic
    /// order (the simulator replays a seed exactly).
    ops: BTreeMap<OpId, Op>,
    /// (deadline, op) of every pending op.
    deadlines: BTreeSet<(u64, OpId)>,
    stats: CoordinatorStats,
}

impl Coordinator {
    /// A coordinator with nothing in flight.
    pub fn new(config: CoordinatorConfig) -> Self {
        Coordinator {
            config,
            next_op: 1,
            ops: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            stats: CoordinatorStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// A fresh op id: sequential from 1, skipping 0 on wrap.
    fn next_op_id(&mut self) -> OpId {
        let op = self.next_op;
        self.next_op = self.next_op.wrapping_add(1).max(1);
        op
    }

    fn is_alive(&self, node: NodeId, live: &impl Liveness) -> bool {
        node == self.config.node || live.is_up(node)
    }

    fn insert(&mut self, op: OpId, deadline: u64, entry: Op) {
        let fresh = self.deadlines.insert((deadline, op));
        assert!(
            fresh && self.ops.insert(op, entry).is_none(),
            "op id reused"
        );
    }

    fn remove(&mut self, op: OpId) {
        if let Some(entry) = self.ops.remove(&op) {
            let deadline = match &entry {
                Op::Write(w) => w.deadline,
                Op::Read(r) => r.deadline,
            };
            let was = self.deadlines.remove(&(deadline, op));
            assert!(was, "pending op without a deadline");
        }
    }

    /// Acknowledgement (or error) of a write sent as `op` to `from`. Acks for
    /// unknown or finished ops, or from nodes not waited on, are ignored.
    pub fn on_write_ack(
        &mut self,
        _now_ms: u64,
        from: NodeId,
        op: OpId,
        result: Result<(), String>,
        out: &mut Vec<Effect>,
    ) {
        let Some(Op::Write(w)) = self.ops.get_mut(&op) else {
            return;
        };
        w.on_ack(op, from, result, &self.config, &mut self.stats, out);
        if w.is_done() {
            self.remove(op);
        }
    }

    /// Answer (or error) of a read sent as `op` to `from`. Answers for
    /// unknown or finished ops, or from nodes not asked, are ignored.
    pub fn on_read_reply(
        &mut self,
        _now_ms: u64,
        from: NodeId,
        op: OpId,
        result: Result<Option<Record>, String>,
        out: &mut Vec<Effect>,
    ) {
        let Some(Op::Read(r)) = self.ops.get_mut(&op) else {
            return;
        };
        r.on_reply(op, from, result, &mut self.stats, out);
        if r.is_done() {
            self.finish(op, out);
        }
    }

    /// Everything outstanding at `node` fails now (and is hinted), instead of
    /// waiting for the timeout.
    pub fn on_peer_down(&mut self, _now_ms: u64, node: NodeId, out: &mut Vec<Effect>) {
        if node == self.config.node {
            return;
        }
        let error = format!("node {node} is down");
        let mut affected: Vec<OpId> = Vec::new();
        for (&op, entry) in self.ops.iter_mut() {
            match entry {
                Op::Write(w) => {
                    w.on_peer_down(op, node, &error, &self.config, &mut self.stats, out)
                }
                Op::Read(r) => r.on_peer_down(op, node, &error, &mut self.stats, out),
            }
            let done = match entry {
                Op::Write(w) => w.is_done(),
                Op::Read(r) => r.is_done(),
            };
            if done {
                affected.push(op);
            }
        }
        for op in affected {
            self.finish(op, out);
        }
    }

    /// Expires every op whose deadline is `<= now_ms`.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        while let Some(&(deadline, op)) = self.deadlines.first() {
            if deadline > now_ms {
                break;
            }
            match self.ops.get_mut(&op) {
                Some(Op::Write(w)) => w.on_deadline(op, &self.config, &mut self.stats, out),
                Some(Op::Read(r)) => r.on_deadline(op, &self.config, &mut self.stats, out),
                None => {}
            }
            self.finish(op, out);
        }
    }

    /// Removes a finished op, sending its read repairs if it is a read.
    fn finish(&mut self, op: OpId, out: &mut Vec<Effect>) {
        let repairs = match self.ops.get(&op) {
            Some(Op::Read(r)) => r.repairs(),
            _ => None,
        };
        self.remove(op);
        self.send_repairs(repairs, out);
    }

    /// The earliest deadline of any pending op: call [`Coordinator::tick`] then.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|&(d, _)| d)
    }

    /// Ops in flight (including ops already answered that still wait on
    /// replicas, for hints and read repair).
    pub fn pending(&self) -> usize {
        self.ops.len()
    }

    /// Counters since creation.
    pub fn stats(&self) -> CoordinatorStats {
        self.stats
    }
}
