//! The node's resolved configuration, as the runtime consumes it. Parsing
//! (TOML file, command-line flags) lives in the `ringkv` binary; this type is
//! what it produces, already merged and validated by [`NodeConfig::validate`].

use crate::error::Error;
use crate::limits::{
    BACKGROUND_SHARES_DEFAULT, CLOCK_OFFSET_MAX_MS, CONNECTIONS_MAX_DEFAULT,
    HINTS_BYTES_MAX_DEFAULT, HINT_WINDOW_DEFAULT, IO_MEMORY_DEFAULT, REPLICATION_FACTOR_DEFAULT,
    REQUEST_TIMEOUT_DEFAULT, RESP_PORT_DEFAULT, SHARDS_MAX, VNODES_DEFAULT, VNODES_MAX,
};
use ringkv_cluster::consistency::Level;
use ringkv_cluster::coordinator::ReadFanout;
use std::path::PathBuf;
use std::time::Duration;

/// When a write is acknowledged (see DESIGN.md "Storage, per shard").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurabilityMode {
    /// After the WAL record is fdatasync'ed (default; SIGKILL loses nothing acknowledged).
    Sync,
    /// After a group-commit window of at most `window`.
    Batch {
        /// Longest time a write waits for its sync.
        window: Duration,
    },
    /// Without waiting for the disk (rely on replication).
    None,
}

/// How a shard serves its client connections (binary protocol and RESP)
/// (docs/operations.md "Network engine").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetEngine {
    /// The shard's own io_uring ring (multishot receive into a provided
    /// buffer ring, one send per connection per turn), driven from one
    /// glommio task of the shard: one `io_uring_enter` serves many connections.
    Uring,
    /// One glommio task and `TcpStream` per connection.
    Glommio,
}

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Address to listen on (all ports).
    pub host: String,
    /// The node's port (every shard accepts on it with SO_REUSEPORT); shard
    /// `i` also listens on `port + 1 + i`.
    pub port: u16,
    /// Number of shards (executors).
    pub shards: u32,
    /// Pin shard `i` to CPU `i % cpus` (true in production).
    pub pin: bool,
    /// Root data directory; shard `i` keeps its engine in `shard-<i>/`.
    pub data_dir: PathBuf,
    /// This node's id, stamped into every version it writes.
    pub node_id: u32,
    /// When writes are acknowledged.
    pub durability: DurabilityMode,
    /// Memtable size per shard, bytes. `new` gives 64 MiB; `ringkv serve`
    /// sizes it from memory when none is configured
    /// ([`crate::memory::memtable_size_for`]).
    pub memtable_size: usize,
    /// Block cache size per shard, bytes.
    pub block_cache_size: usize,
    /// Row cache size per shard, bytes (0 disables it).
    pub row_cache_size: usize,
    /// Largest key accepted, bytes (at most the protocol's limit).
    pub key_size_max: usize,
    /// Largest value accepted, bytes (at most the protocol's limit).
    pub value_size_max: usize,
    /// Largest frame accepted, bytes.
    pub frame_size_max: usize,
    /// Largest number of client connections on the node.
    pub connections_max: usize,
    /// Registered io_uring buffer memory per shard, bytes.
    pub io_memory: usize,
    /// Shares of the storage background queue (the foreground has 1000).
    pub background_shares: usize,
    /// Port of the Redis protocol (RESP) listener, on every shard with
    /// SO_REUSEPORT; 0 turns it off.
    pub resp_port: u16,
    /// Password RESP clients must send (AUTH / HELLO AUTH) before any other
    /// command; `None` means no authentication.
    pub requirepass: Option<String>,
    /// Whether RESP FLUSHDB/FLUSHALL may delete every key (default false).
    pub allow_flush: bool,
    /// Cluster membership and replication (standalone when it has no seeds).
    pub cluster: ClusterConfig,
    /// Test-only: this node's wall clock reads this many milliseconds off the
    /// real one (to test clock skew on one machine). 0 in production.
    pub clock_offset_ms: i64,
    /// How client connections of the binary protocol are served (the RESP
    /// port always uses glommio).
    pub net_engine: NetEngine,
    /// Report (log, with a backtrace) every task queue run of a shard this
    /// far past its budget (see `stall_report`); `None`: off.
    pub stall_report: Option<Duration>,
}

/// How a node replicates: static membership from seeds, the replication
/// factor, and the quorum coordinator's settings (docs/operations.md "Cluster").
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Addresses (`host:port`, each a node's port) of the other nodes of the
    /// cluster. Empty: a standalone node that answers every level from its
    /// own copy.
    pub seeds: Vec<String>,
    /// Copies of each key (N); effective N is at most the number of nodes.
    pub replication_factor: u32,
    /// Virtual-node tokens of this node on the ring.
    pub vnodes: u32,
    /// This node's rack ("" = none); replicas avoid sharing a rack.
    pub rack: String,
    /// The level of requests that carry none (RESP commands, level 0).
    pub default_consistency: Level,
    /// How long a coordinator waits for replicas before answering TIMEOUT.
    pub request_timeout: Duration,
    /// Whether reads ask every live replica (answering after R) or only R.
    pub read_fanout: ReadFanout,
    /// Whether writes a replica missed are kept as hints and replayed.
    pub hints: bool,
    /// Hints older than this are dropped (anti-entropy repairs the rest).
    pub hint_window: Duration,
    /// Largest size of one shard's stored hints, bytes; more are dropped.
    pub hints_bytes_max: u64,
}

impl ClusterConfig {
    /// Whether the node is part of a cluster (it has seeds).
    pub fn clustered(&self) -> bool {
        !self.seeds.is_empty()
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            seeds: Vec::new(),
            replication_factor: REPLICATION_FACTOR_DEFAULT,
            vnodes: VNODES_DEFAULT,
            rack: String::new(),
            default_consistency: Level::Quorum,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            read_fanout: ReadFanout::All,
            hints: true,
            hint_window: HINT_WINDOW_DEFAULT,
            hints_bytes_max: HINTS_BYTES_MAX_DEFAULT,
        }
    }
}

impl NodeConfig {
    /// The defaults: 127.0.0.1:7379, one shard per CPU, `./ringkv-data`, sync
    /// durability, the io_uring network engine.
    pub fn new() -> Self {
        NodeConfig {
            host: "127.0.0.1".into(),
            port: 7379,
            shards: cpu_count(),
            pin: true,
            data_dir: PathBuf::from("./ringkv-data"),
            node_id: 1,
            durability: DurabilityMode::Sync,
            memtable_size: 64 << 20,
            block_cache_size: 256 << 20,
            row_cache_size: 256 << 20,
            key_size_max: ringkv_net::limits::KEY_SIZE_MAX,
            value_size_max: ringkv_net::limits::VALUE_SIZE_MAX,
            frame_size_max: ringkv_net::limits::FRAME_SIZE_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            io_memory: IO_MEMORY_DEFAULT,
            background_shares: BACKGROUND_SHARES_DEFAULT,
            resp_port: RESP_PORT_DEFAULT,
            requirepass: None,
            allow_flush: false,
            cluster: ClusterConfig::default(),
            clock_offset_ms: 0,
            net_engine: NetEngine::Uring,
            stall_report: None,
        }
    }

    /// Checks the relations between the settings; the error names the setting.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.shards == 0 || self.shards > SHARDS_MAX {
            return bad(format!(
                "shards = {} must be between 1 and {SHARDS_MAX}",
                self.shards
            ));
        }
        let last_port = u32::from(self.port) + 1 + self.shards;
        if self.port == 0 || last_port > u32::from(u16::MAX) {
            return bad(format!(
                "port = {} with {} shards needs ports {}..={} (1..=65535)",
                self.port,
                self.shards,
                self.port,
                last_port - 1
            ));
        }
        if self.key_size_max == 0 || self.key_size_max > ringkv_net::limits::KEY_SIZE_MAX {
            return bad(format!(
                "max key size {} must be between 1 and {}",
                self.key_size_max,
                ringkv_net::limits::KEY_SIZE_MAX
            ));
        }
        if self.value_size_max > ringkv_net::limits::VALUE_SIZE_MAX {
            return bad(format!(
                "max value size {} must be at most {}",
                self.value_size_max,
                ringkv_net::limits::VALUE_SIZE_MAX
            ));
        }
        let frame_min = self.key_size_max + self.value_size_max + 64;
        if self.frame_size_max < frame_min {
            return bad(format!(
                "max frame size {} must hold a full key and value ({frame_min} bytes)",
                self.frame_size_max
            ));
        }
        if self.resp_port != 0 && (self.port..=last_port as u16 - 1).contains(&self.resp_port) {
            return bad(format!(
                "resp port {} collides with the node's ports {}..={}",
                self.resp_port,
                self.port,
                last_port - 1
            ));
        }
        if self.connections_max == 0 {
            return bad("max connections must be at least 1".into());
        }
        if self.memtable_size < 64 * 1024 {
            return bad(format!(
                "memtable size {} must be at least 64 KiB",
                self.memtable_size
            ));
        }
        if self.background_shares == 0 {
            return bad("background shares must be at least 1".into());
        }
        self.validate_cluster()
    }

    fn validate_cluster(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        let c = &self.cluster;
        if c.replication_factor == 0
            || c.replication_factor > ringkv_cluster::limits::REPLICATION_FACTOR_MAX
        {
            return bad(format!(
                "replication factor {} must be between 1 and {}",
                c.replication_factor,
                ringkv_cluster::limits::REPLICATION_FACTOR_MAX
            ));
        }
        if c.vnodes == 0 || c.vnodes > VNODES_MAX {
            return bad(format!(
                "vnodes = {} must be between 1 and {VNODES_MAX}",
                c.vnodes
            ));
        }
        if self.node_id == u32::MAX {
            return bad(format!("node id {} is reserved", u32::MAX));
        }
        if c.request_timeout.is_zero() {
            return bad("request timeout must be above 0".into());
        }
        let me = format!("{}:{}", self.host, self.port);
        for seed in &c.seeds {
            let Some((host, port)) = seed.rsplit_once(':') else {
                return bad(format!("seed {seed:?} is not HOST:PORT"));
            };
            if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
                return bad(format!("seed {seed:?} is not HOST:PORT"));
            }
            if *seed == me {
                return bad(format!(
                    "seed {seed} is this node's own address; list the other nodes"
                ));
            }
        }
        if self.clock_offset_ms.unsigned_abs() > CLOCK_OFFSET_MAX_MS {
            return bad(format!(
                "clock offset {} ms is beyond the test range of +-{CLOCK_OFFSET_MAX_MS} ms",
                self.clock_offset_ms
            ));
        }
        Ok(())
    }

    /// The directory of shard `i`.
    pub fn shard_dir(&self, shard: u32) -> PathBuf {
        self.data_dir.join(format!("shard-{shard}"))
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Number of CPUs this process may run on (at least 1).
pub fn cpu_count() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}
