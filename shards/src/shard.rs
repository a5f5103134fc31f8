//! One shard's state: its store, clock, key locks, mesh end and counters,
//! built in one place ([`Shard::new`]) and shared by the shard's tasks
//! through an `Rc` (never across threads).

use crate::clock::LeasedClock;
use crate::cluster::ClusterShard;
use crate::config::NodeConfig;
use crate::forward::{Answer, Call};
use crate::keylock::KeyLocks;
use crate::mesh::Mesh;
use crate::store::Store;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// State shared by all shards of a node (atomics only; no lock on the request path).
#[derive(Debug, Default)]
pub struct NodeShared {
    /// Set once: the node is stopping (a signal, or a shard failed).
    pub stop: AtomicBool,
    /// Client connections open on the node.
    pub connections: AtomicUsize,
    /// Shards that finished draining their connections.
    pub drained: AtomicU32,
    /// Shards that finished starting (listeners bound).
    pub ready: AtomicU32,
    /// Why shards failed, if any did.
    pub failures: Mutex<Vec<String>>,
    /// When the node started (Unix ms; 0 before it did).
    pub started_unix_ms: AtomicU64,
    /// The last RESP client id handed out (CLIENT ID; ids start at 1).
    pub resp_client_ids: AtomicU64,
    /// Wakes a shard executor asleep with its timers overdue (see
    /// [`crate::watchdog`]).
    pub watchdog: Arc<crate::watchdog::Watchdog>,
}

impl NodeShared {
    /// Asks every shard to stop.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether the node is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Records a shard failure and stops the node.
    pub fn fail(&self, shard: u32, reason: String) {
        tracing::error!(shard, "{reason}");
        if let Ok(mut f) = self.failures.lock() {
            f.push(format!("shard {shard}: {reason}"));
        }
        self.request_stop();
    }
}

/// Request counters of one shard (reported by STATS).
#[derive(Debug, Default)]
pub struct ShardCounters {
    /// Requests answered by this shard's connections.
    pub requests: Cell<u64>,
    /// Calls this shard sent to others (a RESP run of commands, or a
    /// commit, is one call).
    pub forwarded_out: Cell<u64>,
    /// Calls other shards sent to this one.
    pub forwarded_in: Cell<u64>,
    /// Bad frames answered with an error.
    pub bad_requests: Cell<u64>,
    /// Connections this shard accepted.
    pub accepted: Cell<u64>,
    /// Connections refused because the node was at its limit.
    pub refused: Cell<u64>,
    /// Storage errors answered.
    pub storage_errors: Cell<u64>,
    /// Times the idle network loop, on its periodic re-check, found
    /// completions that no wake-up had announced. Should stay 0: each one is
    /// a lost wake-up that would have left connections unanswered until the
    /// next event (see `uring::driver::IDLE_RECHECK_INTERVAL`).
    pub network_missed_wakeups: Cell<u64>,
    /// Batches in flight that the network loop's periodic re-poll found
    /// finished although nothing had woken them. Should stay 0: each one is
    /// a missed or late wake-up that would have left its connection
    /// unanswered longer (see `uring::driver::BATCH_RECHECK_INTERVAL`).
    pub network_unwoken_batches: Cell<u64>,
}

impl ShardCounters {
    /// Adds one to a counter.
    pub fn bump(c: &Cell<u64>) {
        c.set(c.get().wrapping_add(1));
    }
}

/// One shard.
pub struct Shard {
    /// Index of this shard in `0..shard_count`.
    pub id: u32,
    /// Number of shards of the node.
    pub shard_count: u32,
    /// The node's configuration.
    pub config: Arc<NodeConfig>,
    /// Node-wide flags and counters.
    pub node: Arc<NodeShared>,
    /// This shard's storage.
    pub store: Store,
    /// This shard's clock (with its durable lease).
    pub clock: RefCell<LeasedClock>,
    /// Locks for read-modify-write operations.
    pub locks: KeyLocks,
    /// Counters.
    pub counters: ShardCounters,
    mesh: RefCell<Option<Rc<Mesh<Call, Answer>>>>,
    cluster: RefCell<Option<Rc<ClusterShard>>>,
}

impl Shard {
    /// A shard with its store and clock opened; the mesh is attached later.
    pub fn new(
        id: u32,
        config: Arc<NodeConfig>,
        node: Arc<NodeShared>,
        store: Store,
        clock: LeasedClock,
    ) -> Rc<Shard> {
        Rc::new(Shard {
            id,
            shard_count: config.shards,
            config,
            node,
            store,
            clock: RefCell::new(clock),
            locks: KeyLocks::new(),
            counters: ShardCounters::default(),
            mesh: RefCell::new(None),
            cluster: RefCell::new(None),
        })
    }

    /// Attaches this shard's end of the mesh.
    pub fn attach_mesh(&self, mesh: Rc<Mesh<Call, Answer>>) {
        *self.mesh.borrow_mut() = Some(mesh);
    }

    /// This shard's end of the mesh (`None` before it is attached or after it closed).
    pub fn mesh(&self) -> Option<Rc<Mesh<Call, Answer>>> {
        self.mesh.borrow().clone()
    }

    /// Attaches this shard's cluster part (clustered nodes only).
    pub fn attach_cluster(&self, cluster: Rc<ClusterShard>) {
        *self.cluster.borrow_mut() = Some(cluster);
    }

    /// This shard's cluster part; `None` on a standalone node (or after it closed).
    pub fn cluster(&self) -> Option<Rc<ClusterShard>> {
        self.cluster.borrow().clone()
    }

    /// Whether this shard has a cluster part (see [`Shard::cluster`]),
    /// without taking a reference to it.
    pub fn has_cluster(&self) -> bool {
        self.cluster.borrow().is_some()
    }

    /// Detaches the cluster part.
    pub fn detach_cluster(&self) -> Option<Rc<ClusterShard>> {
        self.cluster.borrow_mut().take()
    }

    /// Detaches and closes the mesh.
    pub fn close_mesh(&self) {
        if let Some(m) = self.mesh.borrow_mut().take() {
            m.close();
        }
    }

    /// The shard that owns `key`.
    pub fn owner_of(&self, key: &[u8]) -> u32 {
        ringkv_net::routing::shard_for(ringkv_net::routing::token(key), self.shard_count)
    }

    /// Sends `call` to shard `to` and waits for its answer; an unavailable
    /// peer answers [`Answer::Unavailable`].
    pub async fn call(&self, to: u32, call: Call) -> Answer {
        ShardCounters::bump(&self.counters.forwarded_out);
        match self.mesh() {
            Some(mesh) => mesh
                .call(to as usize, call)
                .await
                .unwrap_or(Answer::Unavailable),
            None => Answer::Unavailable,
        }
    }
}
