//! Huge regions faulted in ahead of need, by a thread of their own.
//!
//! Why: a memtable's entries are read and written at random among hundreds
//! of MiB. On 4 KiB pages nearly every such access also misses the TLB, and
//! in a VM each page walk is two-dimensional; once a write's cache lines
//! were hinted in time, those walks were what a SET waited on. On 2 MiB
//! pages SET P16 went from 1.06M to 1.18M a second, medians of six
//! alternated pairs (perf/RESULTS.md, "Hints that follow the probe run, and
//! the memtable on huge pages"). But the first touch of a huge page zeroes
//! 2 MiB at once, 0.3 ms in this VM and up to 6 ms where the host has not
//! backed the memory yet: in a shard's thread, that is a request queue held
//! for that long. So the faults are taken here, on a thread of their own,
//! and a shard only ever picks up a region already
//! faulted in; when none is ready it falls back to plain heap memory (see
//! the memtable's `ChunkPool`), never waits. The thread runs at a lower
//! priority than the shards ([`PREFAULT_NICE`]), so the kernel preempts it
//! in favour of a busy shard: a fault in progress delays a shard by a
//! scheduler slice at most, not by the whole 2 MiB.
//!
//! Two users take regions: a memtable's chunk pool and the row cache's
//! entry slab (whose chunks are huge pages for the same reason). The thread
//! keeps up to [`READY_MAX`] regions ready (so that much memory is held
//! once the first of them has started it) and makes another each time one
//! is taken. Its CPU is the process's: a server's CPU per request counts it. It runs on the CPUs the process was started on
//! (the main thread's), not the core of the shard that started it.

use crate::huge_pages::{HugeRegion, HUGE_PAGE_BYTES};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// Regions the process-wide prefaulter keeps ready: 16 MiB, enough for a
/// shard filling its memtable at a million 100-byte writes a second for a
/// tenth of a second while the thread makes more.
pub(crate) const READY_MAX: usize = 8;

/// The thread's nice value. At 19 (the lowest priority) it starved beside a
/// busy shard on the same core: of a 1M-key load's 162 MiB of chunks, 40-60
/// MiB came faulted in, the rest fell back to the heap. At 5 all of them
/// did, with no more glommio stall reports than heap chunks gave (5-10
/// against 4-6 over a load and a run); at 0, 21-26.
const PREFAULT_NICE: libc::c_int = 5;

/// How long the thread waits before trying again when the kernel refuses a
/// mapping (out of address space or memory).
const RETRY_AFTER_REFUSAL: Duration = Duration::from_secs(1);

/// Regions faulted in and not yet taken, and the signal that one was taken.
#[derive(Debug)]
pub(crate) struct Prefaulter {
    ready: Mutex<Vec<HugeRegion>>,
    taken: Condvar,
    ready_max: usize,
}

impl Prefaulter {
    /// A prefaulter keeping `ready_max` regions ready, with its thread
    /// started. `None` if the thread could not be spawned.
    pub(crate) fn start(ready_max: usize) -> Option<Arc<Prefaulter>> {
        let prefaulter = Arc::new(Prefaulter {
            ready: Mutex::new(Vec::with_capacity(ready_max)),
            taken: Condvar::new(),
            ready_max,
        });
        let worker = Arc::clone(&prefaulter);
        std::thread::Builder::new()
            .name("ringkv-prefault".into())
            .spawn(move || worker.run())
            .ok()?;
        Some(prefaulter)
    }

    /// The process's prefaulter, started by the first call; `None` if its
    /// thread could not be spawned (callers then use heap memory).
    pub(crate) fn global() -> Option<&'static Prefaulter> {
        static GLOBAL: OnceLock<Option<Arc<Prefaulter>>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Prefaulter::start(READY_MAX))
            .as_deref()
    }

    /// A region whose every page is already faulted in, if one is ready.
    /// Never waits: if the thread holds the lock this moment, `None`.
    pub(crate) fn try_take(&self) -> Option<HugeRegion> {
        let region = self.ready.try_lock().ok()?.pop();
        if region.is_some() {
            self.taken.notify_one();
        }
        region
    }

    /// Regions ready now.
    #[cfg(test)]
    pub(crate) fn ready(&self) -> usize {
        self.ready.lock().map_or(0, |ready| ready.len())
    }

    /// Waits up to 20 s for `n` regions to be ready; panics past that.
    #[cfg(test)]
    pub(crate) fn wait_ready(&self, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.ready() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "no {n} regions within 20 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The thread: keeps `ready_max` regions ready, for as long as the
    /// process lives.
    fn run(&self) {
        lower_priority_on_process_cpus();
        loop {
            {
                let Ok(mut ready) = self.ready.lock() else {
                    return;
                };
                while ready.len() >= self.ready_max {
                    ready = match self.taken.wait(ready) {
                        Ok(ready) => ready,
                        Err(_) => return,
                    };
                }
            }
            let Some(region) = HugeRegion::map() else {
                std::thread::sleep(RETRY_AFTER_REFUSAL);
                continue;
            };
            fault_in(&region);
            match self.ready.lock() {
                Ok(mut ready) => ready.push(region),
                Err(_) => return,
            }
        }
    }
}

/// Touches every 4 KiB page of `region`, so the kernel backs all of it now:
/// with transparent huge pages the first write takes the whole 2 MiB page
/// and the rest find it; without them, each write faults one small page.
fn fault_in(region: &HugeRegion) {
    let base = region.base().as_ptr();
    for offset in (0..HUGE_PAGE_BYTES).step_by(4096) {
        // SAFETY: `offset` is inside the region, which this thread owns
        // until it is handed over; a volatile write of 0 over memory that is
        // still all zero changes nothing but its backing.
        unsafe { base.add(offset).write_volatile(0) };
    }
}

/// Moves the calling thread to a lower CPU priority ([`PREFAULT_NICE`]), and onto
/// the CPUs the process's main thread may run on: a shard's thread is pinned
/// to one core, and a thread it spawns would inherit that pin and compete
/// with it for that core alone. Best effort: either call failing leaves the
/// thread where it is.
pub(crate) fn lower_priority_on_process_cpus() {
    run_on_process_cpus();
    // SAFETY: gettid/setpriority take no pointers.
    unsafe {
        libc::setpriority(
            libc::PRIO_PROCESS,
            libc::gettid() as libc::id_t,
            PREFAULT_NICE,
        );
    }
}

/// Moves the calling thread onto the CPUs the process's main thread may run
/// on (a thread a shard spawns inherits the shard's pin to one core). Best
/// effort: a failing call leaves the thread where it is.
pub(crate) fn run_on_process_cpus() {
    // SAFETY: getpid/sched_getaffinity/sched_setaffinity only read and
    // write the `cpu_set_t` passed, which lives on this stack and is fully
    // initialised by CPU_ZERO's all-zero state.
    unsafe {
        let mut cpus: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(libc::getpid(), size, &mut cpus) == 0 {
            libc::sched_setaffinity(0, size, &cpus);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether every 4 KiB page of `region` is resident.
    fn resident(region: &HugeRegion) -> bool {
        let mut pages = vec![0u8; HUGE_PAGE_BYTES / 4096];
        // SAFETY: the region is a live mapping of HUGE_PAGE_BYTES, and
        // `pages` has a byte per page of it.
        let rc = unsafe {
            libc::mincore(
                region.base().as_ptr().cast(),
                HUGE_PAGE_BYTES,
                pages.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
        pages.iter().all(|&p| p & 1 == 1)
    }

    #[test]
    fn regions_come_faulted_in_and_taken_ones_are_replaced() {
        let prefaulter = Prefaulter::start(2).expect("a thread");
        prefaulter.wait_ready(2);
        let first = prefaulter.try_take().expect("a ready region");
        assert!(
            resident(&first),
            "every page faulted in before it was taken"
        );
        assert_eq!(first.base().as_ptr() as usize % HUGE_PAGE_BYTES, 0);
        // A fresh mapping is not resident: the check above can fail.
        let fresh = HugeRegion::map().expect("a mapping");
        assert!(!resident(&fresh));
        // The one taken is made again; never more than asked for.
        prefaulter.wait_ready(2);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(prefaulter.ready(), 2);
        let second = prefaulter.try_take().expect("a ready region");
        assert_ne!(first.base(), second.base());
    }

    /// `Cpus_allowed_list` and the nice value of each thread of this
    /// process named `name`.
    fn threads_named(name: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
            let dir = task.expect("a task").path();
            let (Ok(status), Ok(stat)) = (
                std::fs::read_to_string(dir.join("status")),
                std::fs::read_to_string(dir.join("stat")),
            ) else {
                continue;
            };
            if !stat.contains(&format!("({name})")) {
                continue;
            }
            // Field 19 of stat is the nice value; fields after the
            // command's closing parenthesis start at field 3.
            let nice = stat
                .rsplit_once(") ")
                .unwrap()
                .1
                .split(' ')
                .nth(19 - 3)
                .unwrap();
            found.push((cpus_allowed(&status), nice.to_string()));
        }
        found
    }

    fn cpus_allowed(status: &str) -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .expect("Cpus_allowed_list")
            .trim()
            .to_string()
    }

    #[test]
    fn the_thread_leaves_its_starters_core_and_runs_below_the_shards_priority() {
        // Started from a thread pinned to one CPU, as a shard's is.
        // SAFETY: the set lives on this stack; the call pins this thread.
        unsafe {
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut one);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one);
        }
        let prefaulter = Prefaulter::start(1).expect("a thread");
        prefaulter.wait_ready(1);
        let process = cpus_allowed(&std::fs::read_to_string("/proc/self/status").unwrap());
        let threads = threads_named("ringkv-prefault");
        assert!(!threads.is_empty());
        for (cpus, nice) in threads {
            assert_eq!(cpus, process, "on the process's CPUs");
            assert_eq!(nice, PREFAULT_NICE.to_string());
        }
    }
}
