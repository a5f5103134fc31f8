//! Leveled compaction: which tables to merge ([`pick()`](fn@pick)), what a merge keeps
//! ([`filter`]) and how fast it may write ([`rate`]). All pure logic, no I/O:
//! the engine (`crate::engine`) runs the chosen jobs in its background queue.
//!
//! Shape of the tree (the LevelDB/RocksDB leveled scheme, size ratio 10):
//! ```text
//!   L0   overlapping tables, one per flushed memtable  (compacted at level0_trigger files)
//!   L1   non-overlapping, sorted by key, target level1_size
//!   L2   target level1_size * ratio
//!   ...
//!   L6   the last level: no target, never compacted further
//! ```
//! Invariants:
//! - In L1 and deeper, tables of one level do not overlap and each key appears
//!   at most once per level, so a job may take a single table of Ln.
//! - Data in a higher level arrived later than data of the same key below it.
//!   Versions still decide (the highest wins wherever it is), so order between
//!   levels only matters for dropping tombstones, which happens only at the
//!   bottommost level after the grace period (Cassandra's gc_grace rule).

pub mod filter;
pub mod pick;
pub mod rate;

pub use filter::retain;
pub use pick::{level_target, pick, Job, LevelConfig, LEVEL_COUNT};
pub use rate::TokenBucket;
