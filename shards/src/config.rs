//! The node's resolved configuration, as the runtime consumes it. Parsing
//! (TOML file, command-line flags) lives in the `ringkv` binary; this type is
//! what it produces, already merged and validated by [`NodeConfig::validate`].

use crate::error::Error;
use crate::limits::{
    BACKGROUND_SHARES_DEFAULT, CONNECTIONS_MAX_DEFAULT, IO_MEMORY_DEFAULT, RESP_PORT_DEFAULT,
    SHARDS_MAX,
};
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
    /// Memtable size per shard, bytes.
    pub memtable_size: usize,
    /// Block cache size per shard, bytes.
    pub block_cache_size: usize,
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
}

impl NodeConfig {
    /// The defaults: 127.0.0.1:7379, one shard per CPU, `./ringkv-data`, sync durability.
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
            key_size_max: ringkv_net::limits::KEY_SIZE_MAX,
            value_size_max: ringkv_net::limits::VALUE_SIZE_MAX,
            frame_size_max: ringkv_net::limits::FRAME_SIZE_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            io_memory: IO_MEMORY_DEFAULT,
            background_shares: BACKGROUND_SHARES_DEFAULT,
            resp_port: RESP_PORT_DEFAULT,
            requirepass: None,
            allow_flush: false,
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
