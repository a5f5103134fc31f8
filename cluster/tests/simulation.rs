//! A seeded, bounded simulation of three nodes (RF 3), each with its own
//! [`Coordinator`], an in-memory store (key → newest record) and an
//! in-memory hint store, over a network that delays, reorders, duplicates and
//! drops messages, while nodes are killed and revived.
//!
//! Clients write and read (mostly at QUORUM, sometimes ONE or ALL; some writes
//! are deletes); read fanout and hints are drawn per seed. Each client keeps a session version
//! (the highest it has seen) and coordinators stamp writes above it, using
//! per-node hybrid logical clocks with skew.
//!
//! Checks:
//! - every write acknowledged before a read starts, at a level whose W
//!   overlaps the read's R (W + R > 3), is visible to that read (the read
//!   returns its version or a higher one);
//! - a client's write is stamped above everything that client has seen;
//! - after healing, hint replay and an ALL read of every key, every
//!   replica holds the same newest record for every key, and no hint is left.
//!
//! Run one seed: `SIM_SEED=123 cargo test -p ringkv-cluster --test simulation`.
//! More seeds: `SIM_SEEDS=500`.

use rand::{rngs::SmallRng, Rng, SeedableRng};
use ringkv_cluster::{
    default_tokens, Coordinator, CoordinatorConfig, Effect, Level, Mutation, NodeId, NodeInfo,
    OpId, Outcome, ReadFanout, Record, Ring, Version,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::rc::Rc;

const NODES: NodeId = 3;
const KEYS: u32 = 12;
const CLIENTS: usize = 4;
const TIMEOUT_MS: u64 = 40;
const FAULT_PHASE_MS: u64 = 3_000;

#[derive(Debug)]
enum Body {
    Write {
        op: OpId,
        m: Rc<Mutation>,
    },
    WriteAck {
        op: OpId,
        result: Result<(), String>,
    },
    Read {
        op: OpId,
        key: Rc<[u8]>,
    },
    ReadReply {
        op: OpId,
        result: Result<Option<Record>, String>,
    },
}

#[derive(Debug)]
struct Msg {
    from: NodeId,
    from_inc: u32,
    to: NodeId,
    to_inc: u32,
    body: Body,
}

struct Node {
    id: NodeId,
    up: bool,
    /// Incarnation: bumped when the node dies, so messages of an old
    /// connection are not delivered to a new process.
    inc: u32,
    coord: Coordinator,
    store: HashMap<Vec<u8>, Record>,
    /// Durable hints: (target, key) → newest record.
    hints: BTreeMap<(NodeId, Vec<u8>), Record>,
    hlc_last: u64,
    skew_ms: u64,
}

#[derive(Debug, Clone)]
enum Req {
    Write {
        client: usize,
        key: Vec<u8>,
        /// Acks the level needs (W).
        w: usize,
        /// The client's session when it sent the write.
        session: Version,
    },
    Read {
        client: usize,
        key: Vec<u8>,
        floor: Version,
    },
}

struct Client {
    session: Version,
    busy: bool,
}

struct Sim {
    seed: u64,
    rng: SmallRng,
    now: u64,
    ring: Ring,
    nodes: Vec<Node>,
    clients: Vec<Client>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    msgs: HashMap<u64, Msg>,
    seq: u64,
    reqs: HashMap<(NodeId, OpId), Req>,
    /// Highest acknowledged version per key, per W (index 1..=3).
    acked: HashMap<Vec<u8>, [Version; 4]>,
    /// Coordinator settings drawn for this seed.
    fanout: ReadFanout,
    hints: bool,
    faults: bool,
    stats: SimStats,
}

#[derive(Debug, Default)]
struct SimStats {
    writes_acked: u64,
    writes_failed: u64,
    reads_ok: u64,
    reads_failed: u64,
    kills: u64,
    dropped: u64,
}

fn config(node: NodeId, read_fanout: ReadFanout, hints: bool) -> CoordinatorConfig {
    CoordinatorConfig {
        node,
        request_timeout_ms: TIMEOUT_MS,
        read_fanout,
        hints,
    }
}

/// A level for a client request: mostly QUORUM, sometimes ONE or ALL.
fn draw_level(rng: &mut SmallRng) -> Level {
    match rng.gen_range(0..10) {
        0 => Level::One,
        1 => Level::All,
        _ => Level::Quorum,
    }
}

fn key_name(k: u32) -> Vec<u8> {
    format!("key-{k}").into_bytes()
}

impl Sim {
    fn new(seed: u64) -> Self {
        let infos = (1..=NODES)
            .map(|id| NodeInfo {
                id,
                host: "sim".into(),
                port: id as u16,
                shards: 1,
                rack: String::new(),
                tokens: default_tokens(id, 64),
            })
            .collect();
        let ring = Ring::new(infos, 3).unwrap();
        let mut rng = SmallRng::seed_from_u64(seed);
        let fanout = if rng.gen_bool(0.5) {
            ReadFanout::All
        } else {
            ReadFanout::Required
        };
        let hints = rng.gen_bool(0.8);
        let nodes = (1..=NODES)
            .map(|id| Node {
                id,
                up: true,
                inc: 0,
                coord: Coordinator::new(config(id, fanout, hints)),
                store: HashMap::new(),
                hints: BTreeMap::new(),
                hlc_last: 0,
                // Clocks up to 200 ms apart.
                skew_ms: rng.gen_range(0..200),
            })
            .collect();
        Sim {
            seed,
            rng,
            now: 1_000,
            ring,
            nodes,
            clients: (0..CLIENTS)
                .map(|_| Client {
                    session: Version::ZERO,
                    busy: false,
                })
                .collect(),
            queue: BinaryHeap::new(),
            msgs: HashMap::new(),
            seq: 0,
            reqs: HashMap::new(),
            acked: HashMap::new(),
            fanout,
            hints,
            faults: true,
            stats: SimStats::default(),
        }
    }

    fn node(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn up_view(&self) -> [bool; NODES as usize + 1] {
        let mut up = [false; NODES as usize + 1];
        for n in &self.nodes {
            up[n.id as usize] = n.up;
        }
        up
    }

    /// Queues a message; during the fault phase it may be dropped or duplicated.
    fn send(&mut self, from: NodeId, to: NodeId, to_inc: u32, body: Body) {
        let local = from == to;
        if self.faults && !local && self.rng.gen_bool(0.03) {
            self.stats.dropped += 1;
            return;
        }
        let from_inc = self.node(from).inc;
        let delay = if local {
            self.rng.gen_range(0..2)
        } else {
            self.rng.gen_range(1..15)
        };
        let duplicate = self.faults && !local && self.rng.gen_bool(0.01);
        let body2 = if duplicate {
            Some(match &body {
                Body::Write { op, m } => Body::Write {
                    op: *op,
                    m: Rc::clone(m),
                },
                Body::WriteAck { op, result } => Body::WriteAck {
                    op: *op,
                    result: result.clone(),
                },
                Body::Read { op, key } => Body::Read {
                    op: *op,
                    key: Rc::clone(key),
                },
                Body::ReadReply { op, result } => Body::ReadReply {
                    op: *op,
                    result: result.clone(),
                },
            })
        } else {
            None
        };
        self.push(
            self.now + delay,
            Msg {
                from,
                from_inc,
                to,
                to_inc,
                body,
            },
        );
        if let Some(body) = body2 {
            let later = self.now + delay + self.rng.gen_range(0..20);
            self.push(
                later,
                Msg {
                    from,
                    from_inc,
                    to,
                    to_inc,
                    body,
                },
            );
        }
    }

    fn push(&mut self, at: u64, msg: Msg) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.msgs.insert(self.seq, msg);
    }

    /// Performs the effects a coordinator on `at` emitted.
    fn perform(&mut self, at: NodeId, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::SendWrite { to, op, mutation } => {
                    let inc = self.node(to).inc;
                    self.send(at, to, inc, Body::Write { op, m: mutation });
                }
                Effect::LocalWrite { op, mutation } => {
                    let inc = self.node(at).inc;
                    self.send(at, at, inc, Body::Write { op, m: mutation });
                }
                Effect::SendRead { to, op, key } => {
                    let inc = self.node(to).inc;
                    self.send(at, to, inc, Body::Read { op, key });
                }
                Effect::LocalRead { op, key } => {
                    let inc = self.node(at).inc;
                    self.send(at, at, inc, Body::Read { op, key });
                }
                Effect::StoreHint { target, mutation } => {
                    let hints = &mut self.node(at).hints;
                    let slot = (target, mutation.key.clone());
                    if hints
                        .get(&slot)
                        .is_none_or(|r| r.version < mutation.record.version)
                    {
                        hints.insert(slot, mutation.record.clone());
                    }
                }
                Effect::HintDelivered { target, mutation } => {
                    let hints = &mut self.node(at).hints;
                    let slot = (target, mutation.key.clone());
                    if hints
                        .get(&slot)
                        .is_some_and(|r| r.version <= mutation.record.version)
                    {
                        hints.remove(&slot);
                    }
                }
                Effect::Reply { op, result } => self.on_reply(at, op, result),
            }
        }
    }

    fn on_reply(
        &mut self,
        at: NodeId,
        op: OpId,
        result: Result<Outcome, ringkv_cluster::CoordError>,
    ) {
        let seed = self.seed;
        let Some(req) = self.reqs.remove(&(at, op)) else {
            panic!("seed {seed}: reply for unknown op {op} at node {at} (second reply?)");
        };
        match (req, result) {
            (
                Req::Write {
                    client,
                    key,
                    w,
                    session,
                },
                Ok(Outcome::Written(v)),
            ) => {
                self.stats.writes_acked += 1;
                assert!(
                    v > session,
                    "seed {seed}: a client's write is not above its session"
                );
                let c = &mut self.clients[client];
                c.busy = false;
                c.session = c.session.max(v);
                let a = &mut self.acked.entry(key).or_default()[w];
                *a = (*a).max(v);
            }
            (Req::Read { client, key, floor }, Ok(Outcome::Read(r))) => {
                self.stats.reads_ok += 1;
                let got = r.as_ref().map_or(Version::ZERO, |r| r.version);
                assert!(
                    got >= floor,
                    "seed {seed}: lost write: read of {:?} at node {at} returned {got:?}, \
                     but {floor:?} was acknowledged before it started",
                    String::from_utf8_lossy(&key)
                );
                let c = &mut self.clients[client];
                c.busy = false;
                c.session = c.session.max(got);
            }
            (Req::Write { client, .. }, Err(_)) => {
                self.stats.writes_failed += 1;
                self.clients[client].busy = false;
            }
            (Req::Read { client, .. }, Err(_)) => {
                self.stats.reads_failed += 1;
                self.clients[client].busy = false;
            }
            (req, result) => panic!("seed {seed}: mismatched reply {result:?} for {req:?}"),
        }
    }

    /// A node stamps a write: its HLC, above the client's session.
    fn stamp(&mut self, at: NodeId, session: Version) -> Version {
        let now = self.now;
        let n = self.node(at);
        let physical = (now + n.skew_ms) << Version::LOGICAL_BITS;
        n.hlc_last = physical.max(n.hlc_last + 1).max(session.hlc + 1);
        Version {
            hlc: n.hlc_last,
            node: at,
        }
    }

    fn start_client_op(
        &mut self,
        client: usize,
        at: NodeId,
        key: Vec<u8>,
        write: bool,
        level: Level,
    ) {
        let up = self.up_view();
        let live = |n: NodeId| up[n as usize];
        let token = ringkv_cluster::token_of(&key);
        let mut out = Vec::new();
        self.clients[client].busy = true;
        let (op, req) = if write {
            let version = self.stamp(at, self.clients[client].session);
            let value = format!("c{client}@{}", self.now).into_bytes();
            let record = if self.rng.gen_bool(0.1) {
                Record::tombstone(version)
            } else {
                Record::put(version, value, 0)
            };
            let m = Mutation {
                key: key.clone(),
                record,
            };
            let ring = &self.ring;
            let op = self.nodes[(at - 1) as usize]
                .coord
                .write(self.now, ring, &live, token, m, level, &mut out);
            let w = level.required(3);
            let session = self.clients[client].session;
            (
                op,
                Req::Write {
                    client,
                    key,
                    w,
                    session,
                },
            )
        } else {
            // Writes whose W overlaps this read's R must be visible.
            let r = level.required(3);
            let acked = self.acked.get(&key).copied().unwrap_or_default();
            let floor = (1..=3)
                .filter(|w| w + r > 3)
                .map(|w| acked[w])
                .max()
                .unwrap_or_default();
            let ring = &self.ring;
            let op = self.nodes[(at - 1) as usize].coord.read(
                self.now,
                ring,
                &live,
                token,
                key.clone(),
                level,
                &mut out,
            );
            (op, Req::Read { client, key, floor })
        };
        assert!(
            self.reqs.insert((at, op), req).is_none(),
            "seed {}: op id reused",
            self.seed
        );
        self.perform(at, out);
    }

    fn deliver(&mut self, msg: Msg) {
        let now = self.now;
        let faults = self.faults;
        let error = faults && self.rng.gen_bool(0.02);
        let to = msg.to;
        let n = self.node(to);
        if !n.up || n.inc != msg.to_inc {
            return;
        }
        match msg.body {
            Body::Write { op, m } => {
                n.hlc_last = n.hlc_last.max(m.record.version.hlc);
                let result = if error {
                    Err("injected disk error".to_string())
                } else {
                    let cur = n.store.get(&m.key);
                    if cur.is_none_or(|c| c.version < m.record.version) {
                        n.store.insert(m.key.clone(), m.record.clone());
                    }
                    Ok(())
                };
                self.send(to, msg.from, msg.from_inc, Body::WriteAck { op, result });
            }
            Body::Read { op, key } => {
                let result = if error {
                    Err("injected read error".to_string())
                } else {
                    Ok(n.store.get(&key[..]).cloned())
                };
                self.send(to, msg.from, msg.from_inc, Body::ReadReply { op, result });
            }
            Body::WriteAck { op, result } => {
                let mut out = Vec::new();
                n.coord.on_write_ack(now, msg.from, op, result, &mut out);
                self.perform(to, out);
            }
            Body::ReadReply { op, result } => {
                if let Ok(Some(r)) = &result {
                    n.hlc_last = n.hlc_last.max(r.version.hlc);
                }
                let mut out = Vec::new();
                n.coord.on_read_reply(now, msg.from, op, result, &mut out);
                self.perform(to, out);
            }
        }
    }

    fn kill(&mut self, id: NodeId) {
        self.stats.kills += 1;
        let cfg = config(id, self.fanout, self.hints);
        let n = self.node(id);
        n.up = false;
        n.inc += 1;
        // Its in-flight ops die with the process; stores and hints are durable.
        n.coord = Coordinator::new(cfg);
        let lost: Vec<(NodeId, OpId)> = self
            .reqs
            .keys()
            .filter(|(at, _)| *at == id)
            .copied()
            .collect();
        for k in lost {
            let (Some(Req::Write { client, .. }) | Some(Req::Read { client, .. })) =
                self.reqs.remove(&k)
            else {
                continue;
            };
            self.clients[client].busy = false;
        }
        for other in 1..=NODES {
            if other != id && self.node(other).up {
                let mut out = Vec::new();
                let now = self.now;
                self.node(other).coord.on_peer_down(now, id, &mut out);
                self.perform(other, out);
            }
        }
    }

    fn revive(&mut self, id: NodeId) {
        let n = self.node(id);
        n.up = true;
        n.inc += 1;
    }

    /// Replays up to `max` hints per node to targets that are up.
    fn replay_hints(&mut self, max: usize) {
        let up = self.up_view();
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                continue;
            }
            let batch: Vec<(NodeId, Mutation)> = self.nodes[i]
                .hints
                .iter()
                .filter(|((t, _), _)| up[*t as usize])
                .take(max)
                .map(|((t, k), r)| {
                    (
                        *t,
                        Mutation {
                            key: k.clone(),
                            record: r.clone(),
                        },
                    )
                })
                .collect();
            let at = self.nodes[i].id;
            for (target, m) in batch {
                let mut out = Vec::new();
                let now = self.now;
                self.nodes[i].coord.replay_hint(now, target, m, &mut out);
                self.perform(at, out);
            }
        }
    }

    /// Advances time by one millisecond: deliver due messages, tick coordinators.
    fn step(&mut self) {
        self.now += 1;
        while let Some(&Reverse((at, seq))) = self.queue.peek() {
            if at > self.now {
                break;
            }
            self.queue.pop();
            if let Some(msg) = self.msgs.remove(&seq) {
                self.deliver(msg);
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].up
                && self.nodes[i]
                    .coord
                    .next_deadline()
                    .is_some_and(|d| d <= self.now)
            {
                let mut out = Vec::new();
                let now = self.now;
                self.nodes[i].coord.tick(now, &mut out);
                let at = self.nodes[i].id;
                self.perform(at, out);
            }
        }
    }

    fn quiet(&self) -> bool {
        self.queue.is_empty()
            && self.nodes.iter().all(|n| n.coord.pending() == 0)
            && self.reqs.is_empty()
    }

    fn run_until_quiet(&mut self) {
        let limit = self.now + 10_000;
        while !self.quiet() {
            assert!(self.now < limit, "seed {}: never quiet", self.seed);
            self.step();
        }
    }

    fn fault_phase(&mut self) {
        let end = self.now + FAULT_PHASE_MS;
        while self.now < end {
            let up: Vec<NodeId> = self.nodes.iter().filter(|n| n.up).map(|n| n.id).collect();
            if up.len() > 1 && self.rng.gen_bool(0.002) {
                let victim = up[self.rng.gen_range(0..up.len())];
                self.kill(victim);
            }
            let down: Vec<NodeId> = self.nodes.iter().filter(|n| !n.up).map(|n| n.id).collect();
            if !down.is_empty() && self.rng.gen_bool(0.004) {
                let back = down[self.rng.gen_range(0..down.len())];
                self.revive(back);
            }
            let up: Vec<NodeId> = self.nodes.iter().filter(|n| n.up).map(|n| n.id).collect();
            for c in 0..CLIENTS {
                if !self.clients[c].busy && self.rng.gen_bool(0.2) {
                    let at = up[self.rng.gen_range(0..up.len())];
                    let key = key_name(self.rng.gen_range(0..KEYS));
                    let write = self.rng.gen_bool(0.5);
                    let level = draw_level(&mut self.rng);
                    self.start_client_op(c, at, key, write, level);
                }
            }
            if self.now % 50 == 0 {
                self.replay_hints(4);
            }
            self.step();
        }
    }

    fn heal_and_check(&mut self) {
        self.faults = false;
        for id in 1..=NODES {
            if !self.node(id).up {
                self.revive(id);
            }
        }
        self.run_until_quiet();
        for _ in 0..20 {
            if self.nodes.iter().all(|n| n.hints.is_empty()) {
                break;
            }
            self.replay_hints(usize::MAX);
            self.run_until_quiet();
        }
        for n in &self.nodes {
            assert!(
                n.hints.is_empty(),
                "seed {}: node {} kept {} hints after healing",
                self.seed,
                n.id,
                n.hints.len()
            );
        }
        for k in 0..KEYS {
            // ALL: every replica answers, so every stale one is repaired.
            self.start_client_op(0, 1, key_name(k), false, Level::All);
            self.run_until_quiet();
        }
        for k in 0..KEYS {
            let key = key_name(k);
            let first = self.nodes[0].store.get(&key);
            for n in &self.nodes[1..] {
                assert_eq!(
                    n.store.get(&key),
                    first,
                    "seed {}: replicas diverge on {k}",
                    self.seed
                );
            }
            let floor = self
                .acked
                .get(&key)
                .map_or(Version::ZERO, |a| a[1].max(a[2]).max(a[3]));
            assert!(
                first.map_or(Version::ZERO, |r| r.version) >= floor,
                "seed {}: acked write lost on {k}",
                self.seed
            );
        }
    }
}

fn run(seed: u64) -> SimStats {
    let mut sim = Sim::new(seed);
    sim.fault_phase();
    sim.heal_and_check();
    sim.stats
}

#[test]
fn quorum_writes_survive_faults_and_replicas_converge_after_healing() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().expect("SIM_SEED is a u64")],
        Err(_) => {
            let count: u64 = std::env::var("SIM_SEEDS")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(100);
            let base: u64 = rand::random();
            (0..count).map(|i| base.wrapping_add(i)).collect()
        }
    };
    let mut total = SimStats::default();
    for seed in seeds {
        eprintln!("seed = {seed}");
        let s = run(seed);
        total.writes_acked += s.writes_acked;
        total.writes_failed += s.writes_failed;
        total.reads_ok += s.reads_ok;
        total.reads_failed += s.reads_failed;
        total.kills += s.kills;
        total.dropped += s.dropped;
    }
    eprintln!("{total:?}");
    assert!(total.writes_acked > 0 && total.reads_ok > 0);
}
