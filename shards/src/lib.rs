//! ringkv-shards: the thread-per-core shell of a ringkv node.
//!
//! One pinned glommio executor per shard; each owns its slice of the key
//! space (`shard_for(token(key), shards)`), its storage engine, its clock and
//! its listeners. Nothing is shared between shards but a few node-wide
//! atomics (stop flag, connection count); cross-shard work travels over the
//! channel mesh as owned messages. glommio is used only inside this crate.

pub mod clock;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod datadir;
pub mod error;
pub mod executor_clock;
pub mod forward;
pub mod hlc;
pub mod join;
pub mod keylock;
pub mod limits;
pub mod listener;
pub mod memlock;
pub mod memory;
pub mod mesh;
pub mod multi;
pub mod oneshot;
pub mod resp_conn;
pub mod resp_exec;
pub mod resp_info;
pub mod runtime;
pub mod service;
pub mod shard;
pub mod stall_report;
pub mod stop;
pub mod store;
pub mod uring;
pub mod watchdog;

pub use config::{ClusterConfig, DurabilityMode, NetEngine, NodeConfig};
pub use error::Error;
pub use runtime::run;
