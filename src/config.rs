//! `ringkv serve` configuration: a TOML file and command-line flags, flags
//! winning, resolved into a [`ringkv_shards::NodeConfig`].
//!
//! TOML keys (all optional; sizes are bytes or strings such as `"64MiB"`):
//!
//! ```toml
//! host = "127.0.0.1"          # listen address
//! port = 7379                 # node port; shard i also listens on port + 1 + i
//! data_dir = "./ringkv-data"
//! shards = 2                  # default: number of CPUs
//! node_id = 1
//! pin = true                  # pin shard i to CPU i
//! durability = "sync"         # sync | batch | none
//! batch_window_ms = 2         # group-commit window of `batch`
//! memtable_size = "256MiB"    # per shard; default: from memory (docs/operations.md)
//! block_cache_size = "256MiB" # per shard
//! row_cache_size = "256MiB"   # per shard; 0 disables it
//! max_key_size = 1024
//! max_value_size = "1MiB"
//! max_frame_size = "8MiB"
//! max_connections = 10000
//! io_memory = "10MiB"         # io_uring registered buffers per shard
//! log_level = "info"          # or a tracing filter such as "ringkv_shards=debug"
//! resp_port = 6380            # Redis protocol port; 0 turns it off
//! requirepass = "secret"      # RESP AUTH password (default: none)
//! allow_flush = false         # allow RESP FLUSHDB / FLUSHALL
//! seeds = ["10.0.0.2:7379", "10.0.0.3:7379"]  # other nodes; none = standalone
//! replication_factor = 3      # copies of each key
//! vnodes = 256                # tokens of this node on the ring
//! rack = "r1"                 # replicas avoid sharing a rack
//! default_consistency = "quorum"  # one | quorum | all, for requests without a level
//! request_timeout_ms = 2000   # coordinator deadline
//! read_fanout = "all"         # all | required
//! hints = true                # hinted handoff
//! hint_window_secs = 10800    # hints older than this are dropped
//! max_hints_size = "256MiB"   # per shard
//! net_engine = "uring"        # uring (default) | glommio: how client connections are served
//! stall_report_ms = 5         # log a task queue run this far past its budget, with a backtrace
//! ```

use ringkv_shards::memory::{memory_limit_bytes, memtable_size_for};
use ringkv_shards::{DurabilityMode, NodeConfig};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// A size: a byte count, or a string with a binary suffix (`K`, `KiB`, `M`, `MiB`, `G`, `GiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
        let t = s.trim();
        let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(digits_end);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a size (e.g. 4096, 64KiB, 8MiB, 1GiB)"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            other => {
                return Err(format!(
                    "unknown size unit {other:?} in {s:?} (use KiB, MiB or GiB)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(Size)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Size(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Durability as written in config and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledge after fdatasync (default).
    Sync,
    /// Acknowledge after a bounded group-commit window.
    Batch,
    /// Acknowledge without waiting for the disk.
    None,
}

/// The settings of a config file and of the flags (each optional).
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Listen address [default: 127.0.0.1]
    #[arg(long)]
    pub host: Option<String>,
    /// Node port; shard i also listens on port + 1 + i [default: 7379]
    #[arg(long)]
    pub port: Option<u16>,
    /// Data directory [default: ./ringkv-data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Number of shards [default: number of CPUs]
    #[arg(long)]
    pub shards: Option<u32>,
    /// This node's id (stamped into versions) [default: 1]
    #[arg(long)]
    pub node_id: Option<u32>,
    /// Pin shard i to CPU i [default: true]
    #[arg(long)]
    pub pin: Option<bool>,
    /// When writes are acknowledged [default: sync]
    #[arg(long, value_enum)]
    pub durability: Option<Durability>,
    /// Group-commit window of `--durability batch`, milliseconds [default: 2]
    #[arg(long)]
    pub batch_window_ms: Option<u64>,
    /// Memtable size per shard, e.g. 256MiB [default: an eighth of memory over every
    /// shard's three memtables, within 64MiB..512MiB]
    #[arg(long)]
    pub memtable_size: Option<Size>,
    /// Block cache size per shard, e.g. 256MiB
    #[arg(long)]
    pub block_cache_size: Option<Size>,
    /// Row cache size per shard (current values of recently read keys), e.g. 256MiB; 0 disables it
    #[arg(long)]
    pub row_cache_size: Option<Size>,
    /// Largest key accepted (at most 1KiB)
    #[arg(long)]
    pub max_key_size: Option<Size>,
    /// Largest value accepted (at most 1MiB)
    #[arg(long)]
    pub max_value_size: Option<Size>,
    /// Largest request frame accepted [default: 8MiB]
    #[arg(long)]
    pub max_frame_size: Option<Size>,
    /// Largest number of client connections on the node [default: 10000]
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// io_uring registered buffer memory per shard [default: 10MiB]
    #[arg(long)]
    pub io_memory: Option<Size>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive [default: info; RUST_LOG also works]
    #[arg(long)]
    pub log_level: Option<String>,
    /// Redis protocol (RESP) port, on every shard; 0 turns it off [default: 6380]
    #[arg(long)]
    pub resp_port: Option<u16>,
    /// Password RESP clients must send with AUTH before other commands [default: none]
    #[arg(long, env = "RINGKV_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// Allow RESP FLUSHDB/FLUSHALL to delete every key [default: false]
    #[arg(long)]
    pub allow_flush: Option<bool>,
    /// Other nodes of the cluster, HOST:PORT[,HOST:PORT...] (each a node's port) [default: none, standalone]
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<String>>,
    /// Copies of each key (N) [default: 3]
    #[arg(long)]
    pub replication_factor: Option<u32>,
    /// Virtual-node tokens of this node on the ring [default: 256]
    #[arg(long)]
    pub vnodes: Option<u32>,
    /// This node's rack; replicas of a key avoid sharing a rack [default: none]
    #[arg(long)]
    pub rack: Option<String>,
    /// Level of requests that carry none, e.g. RESP commands [default: quorum]
    #[arg(long, value_enum)]
    pub default_consistency: Option<ConsistencyLevel>,
    /// How long a coordinator waits for replicas, milliseconds [default: 2000]
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Whether reads ask every live replica or only as many as the level needs [default: all]
    #[arg(long, value_enum)]
    pub read_fanout: Option<Fanout>,
    /// Keep writes a replica missed as hints and replay them when it is back [default: true]
    #[arg(long)]
    pub hints: Option<bool>,
    /// Drop hints older than this many seconds [default: 10800]
    #[arg(long)]
    pub hint_window_secs: Option<u64>,
    /// Largest size of one shard's hints, e.g. 256MiB [default: 256MiB]
    #[arg(long)]
    pub max_hints_size: Option<Size>,
    /// Test only: run this node's clock this many milliseconds off the real one
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub clock_offset_ms: Option<i64>,
    /// How shards serve binary-protocol client connections: their own io_uring ring, or a glommio task per connection [default: uring]
    #[arg(long, value_enum, env = "RINGKV_NET_ENGINE")]
    pub net_engine: Option<NetEngineName>,
    /// Diagnostic: log, with a backtrace, every task queue run of a shard this many milliseconds past its budget [default: off]
    #[arg(long)]
    pub stall_report_ms: Option<u64>,
}

/// The network engine as written in config and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NetEngineName {
    /// The shard's own io_uring ring serves its client connections.
    Uring,
    /// One glommio task per client connection.
    Glommio,
}

/// A consistency level as written in config and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ConsistencyLevel {
    /// One replica.
    One,
    /// A majority of the replicas.
    Quorum,
    /// Every replica.
    All,
}

/// Read fan-out as written in config and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fanout {
    /// Ask every live replica, answer after R (late answers still repair).
    All,
    /// Ask only R replicas.
    Required,
}

impl Settings {
    /// Reads a TOML config file.
    pub fn from_file(path: &std::path::Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// `self` with every setting `over` has replaced by it.
    pub fn overridden_by(self, over: Settings) -> Settings {
        Settings {
            host: over.host.or(self.host),
            port: over.port.or(self.port),
            data_dir: over.data_dir.or(self.data_dir),
            shards: over.shards.or(self.shards),
            node_id: over.node_id.or(self.node_id),
            pin: over.pin.or(self.pin),
            durability: over.durability.or(self.durability),
            batch_window_ms: over.batch_window_ms.or(self.batch_window_ms),
            memtable_size: over.memtable_size.or(self.memtable_size),
            block_cache_size: over.block_cache_size.or(self.block_cache_size),
            row_cache_size: over.row_cache_size.or(self.row_cache_size),
            max_key_size: over.max_key_size.or(self.max_key_size),
            max_value_size: over.max_value_size.or(self.max_value_size),
            max_frame_size: over.max_frame_size.or(self.max_frame_size),
            max_connections: over.max_connections.or(self.max_connections),
            io_memory: over.io_memory.or(self.io_memory),
            log_level: over.log_level.or(self.log_level),
            resp_port: over.resp_port.or(self.resp_port),
            requirepass: over.requirepass.or(self.requirepass),
            allow_flush: over.allow_flush.or(self.allow_flush),
            seeds: over.seeds.or(self.seeds),
            replication_factor: over.replication_factor.or(self.replication_factor),
            vnodes: over.vnodes.or(self.vnodes),
            rack: over.rack.or(self.rack),
            default_consistency: over.default_consistency.or(self.default_consistency),
            request_timeout_ms: over.request_timeout_ms.or(self.request_timeout_ms),
            read_fanout: over.read_fanout.or(self.read_fanout),
            hints: over.hints.or(self.hints),
            hint_window_secs: over.hint_window_secs.or(self.hint_window_secs),
            max_hints_size: over.max_hints_size.or(self.max_hints_size),
            clock_offset_ms: over.clock_offset_ms.or(self.clock_offset_ms),
            net_engine: over.net_engine.or(self.net_engine),
            stall_report_ms: over.stall_report_ms.or(self.stall_report_ms),
        }
    }

    /// Resolves into a node configuration (defaults for what is unset),
    /// validated.
    pub fn resolve(&self) -> Result<NodeConfig, String> {
        let mut c = NodeConfig::new();
        let usize_of = |s: Size, name: &str| {
            usize::try_from(s.0).map_err(|_| format!("{name} {} is too large", s.0))
        };
        if let Some(v) = &self.host {
            c.host = v.clone();
        }
        if let Some(v) = self.port {
            c.port = v;
        }
        if let Some(v) = &self.data_dir {
            c.data_dir = v.clone();
        }
        if let Some(v) = self.shards {
            c.shards = v;
        }
        if let Some(v) = self.node_id {
            c.node_id = v;
        }
        if let Some(v) = self.pin {
            c.pin = v;
        }
        let window = Duration::from_millis(self.batch_window_ms.unwrap_or(2));
        c.durability = match self.durability.unwrap_or(Durability::Sync) {
            Durability::Sync => DurabilityMode::Sync,
            Durability::Batch => DurabilityMode::Batch { window },
            Durability::None => DurabilityMode::None,
        };
        c.memtable_size = match self.memtable_size {
            Some(v) => usize_of(v, "memtable_size")?,
            // After the shard count is known: the memory is shared by every shard's memtables.
            None => memtable_size_for(memory_limit_bytes().unwrap_or(0), c.shards),
        };
        if let Some(v) = self.block_cache_size {
            c.block_cache_size = usize_of(v, "block_cache_size")?;
        }
        if let Some(v) = self.row_cache_size {
            c.row_cache_size = usize_of(v, "row_cache_size")?;
        }
        if let Some(v) = self.max_key_size {
            c.key_size_max = usize_of(v, "max_key_size")?;
        }
        if let Some(v) = self.max_value_size {
            c.value_size_max = usize_of(v, "max_value_size")?;
        }
        if let Some(v) = self.max_frame_size {
            c.frame_size_max = usize_of(v, "max_frame_size")?;
        }
        if let Some(v) = self.max_connections {
            c.connections_max = v;
        }
        if let Some(v) = self.io_memory {
            c.io_memory = usize_of(v, "io_memory")?;
        }
        if let Some(v) = self.resp_port {
            c.resp_port = v;
        }
        c.requirepass = self.requirepass.clone().filter(|p| !p.is_empty());
        if let Some(v) = self.allow_flush {
            c.allow_flush = v;
        }
        if let Some(v) = self.net_engine {
            c.net_engine = match v {
                NetEngineName::Uring => ringkv_shards::NetEngine::Uring,
                NetEngineName::Glommio => ringkv_shards::NetEngine::Glommio,
            };
        }
        match self.stall_report_ms {
            Some(0) => return Err("stall_report_ms must be at least 1".into()),
            Some(ms) => c.stall_report = Some(Duration::from_millis(ms)),
            None => {}
        }
        self.resolve_cluster(&mut c);
        if c.cluster.clustered() && self.node_id.is_none() {
            return Err(
                "a node with --seeds needs its own --node-id (a number unique in the cluster)"
                    .into(),
            );
        }
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

impl Settings {
    fn resolve_cluster(&self, c: &mut NodeConfig) {
        use ringkv_cluster::consistency::Level;
        use ringkv_cluster::coordinator::ReadFanout;
        let k = &mut c.cluster;
        if let Some(v) = &self.seeds {
            k.seeds = v
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = self.replication_factor {
            k.replication_factor = v;
        }
        if let Some(v) = self.vnodes {
            k.vnodes = v;
        }
        if let Some(v) = &self.rack {
            k.rack = v.clone();
        }
        if let Some(v) = self.default_consistency {
            k.default_consistency = match v {
                ConsistencyLevel::One => Level::One,
                ConsistencyLevel::Quorum => Level::Quorum,
                ConsistencyLevel::All => Level::All,
            };
        }
        if let Some(v) = self.request_timeout_ms {
            k.request_timeout = Duration::from_millis(v);
        }
        if let Some(v) = self.read_fanout {
            k.read_fanout = match v {
                Fanout::All => ReadFanout::All,
                Fanout::Required => ReadFanout::Required,
            };
        }
        if let Some(v) = self.hints {
            k.hints = v;
        }
        if let Some(v) = self.hint_window_secs {
            k.hint_window = Duration::from_secs(v);
        }
        if let Some(v) = self.max_hints_size {
            k.hints_bytes_max = v.0;
        }
        if let Some(v) = self.clock_offset_ms {
            c.clock_offset_ms = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_bytes_and_binary_suffixes() {
        assert_eq!("4096".parse::<Size>().unwrap(), Size(4096));
        assert_eq!("64KiB".parse::<Size>().unwrap(), Size(64 << 10));
        assert_eq!("8 MiB".parse::<Size>().unwrap(), Size(8 << 20));
        assert_eq!("1g".parse::<Size>().unwrap(), Size(1 << 30));
        assert!("12 parsecs".parse::<Size>().is_err());
        assert!("".parse::<Size>().is_err());
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_fill_the_rest() {
        let file: Settings = toml::from_str(
            "port = 9000\nshards = 3\ndurability = \"batch\"\nmemtable_size = \"1MiB\"\nmax_connections = 5\n",
        )
        .unwrap();
        let flags = Settings {
            port: Some(9100),
            ..Settings::default()
        };
        let c = file.overridden_by(flags).resolve().unwrap();
        assert_eq!(c.port, 9100);
        assert_eq!(c.shards, 3);
        assert_eq!(c.memtable_size, 1 << 20);
        assert_eq!(c.connections_max, 5);
        assert_eq!(c.host, "127.0.0.1");
        assert!(matches!(c.durability, DurabilityMode::Batch { .. }));
    }

    #[test]
    fn an_unset_memtable_size_is_shared_out_of_memory_by_the_shards() {
        let memory = memory_limit_bytes().unwrap();
        for shards in [1, 2, 16] {
            let file: Settings = toml::from_str(&format!("shards = {shards}\n")).unwrap();
            assert_eq!(
                file.resolve().unwrap().memtable_size,
                memtable_size_for(memory, shards),
                "{shards} shards"
            );
        }
    }

    #[test]
    fn the_stall_report_is_off_by_default_and_a_zero_threshold_is_refused() {
        assert_eq!(Settings::default().resolve().unwrap().stall_report, None);
        let file: Settings = toml::from_str("stall_report_ms = 5\n").unwrap();
        assert_eq!(
            file.resolve().unwrap().stall_report,
            Some(Duration::from_millis(5))
        );
        let zero: Settings = toml::from_str("stall_report_ms = 0\n").unwrap();
        assert!(zero.resolve().unwrap_err().contains("stall_report_ms"));
    }

    #[test]
    fn the_network_engine_defaults_to_uring_and_the_file_or_a_flag_chooses_it() {
        use ringkv_shards::NetEngine;
        let default = Settings::default().resolve().unwrap();
        assert_eq!(default.net_engine, NetEngine::Uring);
        let file: Settings = toml::from_str("net_engine = \"glommio\"\n").unwrap();
        assert_eq!(file.resolve().unwrap().net_engine, NetEngine::Glommio);
        let flags = Settings {
            net_engine: Some(NetEngineName::Uring),
            ..Settings::default()
        };
        let c = file.overridden_by(flags).resolve().unwrap();
        assert_eq!(c.net_engine, NetEngine::Uring);
        assert!(toml::from_str::<Settings>("net_engine = \"epoll\"\n").is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(toml::from_str::<Settings>("prot = 1\n").is_err());
        let bad = Settings {
            shards: Some(0),
            ..Settings::default()
        };
        assert!(bad.resolve().unwrap_err().contains("shards"));
    }
}
