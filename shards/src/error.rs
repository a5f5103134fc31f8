//! The node runtime's error type. Every variant says what was seen, and the
//! node exits with its message (no backtrace) when one reaches `main`.

use std::path::PathBuf;

/// Why a node could not start or stopped abnormally. When one of these is
/// returned no shard is serving any more; acknowledged writes are on disk
/// (the engines are closed or were never opened).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// RLIMIT_MEMLOCK is below what glommio needs to start its rings.
    #[error(
        "the locked-memory limit (RLIMIT_MEMLOCK) is {seen} bytes but ringkv needs at least {needed} bytes \
         for its io_uring rings; raise it: `ulimit -l unlimited` in the shell that starts ringkv, \
         `LimitMEMLOCK=infinity` in the systemd unit, or a `memlock` line in /etc/security/limits.conf"
    )]
    MemlockTooLow {
        /// The soft limit seen (after trying to raise it to the hard limit).
        seen: u64,
        /// The limit needed.
        needed: u64,
    },
    /// The configuration is not usable; nothing was started.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The data directory cannot be used (unreadable metadata, other shard count).
    #[error("data directory {}: {reason}", path.display())]
    DataDir {
        /// The directory or file concerned.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A listening socket could not be opened.
    #[error("shard {shard} cannot listen on {addr}: {source}")]
    Bind {
        /// The shard.
        shard: u32,
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A port of the node is taken (checked before any shard starts).
    #[error("cannot listen on {addr}: {source} (a node uses ports port..=port+shards; is another node running?)")]
    PortInUse {
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A shard's storage engine failed to open or close.
    #[error("shard {shard} storage: {source}")]
    Storage {
        /// The shard.
        shard: u32,
        /// The engine's error.
        #[source]
        source: ringkv_storage::Error,
    },
    /// Starting the executors or the signal thread failed.
    #[error("startup failed: {0}")]
    Startup(String),
    /// A shard stopped with an error (its message says which and why).
    #[error("shard {shard} failed: {reason}")]
    Shard {
        /// The shard.
        shard: u32,
        /// What happened.
        reason: String,
    },
}
