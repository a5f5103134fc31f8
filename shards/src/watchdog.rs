//! A node-wide watchdog for shard executors that sleep through their own
//! timers, and the nudge that ends such a sleep.
//!
//! Seen on this machine (kernel 6.18, glommio 0.9), once in a few dozen
//! benchmark cells: a shard's thread asleep in glommio's wait on its main
//! ring for minutes, no context switch at all (so no timer of the executor
//! fired, not even the network loop's 20 ms re-checks), every socket drained
//! both ways, its clients waiting for answers. Whatever ended the sleep (a
//! new connection, a debugger attaching) set everything going at once: the
//! executor had work due and did not know. The cause is inside glommio's
//! sleep (how it links its rings and arms its timers) or the kernel's
//! task-work notification, and is not found.
//!
//! What this does about it: each shard runs a tiny task that bumps its
//! heartbeat on a glommio timer every [`HEARTBEAT_INTERVAL`]. A thread
//! (`ringkv-watchdog`) looks every [`CHECK_INTERVAL`]; a shard whose
//! heartbeat has not moved for [`STALL_AFTER`] *while its thread sleeps*
//! (state `S` in `/proc`) is asleep with a timer overdue: the watchdog sends
//! its thread `SIGURG`, whose handler does nothing. The signal ends the
//! wait (io_uring's wait returns or restarts, and the kernel runs the task
//! work it had queued), and glommio goes round its loop and runs what is
//! due. A thread that is running (a long step, a busy shard) is never
//! signalled. Each nudge is counted (`executor_nudges`) and logged, so the
//! stall, bounded to about [`STALL_AFTER`], stays visible.
//!
//! `SIGURG` is ignored by default, no library of ours uses it, and its
//! handler is installed with `SA_RESTART`, so system calls it interrupts
//! restart instead of failing with `EINTR`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

/// How often a shard's heartbeat task bumps its count.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(10);

/// How often the watchdog looks at the heartbeats.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// How long a sleeping shard's heartbeat may stand still before its thread
/// is nudged: twenty heartbeats overdue.
pub const STALL_AFTER: Duration = Duration::from_millis(200);

/// One shard's side: the count its executor bumps, and the nudges it got.
#[derive(Debug, Default)]
pub struct Heartbeat {
    beats: AtomicU64,
    nudges: AtomicU64,
}

impl Heartbeat {
    /// Records that the executor ran its timers.
    pub fn beat(&self) {
        self.beats.fetch_add(1, Ordering::Relaxed);
    }

    /// Times the watchdog woke this shard's sleeping executor.
    pub fn nudges(&self) -> u64 {
        self.nudges.load(Ordering::Relaxed)
    }
}

/// A watched shard.
#[derive(Debug)]
struct Watched {
    shard: u32,
    /// The executor thread, to signal it.
    thread: libc::pthread_t,
    /// Its kernel thread id, to read its state.
    tid: libc::pid_t,
    heartbeat: Arc<Heartbeat>,
    last_beats: u64,
    /// When `last_beats` last changed (or the shard was last nudged).
    since: Instant,
}

/// The watchdog of one node. Shards register their executor thread; the
/// watchdog thread starts with the first registration.
#[derive(Debug, Default)]
pub struct Watchdog {
    watched: Mutex<Vec<Watched>>,
    started: std::sync::OnceLock<()>,
}

impl Watchdog {
    /// Registers the calling thread (a shard's executor) under `shard` and
    /// returns the heartbeat its heartbeat task must bump every
    /// [`HEARTBEAT_INTERVAL`].
    pub fn watch_this_thread(self: &Arc<Self>, shard: u32) -> Arc<Heartbeat> {
        install_nudge_handler();
        let heartbeat = Arc::new(Heartbeat::default());
        let watched = Watched {
            shard,
            // SAFETY: pthread_self and gettid have no preconditions.
            thread: unsafe { libc::pthread_self() },
            tid: unsafe { libc::gettid() },
            heartbeat: heartbeat.clone(),
            last_beats: 0,
            since: Instant::now(),
        };
        self.watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(watched);
        let me = self.clone();
        self.started.get_or_init(|| {
            let spawned = std::thread::Builder::new()
                .name("ringkv-watchdog".into())
                .spawn(move || Watchdog::run(me));
            if let Err(e) = spawned {
                tracing::warn!("cannot start the executor watchdog: {e}");
            }
        });
        heartbeat
    }

    /// Times `shard`'s executor was nudged (0 for a shard not watched).
    pub fn nudges_of(&self, shard: u32) -> u64 {
        self.watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|w| w.shard == shard)
            .map_or(0, |w| w.heartbeat.nudges())
    }

    /// Forgets `shard` (its executor is ending: its thread id may be reused).
    pub fn unwatch(&self, shard: u32) {
        self.watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|w| w.shard != shard);
    }

    /// The watchdog thread: runs until the node lets go of the watchdog.
    fn run(self: Arc<Self>) {
        while Arc::strong_count(&self) > 1 {
            std::thread::sleep(CHECK_INTERVAL);
            let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
            for w in watched.iter_mut() {
                let beats = w.heartbeat.beats.load(Ordering::Relaxed);
                if beats != w.last_beats {
                    w.last_beats = beats;
                    w.since = Instant::now();
                    continue;
                }
                if w.since.elapsed() < STALL_AFTER || !is_sleeping(w.tid) {
                    continue;
                }
                // SAFETY: the thread is registered until its executor ends
                // (`unwatch` under this lock), and SIGURG has a handler.
                let sent = unsafe { libc::pthread_kill(w.thread, libc::SIGURG) };
                w.since = Instant::now();
                if sent != 0 {
                    continue;
                }
                let nudges = w.heartbeat.nudges.fetch_add(1, Ordering::Relaxed) + 1;
                // The first, then every power of two: evidence without a flood.
                if nudges.is_power_of_two() {
                    tracing::warn!(
                        shard = w.shard,
                        nudges,
                        "shard executor asleep with its timers overdue (no heartbeat for {STALL_AFTER:?}): woke it with a signal"
                    );
                }
            }
        }
    }
}

/// Whether thread `tid` of this process sleeps (state `S`), per
/// `/proc/self/task/<tid>/stat`. False when it cannot be read.
fn is_sleeping(tid: libc::pid_t) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may
    // hold spaces: take the first field after the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        == Some("S")
}

extern "C" fn on_nudge(_: libc::c_int) {}

/// Installs the do-nothing `SIGURG` handler, once per process.
fn install_nudge_handler() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: a sigaction for SIGURG with a handler that does nothing
        // (async-signal-safe), a zeroed and emptied mask, and SA_RESTART.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_nudge as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGURG, &action, std::ptr::null_mut()) != 0 {
                tracing::warn!(
                    "cannot install the SIGURG handler of the executor watchdog: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nudge must be harmless to a glommio executor: its wait on its
    /// ring is interrupted (EINTR, or restarted), and it goes on. Here an
    /// executor that never beats sleeps on a glommio timer while the
    /// watchdog nudges it; the timer still fires on time and I/O still works.
    #[test]
    fn a_nudged_glommio_executor_goes_on_working() {
        let watchdog = Arc::new(Watchdog::default());
        let w = watchdog.clone();
        let (slept, nudges) = std::thread::spawn(move || {
            let ex = glommio::LocalExecutorBuilder::default()
                .make()
                .expect("executor");
            ex.run(async move {
                let heartbeat = w.watch_this_thread(9);
                let start = Instant::now();
                glommio::timer::sleep(STALL_AFTER * 4).await;
                let slept = start.elapsed();
                // I/O through glommio's ring after the nudges.
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("after-nudge");
                std::fs::write(&path, b"still works").expect("write");
                let file = glommio::io::BufferedFile::open(&path).await.expect("open");
                let read = file.read_at(0, 11).await.expect("read");
                assert_eq!(&*read, b"still works");
                file.close().await.expect("close");
                w.unwatch(9);
                (slept, heartbeat.nudges())
            })
        })
        .join()
        .expect("executor thread");
        assert!(nudges >= 1, "the sleeping executor was nudged");
        assert!(
            slept >= STALL_AFTER * 4 && slept < STALL_AFTER * 4 + Duration::from_secs(2),
            "the timer fired on time: {slept:?}"
        );
    }

    #[test]
    fn a_sleeping_thread_whose_heartbeat_stops_is_nudged_and_a_beating_one_is_not() {
        let watchdog = Arc::new(Watchdog::default());
        let (tx, rx) = std::sync::mpsc::channel();
        // A thread that registers, beats for a while, then sleeps without
        // beating: it must be nudged (its sleep interrupted) within a few
        // stall periods, and not before it stops beating.
        let w = watchdog.clone();
        let worker = std::thread::spawn(move || {
            let heartbeat = w.watch_this_thread(7);
            let until = Instant::now() + STALL_AFTER * 2;
            while Instant::now() < until {
                heartbeat.beat();
                std::thread::sleep(HEARTBEAT_INTERVAL);
            }
            let _ = tx.send(heartbeat.nudges());
            // Sleeps without beating: a stalled executor.
            std::thread::sleep(STALL_AFTER * 5);
            // Unwatched before the thread ends, as the shards do.
            w.unwatch(7);
            heartbeat.nudges()
        });
        let nudges_while_beating = rx.recv().expect("worker reports");
        assert_eq!(nudges_while_beating, 0, "a beating thread is left alone");
        let nudges_after_stall = worker.join().expect("worker");
        assert!(
            nudges_after_stall >= 1,
            "a sleeping thread with a stopped heartbeat is nudged"
        );
    }
}
