//! What keeps a shard's executor from sleeping with work due: timers kept
//! pending by the heartbeat task, and a node-wide watchdog that nudges an
//! executor that sleeps anyway.
//!
//! The cause, found on 2026-12-06 (perf/RESULTS.md, "glommio parks with
//! tasks ready to run"): glommio 0.9's loop polls its rings and fires its
//! timers, then runs its task queues, but runs none if at that moment its
//! latency ring holds a completion it has not consumed yet (`need_preempt()`
//! is true; where that stray completion comes from is not pinned down). It
//! takes "ran nothing" for "nothing to run", spins `spin_before_park` and
//! sleeps, with the tasks it has just woken still queued; only an event of
//! its own (a timer due, a completion in its rings) ends that sleep. A
//! patched glommio counted 4 to 6 such strandings in about 40 s of load on
//! one shard, one of them a 216 ms sleep (ended by this watchdog) that was a
//! SET's 228 ms maximum latency: every timer had fired and the network loop,
//! itself stranded, had no read pending in glommio's ring.
//!
//! What this does about it:
//! - Each shard's heartbeat task ([`beat_with_timers_pending`]) keeps
//!   [`PENDING_TIMERS`] glommio timers registered, one beat interval apart
//!   ([`HEARTBEAT_INTERVAL`], 1 ms, while the shard is busy; up to
//!   [`IDLE_BEAT_MAX`] when it is idle). When the first fires and the task
//!   is among the stranded ones, the next is still registered and ends the
//!   sleep: a stranding costs at most about one interval, not a watchdog
//!   period.
//! - A thread (`ringkv-watchdog`) looks every [`CHECK_INTERVAL`]; a shard
//!   whose heartbeat has not moved for [`STALL_AFTER`] *while its thread
//!   sleeps* (state `S` in `/proc`) is asleep with its timers overdue anyway:
//!   the watchdog sends its thread `SIGURG`, whose handler does nothing. The
//!   signal ends the wait (io_uring's wait returns or restarts), and glommio
//!   goes round its loop and runs what is due. A thread that is running (a
//!   long step, a busy shard) is never signalled. Each nudge is counted
//!   (`executor_nudges`) and logged, so such a stall, bounded to about
//!   [`STALL_AFTER`], stays visible.
//!
//! loadgen's threads (perf/src/runner.rs) use the same two, registered under
//! their thread index while they measure: a run of its io_uring transport,
//! whose completions are not glommio's, once slept for good that way.
//!
//! `SIGURG` is ignored by default, no library of ours uses it, and its
//! handler is installed with `SA_RESTART`, so system calls it interrupts
//! restart instead of failing with `EINTR`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

/// How often a busy shard's heartbeat task bumps its count, and about the
/// longest a busy shard's stranded executor sleeps (see the module's doc).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(1);

/// The heartbeat interval of an idle shard, at most (see
/// [`beat_with_timers_pending`]).
pub const IDLE_BEAT_MAX: Duration = Duration::from_millis(16);

/// More tasks than this run between two beats make a shard busy (its own
/// heartbeat and an idle network loop's re-checks are fewer).
pub const BUSY_TASKS_PER_BEAT: u64 = 4;

/// Timers the heartbeat task keeps registered, one beat interval apart: a
/// sleep that outlasts them all needs as many strandings in a row.
pub const PENDING_TIMERS: u32 = 3;

/// How often the watchdog looks at the heartbeats.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// How long a sleeping shard's heartbeat may stand still before its thread
/// is nudged.
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

/// A shard's heartbeat task: bumps `heartbeat` at least every
/// [`IDLE_BEAT_MAX`] for as long as its executor runs, every
/// [`HEARTBEAT_INTERVAL`] while it is busy, and keeps [`PENDING_TIMERS`]
/// glommio timers registered meanwhile, one interval apart, so that an
/// executor that parks with tasks ready (see the module's doc) is woken by
/// the next of them.
///
/// Busy means more than [`BUSY_TASKS_PER_BEAT`] tasks ran since the last
/// beat; an idle executor's interval doubles at every beat up to
/// [`IDLE_BEAT_MAX`], so an idle shard wakes about 60 times a second
/// instead of 1000 (that cost 7 % of a core for two idle shards), and the
/// first stranding after a quiet spell lasts at most that long.
pub async fn beat_with_timers_pending(heartbeat: Arc<Heartbeat>) {
    use std::future::Future;
    use std::pin::Pin;
    let mut interval = HEARTBEAT_INTERVAL;
    let _ = crate::executor_clock::take_tasks_executed();
    loop {
        let mut timers: [glommio::timer::Timer; PENDING_TIMERS as usize] =
            std::array::from_fn(|i| glommio::timer::Timer::new(interval * (i as u32 + 1)));
        // The first to fire ends the wait; the others stay registered until
        // this task runs again and drops them.
        std::future::poll_fn(|cx| {
            if timers.iter_mut().any(|t| Pin::new(t).poll(cx).is_ready()) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        heartbeat.beat();
        let tasks = crate::executor_clock::take_tasks_executed();
        interval = next_beat_interval(interval, tasks);
    }
}

/// The interval after a beat of `interval` in which `tasks` tasks ran (the
/// heartbeat's own included): [`HEARTBEAT_INTERVAL`] once the executor is
/// busy, doubling up to [`IDLE_BEAT_MAX`] while it is not.
fn next_beat_interval(interval: Duration, tasks: u64) -> Duration {
    if tasks > BUSY_TASKS_PER_BEAT {
        HEARTBEAT_INTERVAL
    } else {
        (interval * 2).min(IDLE_BEAT_MAX)
    }
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
    /// returns the heartbeat its heartbeat task must bump at least every
    /// [`IDLE_BEAT_MAX`] ([`beat_with_timers_pending`] does).
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

    #[test]
    fn the_beat_quickens_at_once_when_busy_and_slows_by_halves_when_idle() {
        let mut interval = HEARTBEAT_INTERVAL;
        let mut idle = Vec::new();
        for _ in 0..6 {
            interval = next_beat_interval(interval, 1);
            idle.push(interval.as_millis());
        }
        assert_eq!(idle, [2, 4, 8, 16, 16, 16]);
        assert_eq!(
            next_beat_interval(IDLE_BEAT_MAX, BUSY_TASKS_PER_BEAT + 1),
            HEARTBEAT_INTERVAL
        );
        assert_eq!(
            next_beat_interval(HEARTBEAT_INTERVAL, BUSY_TASKS_PER_BEAT),
            HEARTBEAT_INTERVAL * 2
        );
    }

    /// The heartbeat task beats on a real executor, and keeps beating while
    /// the executor is idle (slower, but well inside the watchdog's limit).
    #[test]
    fn an_idle_executor_still_beats_inside_the_watchdogs_limit() {
        let beats = std::thread::spawn(|| {
            let ex = glommio::LocalExecutorBuilder::default()
                .make()
                .expect("executor");
            ex.run(async {
                let heartbeat = Arc::new(Heartbeat::default());
                glommio::spawn_local(beat_with_timers_pending(heartbeat.clone())).detach();
                glommio::timer::sleep(STALL_AFTER).await;
                heartbeat.beats.load(Ordering::Relaxed)
            })
        })
        .join()
        .expect("executor thread");
        // Idle from the start: 1+2+4+8+16 ms, then every 16 ms; 200 ms hold
        // about 14 beats, a few fewer on a slow machine, never 0.
        assert!(
            (3..=30).contains(&beats),
            "{beats} beats in {STALL_AFTER:?}"
        );
    }

    /// A busy executor (a task that yields all the time; preemption every
    /// millisecond, as the shards' request queue has) beats about every
    /// millisecond: far more often than an idle one.
    #[test]
    fn a_busy_executor_beats_every_millisecond() {
        let beats = std::thread::spawn(|| {
            let ex = glommio::LocalExecutorBuilder::default()
                .preempt_timer(Duration::from_millis(1))
                .make()
                .expect("executor");
            ex.run(async {
                let heartbeat = Arc::new(Heartbeat::default());
                glommio::spawn_local(beat_with_timers_pending(heartbeat.clone())).detach();
                let until = Instant::now() + STALL_AFTER;
                while Instant::now() < until {
                    futures_lite::future::yield_now().await;
                }
                heartbeat.beats.load(Ordering::Relaxed)
            })
        })
        .join()
        .expect("executor thread");
        // About 200 on a quiet machine; an idle executor makes about 14.
        assert!(beats >= 40, "{beats} beats in {STALL_AFTER:?}");
    }

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
