//! How much memory this process may use, and the memtable budget a shard
//! takes from it when the operator sets none.
//!
//! Why size memtables from memory: a memtable that holds a shard's
//! overwritten keys absorbs the overwrites in place, where a small one
//! flushes each key again and again and compaction merges the copies. On a
//! 2-core VM with 1M keys of 100 bytes (perf/RESULTS.md, "A memtable sized
//! from memory"), SET P16 went from 608-662k to 761-816k per second and
//! from 1.44-1.59 to 1.21-1.30 us of CPU per SET with 512 MiB against the
//! old fixed 64 MiB. ScyllaDB and Cassandra size their memtables from the
//! memory they run in for the same reason. The cost is memory (a bound
//! below) and WAL replay at restart: the WAL behind one memtable is at most
//! `WAL_SPAN_MEMTABLES_MAX` budgets, and replay read about 1.3 GB/s here.

use ringkv_storage::engine::FROZEN_MEMTABLES_MAX;

const MIB: u64 = 1 << 20;

/// The smallest budget [`memtable_size_for`] gives: the fixed default
/// ringkv had before it sized memtables from memory, and RocksDB's.
pub const MEMTABLE_SIZE_AUTO_MIN: usize = 64 << 20;

/// The largest budget [`memtable_size_for`] gives: past it a bigger
/// memtable mostly lengthens WAL replay (up to four budgets of WAL per
/// shard) and the index's growth steps, for little fewer flushes.
pub const MEMTABLE_SIZE_AUTO_MAX: usize = 512 << 20;

/// Every memtable of every shard together (the active one and those
/// waiting for their flush) gets at most this fraction of the memory: the
/// caches and the tables' indexes and filters take their own share.
const MEMTABLE_MEMORY_DIVISOR: u64 = 8;

/// The memtable budget per shard for a node of `shards` shards that may
/// use `memory_bytes`: an eighth of the memory, over every memtable that
/// may be alive at once (the active one and up to `FROZEN_MEMTABLES_MAX`
/// frozen ones per shard), within [`MEMTABLE_SIZE_AUTO_MIN`] and
/// [`MEMTABLE_SIZE_AUTO_MAX`]. A whole number of MiB. Unknown memory (0)
/// gives the minimum.
pub fn memtable_size_for(memory_bytes: u64, shards: u32) -> usize {
    let memtables = (FROZEN_MEMTABLES_MAX as u64 + 1) * u64::from(shards.max(1));
    let share = memory_bytes / MEMTABLE_MEMORY_DIVISOR / memtables / MIB * MIB;
    share.clamp(MEMTABLE_SIZE_AUTO_MIN as u64, MEMTABLE_SIZE_AUTO_MAX as u64) as usize
}

/// The memory this process may use: the machine's physical memory, or its
/// cgroup (v2) `memory.max` when that is lower. `None` when neither can be
/// read. A cgroup v1 limit is not looked at.
pub fn memory_limit_bytes() -> Option<u64> {
    let physical = physical_memory_bytes();
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|groups| cgroup_v2_path(&groups).map(str::to_owned))
        .and_then(|path| std::fs::read_to_string(format!("/sys/fs/cgroup{path}/memory.max")).ok())
        .and_then(|max| parse_memory_max(&max));
    match (physical, cgroup) {
        (Some(p), Some(c)) => Some(p.min(c)),
        (p, c) => p.or(c),
    }
}

fn physical_memory_bytes() -> Option<u64> {
    // SAFETY: sysconf reads a system value; it has no memory effects.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && page_size > 0).then(|| pages as u64 * page_size as u64)
}

/// The unified (v2) hierarchy's path in `/proc/self/cgroup`: the line
/// `0::/path`.
fn cgroup_v2_path(groups: &str) -> Option<&str> {
    groups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| path.trim_end_matches('/'))
}

/// A `memory.max`: a byte count, or `max` (no limit: `None`).
fn parse_memory_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn an_eighth_of_memory_is_shared_by_every_memtable_that_may_be_alive() {
        // 96 GiB, 8 shards, 3 memtables each: 12 GiB over 24 memtables.
        assert_eq!(memtable_size_for(96 * GIB, 8), 512 << 20);
        // 48 GiB, 8 shards: 6 GiB over 24.
        assert_eq!(memtable_size_for(48 * GIB, 8), 256 << 20);
        // A share that is not a whole number of MiB is rounded down to one.
        assert_eq!(memtable_size_for(100 * GIB, 12), 355 << 20);
    }

    #[test]
    fn the_budget_stays_within_its_bounds() {
        assert_eq!(memtable_size_for(4 * GIB, 8), MEMTABLE_SIZE_AUTO_MIN);
        assert_eq!(memtable_size_for(0, 1), MEMTABLE_SIZE_AUTO_MIN);
        assert_eq!(memtable_size_for(1 << 40, 1), MEMTABLE_SIZE_AUTO_MAX);
        // Zero shards (refused later by validation) is taken as one.
        assert_eq!(memtable_size_for(24 * GIB, 0), MEMTABLE_SIZE_AUTO_MAX);
    }

    #[test]
    fn the_cgroup_path_and_limit_are_read_from_their_files_formats() {
        assert_eq!(
            cgroup_v2_path("0::/system.slice/ringkv.service\n"),
            Some("/system.slice/ringkv.service")
        );
        assert_eq!(cgroup_v2_path("0::/\n"), Some(""));
        assert_eq!(
            cgroup_v2_path("12:memory:/docker/abc\n1:name=systemd:/\n"),
            None
        );
        assert_eq!(parse_memory_max("8589934592\n"), Some(8 << 30));
        assert_eq!(parse_memory_max("max\n"), None);
    }

    #[test]
    fn this_machine_has_a_memory_limit() {
        let limit = memory_limit_bytes().expect("sysconf gives the physical memory on Linux");
        assert!(limit >= 64 * MIB, "{limit} bytes");
        assert!(limit <= physical_memory_bytes().unwrap());
    }
}
