//! The glommio shell of the cluster layer, one per shard: it feeds the
//! sans-I/O [`Coordinator`] of `ringkv-cluster` with requests, internode
//! answers and timer ticks, and carries out the effects it returns (messages
//! on links, local reads and writes, hints, replies).
//!
//! ```text
//!  request ──► read()/write() ──► Coordinator ──effects──► links (SendWrite/SendRead)
//!                   ▲                 ▲   ▲              ├► store (LocalWrite/LocalRead)
//!                   │ Reply           │   │ tick         ├► hint store (StoreHint/HintDelivered)
//!                   └─────────────────┘   └── timer      └► waiters (Reply)
//!  link readers ──on_answers──► Coordinator
//! ```
//!
//! Invariants: the coordinator is never borrowed across an await or while
//! effects run; every op started by `read`/`write` gets exactly one reply
//! (the coordinator guarantees it, the waiter map delivers it); a node is
//! "up" for this shard once a link to it exchanged HELLO, and "down" as soon
//! as a link to it fails; hints for a node are replayed when it comes up and
//! every `HINT_REPLAY_INTERVAL` while any are left.

pub mod bootstrap;
pub mod convert;
pub mod hints;
pub mod link;
pub mod peer;

use crate::config::NodeConfig;
use crate::limits::{
    COORDINATOR_TICK_INTERVAL, EFFECTS_DRAIN_TIMEOUT, HINT_REPLAY_INTERVAL, HINT_REPLAY_PAGE,
    SESSION_AHEAD_MAX,
};
use crate::oneshot;
use crate::service::Outcome;
use crate::shard::Shard;
use ahash::{AHashMap, AHashSet};
use convert::{cluster_from_archived, cluster_record, store_record, wire_record};
use hints::HintStore;
use link::Link;
use ringkv_cluster::consistency::Level;
use ringkv_cluster::coordinator::{
    CoordError, Coordinator, CoordinatorConfig, Effect, Liveness, OpId, Outcome as CoordOutcome,
};
use ringkv_cluster::membership::Membership;
use ringkv_cluster::record::{Mutation, NodeId};
use ringkv_cluster::ring::{default_tokens, NodeInfo, Ring};
use ringkv_net::client_frame::Status;
use ringkv_net::internode::{ArchivedBatch, ArchivedMessage, Batch, Hello, Message};
use ringkv_net::routing::{shard_for, shard_port, token};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;

/// The answer a waiting request gets from the coordinator.
type Reply = Result<CoordOutcome, CoordError>;

/// The nodes this shard sees up.
struct UpSet<'a>(&'a AHashSet<NodeId>);

impl Liveness for UpSet<'_> {
    fn is_up(&self, node: NodeId) -> bool {
        self.0.contains(&node)
    }
}

/// One shard's part of the cluster.
pub struct ClusterShard {
    shard: RefCell<Weak<Shard>>,
    shard_id: u32,
    config: Arc<NodeConfig>,
    me: NodeInfo,
    membership: RefCell<Membership>,
    ring: RefCell<Option<Rc<Ring>>>,
    coordinator: RefCell<Coordinator>,
    waiters: RefCell<AHashMap<OpId, oneshot::Sender<Reply>>>,
    links: RefCell<AHashMap<(NodeId, u32), Rc<Link>>>,
    up: RefCell<AHashSet<NodeId>>,
    hints: HintStore,
    /// Hint replays acknowledged (drives the replay pacing).
    replays_delivered: Cell<u64>,
    /// A node came up: replay its hints without waiting for the interval.
    replay_now: Cell<bool>,
    tasks: RefCell<Vec<glommio::task::JoinHandle<()>>>,
    /// Effect tasks (local reads and writes, hint stores) still running;
    /// `close` waits for them so no hint is cut off by a clean stop.
    effects_running: Rc<Cell<u64>>,
}

/// Counts one running effect task for as long as it lives.
struct Running(Rc<Cell<u64>>);

impl Running {
    fn new(counter: &Rc<Cell<u64>>) -> Running {
        counter.set(counter.get() + 1);
        Running(counter.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// This node's description on the ring.
pub fn my_node_info(config: &NodeConfig) -> NodeInfo {
    NodeInfo {
        id: config.node_id,
        host: config.host.clone(),
        port: config.port,
        shards: config.shards,
        rack: config.cluster.rack.clone(),
        tokens: default_tokens(config.node_id, config.cluster.vnodes),
    }
}

/// The ring a standalone node reports (itself only).
pub fn standalone_ring(config: &NodeConfig) -> Option<Ring> {
    Ring::new(vec![my_node_info(config)], 1).ok()
}

/// Where the peers file lives.
fn peers_path(config: &NodeConfig) -> std::path::PathBuf {
    config.data_dir.join("cluster-peers")
}

impl ClusterShard {
    /// Opens shard `shard_id`'s cluster part: its hint store, and what the
    /// peers file says of the seeds.
    pub async fn open(shard_id: u32, config: Arc<NodeConfig>) -> Result<Rc<ClusterShard>, String> {
        let me = my_node_info(&config);
        let mut membership = Membership::new(me.clone(), config.cluster.seeds.clone());
        let path = peers_path(&config);
        match std::fs::read_to_string(&path) {
            Ok(text) => membership
                .load_peers(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        let hints = HintStore::open(&config.shard_dir(shard_id).join("hints"), &config)
            .await
            .map_err(|e| format!("opening the hint store of shard {shard_id}: {e}"))?;
        let coordinator = Coordinator::new(CoordinatorConfig {
            node: config.node_id,
            request_timeout_ms: config.cluster.request_timeout.as_millis() as u64,
            read_fanout: config.cluster.read_fanout,
            hints: config.cluster.hints,
        });
        Ok(Rc::new(ClusterShard {
            shard: RefCell::new(Weak::new()),
            shard_id,
            config,
            me,
            membership: RefCell::new(membership),
            ring: RefCell::new(None),
            coordinator: RefCell::new(coordinator),
            waiters: RefCell::new(AHashMap::new()),
            links: RefCell::new(AHashMap::new()),
            up: RefCell::new(AHashSet::new()),
            hints,
            replays_delivered: Cell::new(0),
            replay_now: Cell::new(false),
            tasks: RefCell::new(Vec::new()),
            effects_running: Rc::new(Cell::new(0)),
        }))
    }

    /// Attaches the shard and starts the background tasks: seed resolution
    /// (then the links), the coordinator's timer and hint replay.
    pub fn start(self: &Rc<Self>, shard: &Rc<Shard>) {
        *self.shard.borrow_mut() = Rc::downgrade(shard);
        let tasks = [
            glommio::spawn_local(bootstrap::resolve_seeds(self.clone())).detach(),
            glommio::spawn_local(tick_loop(self.clone())).detach(),
            glommio::spawn_local(replay_loop(self.clone())).detach(),
        ];
        self.tasks.borrow_mut().extend(tasks);
    }

    /// Stops every background task and link, then closes the hint store.
    pub async fn close(&self) {
        for t in self.tasks.borrow_mut().drain(..) {
            t.cancel();
        }
        let started = std::time::Instant::now();
        while self.effects_running.get() > 0 && started.elapsed() < EFFECTS_DRAIN_TIMEOUT {
            glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        }
        self.links.borrow_mut().clear();
        if let Err(e) = self.hints.close().await {
            tracing::error!(shard = self.shard_id, "closing the hint store: {e}");
        }
    }

    /// This shard's index.
    pub fn shard_id(&self) -> u32 {
        self.shard_id
    }

    /// The ring, once every seed is resolved.
    pub fn ring(&self) -> Option<Rc<Ring>> {
        self.ring.borrow().clone()
    }

    /// A batch from this shard carrying `messages` and our clock.
    pub fn batch(&self, messages: Vec<Message>) -> Batch {
        let clock = self
            .shard
            .borrow()
            .upgrade()
            .map_or(0, |s| s.clock.borrow().last());
        Batch {
            from_node: self.me.id,
            from_shard: self.shard_id,
            clock,
            messages,
        }
    }

    /// Our HELLO.
    pub fn hello_batch(&self) -> Batch {
        let ring_version = self.ring().map_or(0, |r| r.version());
        self.batch(vec![Message::Hello(Hello {
            node_id: self.me.id,
            shards: self.me.shards,
            shard: self.shard_id,
            host: self.me.host.clone(),
            port: self.me.port,
            rack: self.me.rack.clone(),
            tokens: self.me.tokens.clone(),
            replication_factor: self.config.cluster.replication_factor,
            ring_version,
        })])
    }

    /// Advances our clock past a peer's, unless it is implausibly far ahead
    /// (a broken peer must not drag our clock into the far future).
    pub fn observe_peer_clock(&self, hlc: u64) {
        let Some(shard) = self.shard.borrow().upgrade() else {
            return;
        };
        let now = crate::clock::wall_ms();
        let max = now.saturating_add(SESSION_AHEAD_MAX.as_millis() as u64)
            << ringkv_storage::Version::LOGICAL_BITS;
        if hlc > max {
            tracing::warn!(
                shard = self.shard_id,
                "ignoring a peer clock {} ms ahead of ours",
                (hlc >> ringkv_storage::Version::LOGICAL_BITS).saturating_sub(now)
            );
            return;
        }
        shard
            .clock
            .borrow_mut()
            .observe(ringkv_storage::Version { hlc, node: 0 });
    }

    /// A peer dialed us: check it belongs to our ring.
    pub fn peer_said_hello(&self, hello: &Hello) {
        if let Some(ring) = self.ring() {
            if ring.node(hello.node_id).is_none() {
                tracing::warn!(
                    shard = self.shard_id,
                    "node {} ({}:{}) connected but is not one of our seeds; add it to --seeds of every node",
                    hello.node_id,
                    hello.host,
                    hello.port
                );
            } else if hello.ring_version != 0 && hello.ring_version != ring.version() {
                tracing::warn!(
                    shard = self.shard_id,
                    "node {} has ring version {:#x}, ours is {:#x}: the nodes were given different seeds or settings",
                    hello.node_id,
                    hello.ring_version,
                    ring.version()
                );
            }
        }
    }

    /// The reason requests are refused while the ring is incomplete.
    fn ring_missing(&self) -> Outcome {
        let m = self.membership.borrow();
        let unresolved = m.unresolved();
        let why = if unresolved.is_empty() {
            "the ring is being built".to_string()
        } else {
            format!("seeds not reached yet: {}", unresolved.join(", "))
        };
        Outcome::Error(
            Status::Unavailable,
            format!("unavailable: the ring is not complete ({why})"),
        )
    }

    /// Reads `key` at `level`: the newest record among R replicas
    /// (tombstones and expired values included).
    pub async fn read(
        self: &Rc<Self>,
        key: &[u8],
        level: Level,
    ) -> Result<Option<ringkv_storage::Record>, Outcome> {
        let outcome = self
            .coordinate(|c, now, ring, up, out| {
                c.read(now, ring, up, token(key), key.to_vec(), level, out)
            })
            .await?;
        match outcome {
            CoordOutcome::Read(r) => Ok(r.map(store_record)),
            CoordOutcome::Written(_) => Err(internal("a read answered as a write")),
        }
    }

    /// Writes `record` (already stamped) for `key` to its replicas at `level`.
    pub async fn write(
        self: &Rc<Self>,
        key: &[u8],
        record: ringkv_storage::Record,
        level: Level,
    ) -> Result<(), Outcome> {
        let mutation = Mutation {
            key: key.to_vec(),
            record: cluster_record(record),
        };
        let outcome = self
            .coordinate(|c, now, ring, up, out| {
                c.write(now, ring, up, token(key), mutation, level, out)
            })
            .await?;
        match outcome {
            CoordOutcome::Written(_) => Ok(()),
            CoordOutcome::Read(_) => Err(internal("a write answered as a read")),
        }
    }

    /// Starts one op on the coordinator (with the ring, the clock and our
    /// view of who is up) and waits for its reply.
    async fn coordinate(
        self: &Rc<Self>,
        start: impl FnOnce(&mut Coordinator, u64, &Ring, &UpSet<'_>, &mut Vec<Effect>) -> OpId,
    ) -> Result<CoordOutcome, Outcome> {
        let Some(ring) = self.ring() else {
            return Err(self.ring_missing());
        };
        let mut effects = Vec::new();
        let op = {
            let up = self.up.borrow();
            let now = crate::clock::wall_ms();
            start(
                &mut self.coordinator.borrow_mut(),
                now,
                &ring,
                &UpSet(&up),
                &mut effects,
            )
        };
        self.wait(op, effects).await
    }

    async fn wait(
        self: &Rc<Self>,
        op: OpId,
        effects: Vec<Effect>,
    ) -> Result<CoordOutcome, Outcome> {
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(op, tx);
        self.drive(effects);
        match rx.await {
            Some(Ok(outcome)) => Ok(outcome),
            Some(Err(e)) => Err(coord_failure(&e)),
            None => Err(Outcome::Error(
                Status::ShuttingDown,
                "the node stopped before the replicas answered".into(),
            )),
        }
    }

    /// Carries out the coordinator's effects.
    fn drive(self: &Rc<Self>, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::SendWrite { to, op, mutation } => {
                    let message = Message::Write {
                        op,
                        key: mutation.key.clone(),
                        record: wire_record(&mutation.record),
                    };
                    if !self.send(to, &mutation.key, message) {
                        let mut out = Vec::new();
                        self.coordinator.borrow_mut().on_write_ack(
                            crate::clock::wall_ms(),
                            to,
                            op,
                            Err(format!("node {to} is not connected")),
                            &mut out,
                        );
                        self.drive(out);
                    }
                }
                Effect::SendRead { to, op, key } => {
                    let message = Message::Read {
                        op,
                        key: key.to_vec(),
                    };
                    if !self.send(to, &key, message) {
                        let mut out = Vec::new();
                        self.coordinator.borrow_mut().on_read_reply(
                            crate::clock::wall_ms(),
                            to,
                            op,
                            Err(format!("node {to} is not connected")),
                            &mut out,
                        );
                        self.drive(out);
                    }
                }
                Effect::LocalWrite { op, mutation } => {
                    self.spawn_effect(|this| async move { this.local_write(op, &mutation).await });
                }
                Effect::LocalRead { op, key } => {
                    self.spawn_effect(|this| async move { this.local_read(op, &key).await });
                }
                Effect::StoreHint { target, mutation } => {
                    self.spawn_effect(|this| async move {
                        match this
                            .hints
                            .store(target, &mutation, crate::clock::wall_ms())
                            .await
                        {
                            Ok(true) => {}
                            Ok(false) => tracing::warn!(
                                shard = this.shard_id,
                                "hint for node {target} dropped: the hint store is full"
                            ),
                            Err(e) => tracing::error!(
                                shard = this.shard_id,
                                "storing a hint for node {target}: {e}"
                            ),
                        }
                    });
                }
                Effect::HintDelivered { target, mutation } => {
                    self.replays_delivered.set(self.replays_delivered.get() + 1);
                    self.spawn_effect(|this| async move {
                        if let Err(e) = this.hints.delivered(target, &mutation).await {
                            tracing::error!(
                                shard = this.shard_id,
                                "deleting a delivered hint for node {target}: {e}"
                            );
                        }
                    });
                }
                Effect::Reply { op, result } => {
                    if let Some(tx) = self.waiters.borrow_mut().remove(&op) {
                        tx.send(result);
                    }
                }
            }
        }
    }

    /// Runs one effect's I/O as a task of its own, counted in
    /// `effects_running` until it ends (so `close` can wait for it).
    fn spawn_effect<F, Fut>(self: &Rc<Self>, effect: F)
    where
        F: FnOnce(Rc<Self>) -> Fut,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let running = Running::new(&self.effects_running);
        let task = effect(self.clone());
        glommio::spawn_local(async move {
            task.await;
            drop(running);
        })
        .detach();
    }

    /// Queues `message` on the link to the shard of node `to` that owns
    /// `key`; `false` when that link is down.
    fn send(&self, to: NodeId, key: &[u8], message: Message) -> bool {
        let Some(ring) = self.ring() else {
            return false;
        };
        let Some(node) = ring.node(to) else {
            return false;
        };
        let shard = shard_for(token(key), node.shards);
        let link = self.links.borrow().get(&(to, shard)).cloned();
        match link {
            Some(link) => {
                let size = link::message_size(&message);
                link.push(message, size)
            }
            None => false,
        }
    }

    async fn local_write(self: &Rc<Self>, op: OpId, mutation: &Mutation) {
        let shard = self.shard.borrow().upgrade();
        let result = match shard {
            None => Err("the shard is stopping".to_string()),
            Some(shard) => {
                let r = &mutation.record;
                let version = convert::store_version(r.version);
                match &r.value {
                    Some(v) => {
                        shard
                            .store
                            .put(&mutation.key, v, version, r.expires_at_ms)
                            .await
                    }
                    None => shard.store.delete(&mutation.key, version).await,
                }
                .map_err(|e| e.to_string())
            }
        };
        let mut out = Vec::new();
        self.coordinator.borrow_mut().on_write_ack(
            crate::clock::wall_ms(),
            self.me.id,
            op,
            result,
            &mut out,
        );
        self.drive(out);
    }

    async fn local_read(self: &Rc<Self>, op: OpId, key: &[u8]) {
        let shard = self.shard.borrow().upgrade();
        let result = match shard {
            None => Err("the shard is stopping".to_string()),
            Some(shard) => shard
                .store
                .get_record(key)
                .await
                .map(|r| r.map(cluster_record))
                .map_err(|e| e.to_string()),
        };
        let mut out = Vec::new();
        self.coordinator.borrow_mut().on_read_reply(
            crate::clock::wall_ms(),
            self.me.id,
            op,
            result,
            &mut out,
        );
        self.drive(out);
    }

    /// Feeds the answers of one frame from node `from` to the coordinator.
    pub fn on_answers(self: &Rc<Self>, from: NodeId, batch: &ArchivedBatch) {
        self.observe_peer_clock(batch.clock.to_native());
        let now = crate::clock::wall_ms();
        let mut out = Vec::new();
        {
            let mut c = self.coordinator.borrow_mut();
            for m in batch.messages.iter() {
                match m {
                    ArchivedMessage::WriteAck { op, error } => {
                        let result = match error.as_ref() {
                            None => Ok(()),
                            Some(e) => Err(e.as_str().to_string()),
                        };
                        c.on_write_ack(now, from, op.to_native(), result, &mut out);
                    }
                    ArchivedMessage::ReadReply { op, record, error } => {
                        let result = match error.as_ref() {
                            Some(e) => Err(e.as_str().to_string()),
                            None => Ok(record.as_ref().map(cluster_from_archived)),
                        };
                        c.on_read_reply(now, from, op.to_native(), result, &mut out);
                    }
                    _ => {}
                }
            }
        }
        self.drive(out);
    }

    /// A link finished its HELLO: the node is up (its hints get replayed).
    pub fn link_up(self: &Rc<Self>, link: &Link, hello: &Hello) {
        if let Some(node) = self.ring().and_then(|r| r.node(link.node).cloned()) {
            if node.shards != hello.shards || node.tokens != hello.tokens {
                tracing::error!(
                    shard = self.shard_id,
                    "node {} now reports {} shards and {} tokens, the ring has {} and {}; \
                     restart this node to pick up the change (delete {} first)",
                    link.node,
                    hello.shards,
                    hello.tokens.len(),
                    node.shards,
                    node.tokens.len(),
                    peers_path(&self.config).display()
                );
            }
        }
        if self.up.borrow_mut().insert(link.node) {
            tracing::info!(shard = self.shard_id, "node {} is up", link.node);
            self.replay_now.set(true);
        }
    }

    /// A link failed: the node is down for this shard; `dropped` messages
    /// never left, so their ops fail now.
    pub fn link_down(self: &Rc<Self>, link: &Link, dropped: Vec<Message>) {
        let was_up = self.up.borrow_mut().remove(&link.node);
        let now = crate::clock::wall_ms();
        let mut out = Vec::new();
        {
            let mut c = self.coordinator.borrow_mut();
            if was_up {
                tracing::warn!(shard = self.shard_id, "node {} is down", link.node);
                c.on_peer_down(now, link.node, &mut out);
            }
            let broke = format!("the link to node {} broke", link.node);
            for m in dropped {
                match m {
                    Message::Write { op, .. } => {
                        c.on_write_ack(now, link.node, op, Err(broke.clone()), &mut out)
                    }
                    Message::Read { op, .. } => {
                        c.on_read_reply(now, link.node, op, Err(broke.clone()), &mut out)
                    }
                    _ => {}
                }
            }
        }
        self.drive(out);
    }

    /// Installs the ring once every seed is resolved and opens a link to
    /// every shard of every other node.
    pub fn install_ring(self: &Rc<Self>, ring: Ring) {
        tracing::info!(
            shard = self.shard_id,
            ring_version = format_args!("{:#x}", ring.version()),
            nodes = ring.nodes().len(),
            replication_factor = ring.replication_factor(),
            "ring complete"
        );
        if ring.replication_factor() < ring.configured_replication_factor() {
            tracing::warn!(
                "replication factor {} is above the {} nodes of the ring: each key has {} copies",
                ring.configured_replication_factor(),
                ring.nodes().len(),
                ring.replication_factor()
            );
        }
        let mut new_links = Vec::new();
        for node in ring.nodes().iter().filter(|n| n.id != self.me.id) {
            for s in 0..node.shards {
                let addr = format!("{}:{}", node.host, shard_port(node.port, s));
                let l = Link::new(node.id, s, addr);
                self.links.borrow_mut().insert((node.id, s), l.clone());
                new_links.push(l);
            }
        }
        *self.ring.borrow_mut() = Some(Rc::new(ring));
        for l in new_links {
            let task = glommio::spawn_local(link::run(self.clone(), l)).detach();
            self.tasks.borrow_mut().push(task);
        }
    }

    /// `key value` lines for STATS and INFO.
    pub fn stats(&self) -> Vec<(String, String)> {
        let s = self.coordinator.borrow().stats();
        let (stored, dropped, delivered, bytes) = self.hints.counters();
        let ring = self.ring();
        vec![
            ("cluster_ring_complete".into(), ring.is_some().to_string()),
            (
                "cluster_ring_version".into(),
                ring.as_ref().map_or(0, |r| r.version()).to_string(),
            ),
            (
                "cluster_nodes".into(),
                ring.as_ref().map_or(0, |r| r.nodes().len()).to_string(),
            ),
            (
                "cluster_peers_up".into(),
                self.up.borrow().len().to_string(),
            ),
            ("cluster_writes".into(), s.writes.to_string()),
            ("cluster_reads".into(), s.reads.to_string()),
            ("cluster_unavailable".into(), s.unavailable.to_string()),
            ("cluster_timeouts".into(), s.timeouts.to_string()),
            ("cluster_failures".into(), s.failures.to_string()),
            ("cluster_read_repairs".into(), s.read_repairs.to_string()),
            ("cluster_hints_stored".into(), stored.to_string()),
            ("cluster_hints_dropped".into(), dropped.to_string()),
            ("cluster_hints_delivered".into(), delivered.to_string()),
            ("cluster_hints_bytes".into(), bytes.to_string()),
            (
                "cluster_pending_ops".into(),
                self.coordinator.borrow().pending().to_string(),
            ),
        ]
    }

    /// Learns what a seed said and persists the peers file (shard 0 writes it).
    pub fn learn_seed(&self, addr: &str, hello: &Hello) {
        let info = NodeInfo {
            id: hello.node_id,
            host: hello.host.clone(),
            port: hello.port,
            shards: hello.shards,
            rack: hello.rack.clone(),
            tokens: hello.tokens.clone(),
        };
        let learned = self.membership.borrow_mut().learn(addr, info);
        match learned {
            Ok(true) if self.shard_id == 0 => {
                let text = self.membership.borrow().encode_peers();
                if let Err(e) = write_atomically(&peers_path(&self.config), text.as_bytes()) {
                    tracing::error!("writing {}: {e}", peers_path(&self.config).display());
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(shard = self.shard_id, "seed {addr}: {e}"),
        }
    }
}

fn internal(what: &str) -> Outcome {
    Outcome::Error(Status::Internal, what.to_string())
}

/// The client-visible failure for a coordinator error.
fn coord_failure(e: &CoordError) -> Outcome {
    let status = match e {
        CoordError::Unavailable { .. } | CoordError::Failed { .. } => Status::Unavailable,
        CoordError::Timeout { .. } => Status::Timeout,
    };
    Outcome::Error(status, e.to_string())
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename, so a
/// crash leaves the old or the new file, never a torn one.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Expires coordinator ops past their deadline.
async fn tick_loop(cluster: Rc<ClusterShard>) {
    loop {
        glommio::timer::sleep(COORDINATOR_TICK_INTERVAL).await;
        let mut out = Vec::new();
        cluster
            .coordinator
            .borrow_mut()
            .tick(crate::clock::wall_ms(), &mut out);
        cluster.drive(out);
    }
}

/// Replays stored hints to nodes that are up: when one comes up, and every
/// `HINT_REPLAY_INTERVAL`. A page is sent, then its acks awaited (up to the
/// request timeout) before the next, so replay never floods a peer that just
/// came back.
async fn replay_loop(cluster: Rc<ClusterShard>) {
    let step = std::time::Duration::from_millis(50);
    let mut waited = std::time::Duration::ZERO;
    loop {
        glommio::timer::sleep(step).await;
        waited += step;
        if !cluster.replay_now.replace(false) && waited < HINT_REPLAY_INTERVAL {
            continue;
        }
        waited = std::time::Duration::ZERO;
        let Some(ring) = cluster.ring() else { continue };
        let targets: Vec<NodeId> = ring
            .nodes()
            .iter()
            .map(|n| n.id)
            .filter(|id| *id != cluster.me.id && cluster.up.borrow().contains(id))
            .collect();
        for target in targets {
            replay_to(&cluster, target).await;
        }
    }
}

async fn replay_to(cluster: &Rc<ClusterShard>, target: NodeId) {
    let timeout = cluster.config.cluster.request_timeout;
    loop {
        if !cluster.up.borrow().contains(&target) {
            return;
        }
        let page = match cluster
            .hints
            .page(target, HINT_REPLAY_PAGE, crate::clock::wall_ms())
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(shard = cluster.shard_id, "reading hints: {e}");
                return;
            }
        };
        if page.is_empty() {
            return;
        }
        let sent = page.len() as u64;
        let before = cluster.replays_delivered.get();
        let mut out = Vec::new();
        {
            let mut c = cluster.coordinator.borrow_mut();
            for m in page {
                c.replay_hint(crate::clock::wall_ms(), target, m, &mut out);
            }
        }
        cluster.drive(out);
        let started = std::time::Instant::now();
        while cluster.replays_delivered.get() - before < sent && started.elapsed() < timeout {
            glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
        }
        // Give the deletes of delivered hints a moment to land before the
        // next page reads the store again.
        glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
        if cluster.replays_delivered.get() - before < sent {
            // Some were not acknowledged: try again at the next interval.
            return;
        }
    }
}
