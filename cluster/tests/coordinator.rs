//! The coordinator's rules, one test per rule, driven by hand.

use ringkv_cluster::{
    default_tokens, CoordError, Coordinator, CoordinatorConfig, Effect, Level, Mutation, NodeId,
    NodeInfo, Outcome, ReadFanout, Record, Ring, Version,
};

const ME: NodeId = 1;
const T0: u64 = 1_000;
const TIMEOUT: u64 = 100;

fn ring_of(ids: &[NodeId], rf: u32) -> Ring {
    let nodes = ids
        .iter()
        .map(|&id| NodeInfo {
            id,
            host: "127.0.0.1".into(),
            port: 7000 + id as u16,
            shards: 1,
            rack: String::new(),
            tokens: default_tokens(id, 64),
        })
        .collect();
    Ring::new(nodes, rf).unwrap()
}

fn coordinator() -> Coordinator {
    Coordinator::new(CoordinatorConfig {
        node: ME,
        request_timeout_ms: TIMEOUT,
        read_fanout: ReadFanout::All,
        hints: true,
    })
}

fn all_up(_: NodeId) -> bool {
    true
}

fn mutation(hlc: u64) -> Mutation {
    Mutation {
        key: b"k".to_vec(),
        record: rec(hlc),
    }
}

fn rec(hlc: u64) -> Record {
    Record::put(Version { hlc, node: ME }, hlc.to_le_bytes().to_vec(), 0)
}

/// A compact view of an effect, for assertions.
#[derive(Debug, PartialEq, Eq)]
enum E {
    Send(NodeId),
    SendRead(NodeId),
    Local,
    LocalRead,
    Hint(NodeId),
    Delivered(NodeId),
    Written(Version),
    Read(Option<Record>),
    Err(CoordError),
}

fn view(out: &mut Vec<Effect>) -> Vec<E> {
    out.drain(..)
        .map(|e| match e {
            Effect::SendWrite { to, .. } => E::Send(to),
            Effect::SendRead { to, .. } => E::SendRead(to),
            Effect::LocalWrite { .. } => E::Local,
            Effect::LocalRead { .. } => E::LocalRead,
            Effect::StoreHint { target, .. } => E::Hint(target),
            Effect::HintDelivered { target, .. } => E::Delivered(target),
            Effect::Reply {
                result: Ok(Outcome::Written(v)),
                ..
            } => E::Written(v),
            Effect::Reply {
                result: Ok(Outcome::Read(r)),
                ..
            } => E::Read(r),
            Effect::Reply { result: Err(e), .. } => E::Err(e),
        })
        .collect()
}

#[test]
fn too_few_live_replicas_answer_unavailable_at_once_and_nothing_else() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let only_me = |n: NodeId| n == ME;
    c.write(T0, &ring, &only_me, 7, mutation(1), Level::Quorum, &mut out);
    assert_eq!(
        view(&mut out),
        [E::Err(CoordError::Unavailable {
            needed: 2,
            alive: 1
        })]
    );
    let one_down = |n: NodeId| n != 3;
    c.read(T0, &ring, &one_down, 7, b"k".to_vec(), Level::All, &mut out);
    assert_eq!(
        view(&mut out),
        [E::Err(CoordError::Unavailable {
            needed: 3,
            alive: 2
        })]
    );
    assert_eq!(c.pending(), 0);
    assert_eq!(c.stats().unavailable, 2);
    assert_eq!(
        CoordError::Unavailable {
            needed: 2,
            alive: 1
        }
        .to_string(),
        "unavailable: needed 2, got 1"
    );
    assert_eq!(
        CoordError::Timeout {
            needed: 2,
            got: 1,
            ms: 100
        }
        .to_string(),
        "timeout: needed 2, got 1 within 100 ms"
    );
}

#[test]
fn op_ids_are_sequential_from_one() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    assert_eq!(
        c.write(T0, &ring, &all_up, 7, mutation(1), Level::One, &mut out),
        1
    );
    assert_eq!(
        c.read(T0, &ring, &all_up, 7, b"k".to_vec(), Level::One, &mut out),
        2
    );
    assert_eq!(c.replay_hint(T0, 2, mutation(1), &mut out), 3);
}

#[test]
fn a_write_goes_to_every_replica_and_replies_on_the_wth_ack_once() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write(T0, &ring, &all_up, 7, mutation(5), Level::Quorum, &mut out);
    let mut sent = view(&mut out);
    sent.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(sent, [E::Local, E::Send(2), E::Send(3)]);
    c.on_write_ack(T0, ME, op, Ok(()), &mut out);
    assert_eq!(view(&mut out), []);
    c.on_write_ack(T0, 2, op, Ok(()), &mut out);
    assert_eq!(view(&mut out), [E::Written(rec(5).version)]);
    c.on_write_ack(T0, 2, op, Ok(()), &mut out); // duplicate
    c.on_write_ack(T0, 3, op, Ok(()), &mut out);
    assert_eq!(view(&mut out), []);
    assert_eq!(c.pending(), 0);
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn a_down_replica_is_hinted_at_once_and_never_sent_to() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write(
        T0,
        &ring,
        &|n: NodeId| n != 3,
        7,
        mutation(5),
        Level::Quorum,
        &mut out,
    );
    let mut sent = view(&mut out);
    sent.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(sent, [E::Hint(3), E::Local, E::Send(2)]);
    c.on_write_ack(T0, ME, op, Ok(()), &mut out);
    c.on_write_ack(T0, 2, op, Ok(()), &mut out);
    assert_eq!(view(&mut out), [E::Written(rec(5).version)]);
    assert_eq!(c.pending(), 0);
    assert_eq!(c.stats().hints_stored, 1);
}

#[test]
fn an_error_ack_is_hinted_and_fails_the_write_once_w_is_unreachable() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write(T0, &ring, &all_up, 7, mutation(5), Level::All, &mut out);
    out.clear();
    c.on_write_ack(T0, 2, op, Err("disk full".into()), &mut out);
    let failed = CoordError::Failed {
        needed: 3,
        got: 0,
        error: "disk full".into(),
    };
    assert_eq!(view(&mut out), [E::Hint(2), E::Err(failed)]);
    c.on_write_ack(T0, ME, op, Err("disk full".into()), &mut out);
    assert_eq!(view(&mut out), [], "no hint for this node, no second reply");
    c.on_write_ack(T0, 3, op, Ok(()), &mut out);
    assert_eq!(view(&mut out), []);
    assert_eq!(c.pending(), 0);
    assert_eq!(c.stats().failures, 1);
}

#[test]
fn a_write_without_w_acks_at_the_deadline_times_out_and_hints_the_silent() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write(T0, &ring, &all_up, 7, mutation(5), Level::Quorum, &mut out);
    out.clear();
    c.on_write_ack(T0, ME, op, Ok(()), &mut out);
    assert_eq!(c.next_deadline(), Some(T0 + TIMEOUT));
    c.tick(T0 + TIMEOUT - 1, &mut out);
    assert_eq!(view(&mut out), []);
    c.tick(T0 + TIMEOUT, &mut out);
    let timeout = CoordError::Timeout {
        needed: 2,
        got: 1,
        ms: TIMEOUT,
    };
    assert_eq!(view(&mut out), [E::Err(timeout), E::Hint(2), E::Hint(3)]);
    assert_eq!(c.pending(), 0);
    c.on_write_ack(T0 + TIMEOUT, 2, op, Ok(()), &mut out);
    assert_eq!(view(&mut out), [], "late ack ignored");
    assert_eq!(c.stats().timeouts, 1);
}

#[test]
fn a_replica_silent_after_the_reply_is_hinted_at_the_deadline_without_a_second_reply() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write(T0, &ring, &all_up, 7, mutation(5), Level::Quorum, &mut out);
    c.on_write_ack(T0, ME, op, Ok(()), &mut out);
    c.on_write_ack(T0, 3, op, Ok(()), &mut out);
    out.clear();
    assert_eq!(c.pending(), 1);
    c.tick(T0 + TIMEOUT, &mut out);
    assert_eq!(view(&mut out), [E::Hint(2)]);
    assert_eq!(c.pending(), 0);
}

#[test]
fn a_peer_reported_down_is_hinted_now_and_fails_the_write_when_w_is_lost() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.write(T0, &ring, &all_up, 7, mutation(5), Level::Quorum, &mut out);
    out.clear();
    c.on_write_ack(T0, ME, op, Ok(()), &mut out);
    c.on_peer_down(T0, 2, &mut out);
    assert_eq!(view(&mut out), [E::Hint(2)]);
    c.on_peer_down(T0, 3, &mut out);
    let failed = CoordError::Failed {
        needed: 2,
        got: 1,
        error: "node 2 is down".into(),
    };
    assert_eq!(view(&mut out), [E::Hint(3), E::Err(failed)]);
    assert_eq!(c.pending(), 0);
    c.on_peer_down(T0, 3, &mut out);
    c.tick(T0 + TIMEOUT, &mut out);
    assert_eq!(view(&mut out), []);
}

#[test]
fn with_hints_off_nothing_is_hinted() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = Coordinator::new(CoordinatorConfig {
        hints: false,
        ..CoordinatorConfig::new(ME)
    });
    let mut out = Vec::new();
    let op = c.write(
        T0,
        &ring,
        &|n: NodeId| n != 3,
        7,
        mutation(5),
        Level::Quorum,
        &mut out,
    );
    c.on_write_ack(T0, 2, op, Err("x".into()), &mut out);
    c.tick(T0 + 10_000, &mut out);
    assert!(view(&mut out).iter().all(|e| !matches!(e, E::Hint(_))));
    assert_eq!(c.stats().hints_stored, 0);
}

#[test]
fn a_read_answers_the_newest_of_r_and_repairs_stale_answerers_including_itself() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read(
        T0,
        &ring,
        &all_up,
        7,
        b"k".to_vec(),
        Level::Quorum,
        &mut out,
    );
    let sent = view(&mut out);
    assert_eq!(sent[0], E::LocalRead, "this node first");
    assert_eq!(sent.len(), 3);
    c.on_read_reply(T0, ME, op, Ok(Some(rec(1))), &mut out);
    assert_eq!(view(&mut out), []);
    c.on_read_reply(T0, 2, op, Ok(Some(rec(2))), &mut out);
    assert_eq!(view(&mut out), [E::Read(Some(rec(2)))]);
    c.on_read_reply(T0, 3, op, Ok(None), &mut out);
    // Every target answered: repair this node (older) and node 3 (nothing).
    let repairs = std::mem::take(&mut out);
    assert_eq!(repairs.len(), 2);
    for e in &repairs {
        match e {
            Effect::LocalWrite { op: rop, mutation }
            | Effect::SendWrite {
                op: rop, mutation, ..
            } => {
                assert_ne!(*rop, op);
                assert_eq!(mutation.record, rec(2));
                assert_eq!(mutation.key, b"k");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(repairs[1], Effect::SendWrite { to: 3, .. }));
    assert_eq!(c.stats().read_repairs, 2);
    assert_eq!(c.pending(), 0);
    // Acks of repairs are ignored.
    for e in repairs {
        if let Effect::SendWrite { to, op, .. } = e {
            c.on_write_ack(T0, to, op, Err("x".into()), &mut out);
        }
    }
    assert_eq!(view(&mut out), []);
}

#[test]
fn a_read_repairs_only_answerers_when_the_deadline_passes() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read(
        T0,
        &ring,
        &all_up,
        7,
        b"k".to_vec(),
        Level::Quorum,
        &mut out,
    );
    out.clear();
    c.on_read_reply(T0, ME, op, Ok(Some(rec(3))), &mut out);
    c.on_read_reply(T0, 2, op, Ok(Some(rec(2))), &mut out);
    assert_eq!(view(&mut out), [E::Read(Some(rec(3)))]);
    c.tick(T0 + TIMEOUT, &mut out);
    assert_eq!(view(&mut out), [E::Send(2)]);
    assert_eq!(c.pending(), 0);
}

#[test]
fn a_read_with_equal_answers_repairs_nothing() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read(T0, &ring, &all_up, 7, b"k".to_vec(), Level::All, &mut out);
    out.clear();
    for n in [1, 2, 3] {
        c.on_read_reply(T0, n, op, Ok(Some(rec(4))), &mut out);
    }
    assert_eq!(view(&mut out), [E::Read(Some(rec(4)))]);
    let op = c.read(T0, &ring, &all_up, 7, b"k".to_vec(), Level::All, &mut out);
    out.clear();
    for n in [1, 2, 3] {
        c.on_read_reply(T0, n, op, Ok(None), &mut out);
    }
    assert_eq!(view(&mut out), [E::Read(None)]);
}

#[test]
fn a_read_times_out_or_fails_when_r_cannot_be_reached() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read(
        T0,
        &ring,
        &all_up,
        7,
        b"k".to_vec(),
        Level::Quorum,
        &mut out,
    );
    out.clear();
    c.on_read_reply(T0, 2, op, Err("io".into()), &mut out);
    assert_eq!(view(&mut out), []);
    c.on_read_reply(T0, 3, op, Err("io2".into()), &mut out);
    let failed = CoordError::Failed {
        needed: 2,
        got: 0,
        error: "io".into(),
    };
    assert_eq!(view(&mut out), [E::Err(failed)]);
    c.on_read_reply(T0, ME, op, Ok(None), &mut out);
    assert_eq!(view(&mut out), []);
    assert_eq!(c.pending(), 0);

    let op = c.read(
        T0,
        &ring,
        &all_up,
        7,
        b"k".to_vec(),
        Level::Quorum,
        &mut out,
    );
    out.clear();
    c.on_read_reply(T0, ME, op, Ok(None), &mut out);
    c.tick(T0 + TIMEOUT, &mut out);
    let timeout = CoordError::Timeout {
        needed: 2,
        got: 1,
        ms: TIMEOUT,
    };
    assert_eq!(view(&mut out), [E::Err(timeout)]);
    assert_eq!(c.pending(), 0);
}

#[test]
fn a_read_at_one_on_a_replica_asks_only_this_node() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.read(T0, &ring, &all_up, 7, b"k".to_vec(), Level::One, &mut out);
    assert_eq!(view(&mut out), [E::LocalRead]);
    c.on_read_reply(T0, ME, op, Ok(Some(rec(1))), &mut out);
    assert_eq!(view(&mut out), [E::Read(Some(rec(1)))]);
    assert_eq!(c.pending(), 0);
}

#[test]
fn a_read_on_a_non_replica_asks_the_live_replicas() {
    let ring = ring_of(&[1, 2, 3, 4, 5], 3);
    // A token whose replicas do not include this node.
    let token = (0..)
        .map(|i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .find(|&t| !ring.is_replica(t, ME))
        .unwrap();
    let replicas = ring.replicas(token);
    let mut c = coordinator();
    let mut out = Vec::new();
    c.read(
        T0,
        &ring,
        &all_up,
        token,
        b"k".to_vec(),
        Level::One,
        &mut out,
    );
    let want: Vec<E> = replicas.iter().map(E::SendRead).collect();
    assert_eq!(view(&mut out), want);
}

#[test]
fn required_fanout_asks_only_r_replicas_this_node_first() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = Coordinator::new(CoordinatorConfig {
        read_fanout: ReadFanout::Required,
        ..CoordinatorConfig::new(ME)
    });
    let mut out = Vec::new();
    c.read(
        T0,
        &ring,
        &all_up,
        7,
        b"k".to_vec(),
        Level::Quorum,
        &mut out,
    );
    let sent = view(&mut out);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], E::LocalRead);
}

#[test]
fn unknown_and_mismatched_acks_are_ignored() {
    let ring = ring_of(&[1, 2, 3], 3);
    let mut c = coordinator();
    let mut out = Vec::new();
    c.on_write_ack(T0, 2, 99, Ok(()), &mut out);
    c.on_read_reply(T0, 2, 99, Ok(None), &mut out);
    let w = c.write(T0, &ring, &all_up, 7, mutation(5), Level::All, &mut out);
    let r = c.read(T0, &ring, &all_up, 7, b"k".to_vec(), Level::All, &mut out);
    out.clear();
    c.on_read_reply(T0, 2, w, Ok(None), &mut out); // a read answer for a write op
    c.on_write_ack(T0, 2, r, Ok(()), &mut out); // a write ack for a read op
    c.on_write_ack(T0, 9, w, Ok(()), &mut out); // not a replica
    c.on_peer_down(T0, ME, &mut out); // this node is never "down"
    assert_eq!(view(&mut out), []);
    assert_eq!(c.pending(), 2);
}

#[test]
fn a_replayed_hint_reports_delivery_on_ack_and_nothing_otherwise() {
    let mut c = coordinator();
    let mut out = Vec::new();
    let op = c.replay_hint(T0, 2, mutation(5), &mut out);
    assert_eq!(view(&mut out), [E::Send(2)]);
    c.on_write_ack(T0, 2, op, Ok(()), &mut out);
    assert_eq!(view(&mut out), [E::Delivered(2)]);
    assert_eq!(c.stats().hints_delivered, 1);

    let op = c.replay_hint(T0, 2, mutation(5), &mut out);
    out.clear();
    c.on_write_ack(T0, 2, op, Err("busy".into()), &mut out);
    assert_eq!(view(&mut out), []);
    c.replay_hint(T0, 3, mutation(5), &mut out);
    c.replay_hint(T0, 2, mutation(6), &mut out);
    out.clear();
    c.on_peer_down(T0, 2, &mut out);
    c.tick(T0 + TIMEOUT, &mut out);
    assert_eq!(view(&mut out), []);
    assert_eq!(c.pending(), 0);
    assert_eq!(c.stats().hints_stored, 0);
}
