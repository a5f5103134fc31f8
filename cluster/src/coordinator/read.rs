//! Reads: ask replicas, answer with the newest record after R answers, then
//! repair the answerers that returned an older one.

use super::{
    CoordError, Coordinator, CoordinatorConfig, CoordinatorStats, Effect, Liveness, Op, OpId,
    Outcome, ReadFanout, Slot, Slots,
};
use crate::consistency::Level;
use crate::record::{Mutation, NodeId, Record};
use crate::ring::{ReplicaSet, Ring};
use std::rc::Rc;

/// A read in flight.
#[derive(Debug)]
pub(super) struct ReadOp {
    key: Rc<[u8]>,
    needed: usize,
    answers: usize,
    replied: bool,
    first_error: Option<String>,
    slots: Slots,
    /// The newest record any target answered.
    newest: Option<Record>,
    pub(super) deadline: u64,
}

impl ReadOp {
    /// Whether every target answered or failed (the op can be finalised).
    pub(super) fn is_done(&self) -> bool {
        self.slots.pending() == 0
    }

    pub(super) fn on_reply(
        &mut self,
        op: OpId,
        from: NodeId,
        result: Result<Option<Record>, String>,
        stats: &mut CoordinatorStats,
        out: &mut Vec<Effect>,
    ) {
        let Some(i) = self.slots.pending_index(from) else {
            return;
        };
        match result {
            Ok(record) => {
                self.slots.states[i] = Slot::Answered(record.as_ref().map(|r| r.version));
                self.answers += 1;
                if let Some(r) = record {
                    if self.newest.as_ref().is_none_or(|n| r.version > n.version) {
                        self.newest = Some(r);
                    }
                }
                if !self.replied && self.answers >= self.needed {
                    self.replied = true;
                    out.push(Effect::Reply {
                        op,
                        result: Ok(Outcome::Read(self.newest.clone())),
                    });
                }
            }
            Err(error) => self.fail_slot(op, i, error, stats, out),
        }
    }

    pub(super) fn on_peer_down(
        &mut self,
        op: OpId,
        node: NodeId,
        error: &str,
        stats: &mut CoordinatorStats,
        out: &mut Vec<Effect>,
    ) {
        if let Some(i) = self.slots.pending_index(node) {
            self.fail_slot(op, i, error.to_string(), stats, out);
        }
    }

    /// The deadline passed: reply Timeout if not answered yet; targets still
    /// outstanding are given up on (the caller then finalises).
    pub(super) fn on_deadline(
        &mut self,
        op: OpId,
        config: &CoordinatorConfig,
        stats: &mut CoordinatorStats,
        out: &mut Vec<Effect>,
    ) {
        if !self.replied {
            self.replied = true;
            stats.timeouts += 1;
            out.push(Effect::Reply {
                op,
                result: Err(CoordError::Timeout {
                    needed: self.needed,
                    got: self.answers,
                    ms: config.request_timeout_ms,
                }),
            });
        }
        for state in &mut self.slots.states[..self.slots.len] {
            if *state == Slot::Pending {
                *state = Slot::Failed;
            }
        }
    }

    fn fail_slot(
        &mut self,
        op: OpId,
        i: usize,
        error: String,
        stats: &mut CoordinatorStats,
        out: &mut Vec<Effect>,
    ) {
        assert_eq!(self.slots.states[i], Slot::Pending);
        self.slots.states[i] = Slot::Failed;
        let first = self.first_error.get_or_insert(error);
        if !self.replied && self.answers + self.slots.pending() < self.needed {
            self.replied = true;
            stats.failures += 1;
            out.push(Effect::Reply {
                op,
                result: Err(CoordError::Failed {
                    needed: self.needed,
                    got: self.answers,
                    error: first.clone(),
                }),
            });
        }
    }

    /// Read repair: the newest record and every answerer that returned an
    /// older one (or none). `None` when nobody is stale.
    pub(super) fn repairs(&self) -> Option<(Rc<Mutation>, ReplicaSet)> {
        let newest = self.newest.as_ref()?;
        let mut stale = ReplicaSet::EMPTY;
        for i in 0..self.slots.len {
            if let Slot::Answered(v) = self.slots.states[i] {
                if v < Some(newest.version) {
                    stale.push(self.slots.nodes[i]);
                }
            }
        }
        if stale.is_empty() {
            return None;
        }
        let mutation = Mutation {
            key: self.key.to_vec(),
            record: newest.clone(),
        };
        Some((Rc::new(mutation), stale))
    }
}

impl Coordinator {
    /// Starts a read of `key` (whose token is `token`) at `level`. Emits the
    /// reads (this node's as `LocalRead`, first), or only
    /// `Reply(Err(Unavailable))` when too few replicas are alive.
    #[allow(clippy::too_many_arguments)] // the signature is the shared API
    pub fn read(
        &mut self,
        now_ms: u64,
        ring: &Ring,
        live: &impl Liveness,
        token: u64,
        key: Vec<u8>,
        level: Level,
        out: &mut Vec<Effect>,
    ) -> OpId {
        let op = self.next_op_id();
        self.stats.reads += 1;
        let me = self.config.node;
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
        // Targets: this node first (a local read is cheapest), then the
        // alive replicas in ring order; ONE at a replica asks only this node.
        let count = if level == Level::One && replicas.contains(me) {
            1
        } else {
            match self.config.read_fanout {
                ReadFanout::All => alive,
                ReadFanout::Required => needed,
            }
        };
        let mine = replicas.contains(me).then_some(me);
        let others = replicas.iter().filter(|&r| r != me && live.is_up(r));
        let key: Rc<[u8]> = key.into();
        let mut slots = Slots::new();
        for node in mine.into_iter().chain(others).take(count) {
            slots.push(node, Slot::Pending);
            out.push(if node == me {
                Effect::LocalRead {
                    op,
                    key: Rc::clone(&key),
                }
            } else {
                Effect::SendRead {
                    to: node,
                    op,
                    key: Rc::clone(&key),
                }
            });
        }
        let deadline = now_ms.saturating_add(self.config.request_timeout_ms);
        let entry = ReadOp {
            key,
            needed,
            answers: 0,
            replied: false,
            first_error: None,
            slots,
            newest: None,
            deadline,
        };
        self.insert(op, deadline, Op::Read(entry));
        op
    }
}
