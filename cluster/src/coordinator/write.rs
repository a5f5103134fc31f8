//! Writes and hint replays: send to replicas, count acks, hint the missing.

use super::{
    CoordError, Coordinator, CoordinatorConfig, CoordinatorStats, Effect, Liveness, Op, OpId,
    Outcome, Slot, Slots,
};
use crate::consistency::Level;
use crate::record::{Mutation, NodeId};
use crate::ring::{ReplicaSet, Ring};
use std::rc::Rc;

/// Why a write op exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A client write: replies once, hints replicas that miss it.
    Client,
    /// A hint replay to `target`: no reply, no hint; an ack deletes the hint.
    Replay { target: NodeId },
}

/// A write in flight.
#[derive(Debug)]
pub(super) struct WriteOp {
    kind: Kind,
    mutation: Rc<Mutation>,
    needed: usize,
    acks: usize,
    replied: bool,
    first_error: Option<String>,
    slots: Slots,
    pub(super) deadline: u64,
}

impl WriteOp {
    /// Whether no replica is outstanding (the op can be forgotten).
    pub(super) fn is_done(&self) -> bool {
        self.slots.pending() == 0
    }

    pub(super) fn on_ack(
        &mut self,
        op: OpId,
        from: NodeId,
        result: Result<(), String>,
        config: &CoordinatorConfig,
        stats: &mut CoordinatorStats,
        out: &mut Vec<Effect>,
    ) {
        let Some(i) = self.slots.pending_index(from) else {
            return;
        };
        match result {
            Ok(()) => {
                self.slots.states[i] = Slot::Acked;
                self.acks += 1;
                match self.kind {
                    Kind::Client => {
                        if !self.replied && self.acks >= self.needed {
                            self.replied = true;
                            let version = self.mutation.record.version;
                            out.push(Effect::Reply {
                                op,
                                result: Ok(Outcome::Written(version)),
                            });
                        }
                    }
                    Kind::Replay { target } => {
                        stats.hints_delivered += 1;
                        out.push(Effect::HintDelivered {
                            target,
                            mutation: Rc::clone(&self.mutation),
                        });
                    }
                }
            }
            Err(error) => self.fail_slot(op, i, error, config, stats, out),
        }
    }

    pub(super) fn on_peer_down(
        &mut self,
        op: OpId,
        node: NodeId,
        error: &str,
        config: &CoordinatorConfig,
        stats: &mut CoordinatorStats,
        out: &mut Vec<Effect>,
    ) {
        if let Some(i) = self.slots.pending_index(node) {
            self.fail_slot(op, i, error.to_string(), config, stats, out);
        }
    }

    /// The deadline passed: reply Timeout if not answered yet, hint every
    /// replica still outstanding.
    pub(super) fn on_deadline(
        &mut self,
        op: OpId,
        config: &CoordinatorConfig,
        stats: &mut CoordinatorStats,
        out: &mut Vec<Effect>,
    ) {
        if self.kind == Kind::Client && !self.replied {
            self.replied = true;
            stats.timeouts += 1;
            out.push(Effect::Reply {
                op,
                result: Err(CoordError::Timeout {
                    needed: self.needed,
                    got: self.acks,
                    ms: config.request_timeout_ms,
                }),
            });
        }
        for i in 0..self.slots.len {
            if self.slots.states[i] == Slot::Pending {
                self.fail_slot(op, i, "timeout".to_string(), config, stats, out);
            }
        }
    }

    /// Replica `i` will not ack: hint it (client writes, hints on, not this
    /// node) and reply Failed if W can no longer be reached.
    fn fail_slot(
        &mut self,
        op: OpId,
        i: usize,
        error: String,
        config: &CoordinatorConfig,
        stats: &mut CoordinatorStats,
        out: &mut Vec<Effect>,
    ) {
        assert_eq!(self.slots.states[i], Slot::Pending);
        self.slots.states[i] = Slot::Failed;
        if self.kind != Kind::Client {
            return;
        }
        let node = self.slots.nodes[i];
        if config.hints && node != config.node {
            stats.hints_stored += 1;
            out.push(Effect::StoreHint {
                target: node,
                mutation: Rc::clone(&self.mutation),
            });
        }
        let first = self.first_error.get_or_insert(error);
        if !self.replied && self.acks + self.slots.pending() < self.needed {
            self.replied = true;
            stats.failures += 1;
            out.push(Effect::Reply {
                op,
                result: Err(CoordError::Failed {
                    needed: self.needed,
                    got: self.acks,
                    error: first.clone(),
                }),
            });
        }
    }
}

impl Coordinator {
    /// Starts a write of `mutation` (already stamped) to the replicas of
    /// `token` at `level`. Emits the sends, local write and hints for down
    /// replicas, or only `Reply(Err(Unavailable))` when too few replicas are
    /// alive. The `Reply` comes later (or now, for Unavailable).
    #[allow(clippy::too_many_arguments)] // the signature is the shared API
    pub fn write(
        &mut self,
        now_ms: u64,
        ring: &Ring,
        live: &impl Liveness,
        token: u64,
        mutation: Mutation,
        level: Level,
        out: &mut Vec<Effect>,
    ) -> OpId {
        let op = self.next_op_id();
        self.stats.writes += 1;
        let replicas = ring.replicas(token);
        let needed = level.required(replicas.len());
        let alive = replicas.iter().filter(|&r| self.is_alive(r, live)).count();
        if alive < needed {
            self.stats.unavailable += 1;
            out.push(Effect::Reply {
                op,
                result: Err(CoordError::Unavailable { needed, alive }),
            });
            return op;
        }
        let mutation = Rc::new(mutation);
        let mut slots = Slots::new();
        for node in replicas.iter() {
            if !self.is_alive(node, live) {
                if self.config.hints {
                    self.stats.hints_stored += 1;
                    out.push(Effect::StoreHint {
                        target: node,
                        mutation: Rc::clone(&mutation),
                    });
                }
                continue;
            }
            slots.push(node, Slot::Pending);
            out.push(self.send_write(node, op, Rc::clone(&mutation)));
        }
        let deadline = now_ms.saturating_add(self.config.request_timeout_ms);
        let entry = WriteOp {
            kind: Kind::Client,
            mutation,
            needed,
            acks: 0,
            replied: false,
            first_error: None,
            slots,
            deadline,
        };
        self.insert(op, deadline, Op::Write(entry));
        op
    }

    /// Replays one stored hint to `target`: emits `SendWrite`; on ack emits
    /// `HintDelivered`; on error, peer down or timeout nothing (the hint
    /// stays and the shell retries later). Never a `Reply` or `StoreHint`.
    pub fn replay_hint(
        &mut self,
        now_ms: u64,
        target: NodeId,
        mutation: Mutation,
        out: &mut Vec<Effect>,
    ) -> OpId {
        let op = self.next_op_id();
        let mutation = Rc::new(mutation);
        out.push(self.send_write(target, op, Rc::clone(&mutation)));
        let mut slots = Slots::new();
        slots.push(target, Slot::Pending);
        let deadline = now_ms.saturating_add(self.config.request_timeout_ms);
        let entry = WriteOp {
            kind: Kind::Replay { target },
            mutation,
            needed: 1,
            acks: 0,
            replied: false,
            first_error: None,
            slots,
            deadline,
        };
        self.insert(op, deadline, Op::Write(entry));
        op
    }

    /// `LocalWrite` for this node, `SendWrite` for any other.
    pub(super) fn send_write(&self, to: NodeId, op: OpId, mutation: Rc<Mutation>) -> Effect {
        if to == self.config.node {
            Effect::LocalWrite { op, mutation }
        } else {
            Effect::SendWrite { to, op, mutation }
        }
    }

    /// Sends read-repair writes (fresh op ids, acks ignored, never hinted).
    pub(super) fn send_repairs(
        &mut self,
        repairs: Option<(Rc<Mutation>, ReplicaSet)>,
        out: &mut Vec<Effect>,
    ) {
        let Some((mutation, nodes)) = repairs else {
            return;
        };
        for node in nodes.iter() {
            let op = self.next_op_id();
            self.stats.read_repairs += 1;
            out.push(self.send_write(node, op, Rc::clone(&mutation)));
        }
    }
}
