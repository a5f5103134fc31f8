//! Background tasks, timers and the wall clock, for the engine's own use.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A background task handle. Dropping it cancels the task (glommio 0.9
/// semantics): await it, or call `.detach()` to let it run on its own.
pub type BackgroundTask<T> = glommio::Task<T>;

/// Spawns `fut` on the current executor's background task queue if the caller
/// registered one (see [`set_background_queue`]), else on the default queue.
pub fn spawn_background<T: 'static>(fut: impl Future<Output = T> + 'static) -> BackgroundTask<T> {
    match current_background_queue() {
        // The queue belongs to this executor and is never removed, so spawning
        // into it cannot fail.
        Some(tq) => {
            glommio::spawn_local_into(fut, tq).expect("the background task queue is never removed")
        }
        None => glommio::spawn_local(fut),
    }
}

/// Spawns `fut` on the caller's task queue, not the background one: for
/// periodic work whose lateness the foreground pays for (see the WAL's
/// `Durability::None` writer: the tail it has not written yet grows in the
/// request path while it waits behind flushes and compactions).
pub fn spawn_beside<T: 'static>(fut: impl Future<Output = T> + 'static) -> BackgroundTask<T> {
    glommio::spawn_local(fut)
}

/// The background queue registered by the executor running on this thread, if any.
/// Reads the thread's cell first: a thread that never registered one asks
/// glommio nothing.
fn current_background_queue() -> Option<glommio::TaskQueueHandle> {
    let (id, tq) = BACKGROUND_QUEUE.with(std::cell::Cell::get)?;
    (id == glommio::executor().id()).then_some(tq)
}

thread_local! {
    /// The background queue and the id of the executor that owns it: a thread
    /// may run several executors one after another (tests do), and a queue
    /// handle is only valid in the executor that created it.
    static BACKGROUND_QUEUE: std::cell::Cell<Option<(usize, glommio::TaskQueueHandle)>> =
        const { std::cell::Cell::new(None) };
    /// The background queue's runtime read so far (see [`background_runtime`]).
    static BACKGROUND_RUNTIME: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
    /// When the background queue's current slice began (see [`yield_now`]).
    static SLICE_START: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    /// The backlog controller of this thread's background queue.
    static CONTROLLER: RefCell<Option<(usize, Rc<BacklogShares>)>> = const { RefCell::new(None) };
}

/// Shares of the foreground (request) queue the background queue is scaled
/// against: at full backlog the background queue gets as many.
pub const FOREGROUND_SHARES: usize = 1000;

/// How often glommio asks the controller for the background queue's shares.
const SHARES_ADJUSTMENT_PERIOD: Duration = Duration::from_millis(20);

/// How far behind one engine's background work is: 0 = nothing waiting (or
/// only routine work), 1 = writers are about to stall. `None` once the engine
/// is gone.
pub type BacklogSource = Box<dyn Fn() -> Option<f64>>;

/// The background queue's shares, from the backlog of the engines on this
/// thread (the idea of ScyllaDB's backlog controllers): `base` while nothing
/// waits, rising linearly to the foreground's shares as the worst backlog
/// nears a write stall. Background work thus stays out of the way of
/// requests while it keeps up, and takes CPU from them, in proportion, before
/// writers would have to stop; without it a busy shard starved its flushes
/// and stalled writers for hundreds of milliseconds at a time.
struct BacklogShares {
    base: usize,
    sources: RefCell<Vec<BacklogSource>>,
}

impl glommio::SharesManager for BacklogShares {
    fn shares(&self) -> usize {
        let mut worst: f64 = 0.0;
        self.sources.borrow_mut().retain(|source| match source() {
            Some(b) => {
                worst = worst.max(b);
                true
            }
            None => false,
        });
        shares_for(self.base, worst)
    }

    fn adjustment_period(&self) -> Duration {
        SHARES_ADJUSTMENT_PERIOD
    }
}

/// `base` at backlog 0 (and below), [`FOREGROUND_SHARES`] at 1 (and above),
/// linear between.
fn shares_for(base: usize, backlog: f64) -> usize {
    let base = base.clamp(1, FOREGROUND_SHARES);
    let b = if backlog.is_nan() {
        0.0
    } else {
        backlog.clamp(0.0, 1.0)
    };
    base + ((FOREGROUND_SHARES - base) as f64 * b).round() as usize
}

/// Creates (once per executor) the task queue for flushes and compactions,
/// with `base_shares` while they keep up (foreground work has
/// [`FOREGROUND_SHARES`]) and more as their backlog grows (see
/// [`register_backlog`]). Call once per executor before opening engines.
pub fn set_background_queue(base_shares: usize) {
    if current_background_queue().is_some() {
        return;
    }
    let controller = Rc::new(BacklogShares {
        base: base_shares,
        sources: RefCell::new(Vec::new()),
    });
    let tq = glommio::executor().create_task_queue(
        glommio::Shares::Dynamic(controller.clone()),
        glommio::Latency::NotImportant,
        "ringkv-storage-background",
    );
    let executor_id = glommio::executor().id();
    BACKGROUND_QUEUE.with(|q| q.set(Some((executor_id, tq))));
    BACKGROUND_RUNTIME.with(|total| total.set(Duration::ZERO));
    CONTROLLER.with(|c| *c.borrow_mut() = Some((executor_id, controller)));
}

/// Adds an engine's backlog to what sets the background queue's shares on
/// this executor (no effect without a background queue). The source is
/// dropped once it returns `None`.
pub fn register_backlog(source: BacklogSource) {
    let executor_id = glommio::executor().id();
    CONTROLLER.with(|c| {
        if let Some((id, controller)) = &*c.borrow() {
            if *id == executor_id {
                controller.sources.borrow_mut().push(source);
            }
        }
    });
}

/// How long this executor has run its background queue (flushes,
/// compactions, a flushed memtable's refill and teardown) since the queue was
/// made: glommio's clock of the queue's task runs, so the share of the core
/// background work took. `None` on a thread without a background queue.
pub fn background_runtime() -> Option<Duration> {
    let tq = current_background_queue()?;
    // glommio hands out a queue's runtime since the last read and starts it
    // again, so the total is kept here.
    let since_last = glommio::executor()
        .task_queue_stats(tq)
        .map(|stats| stats.runtime())
        .unwrap_or_default();
    Some(BACKGROUND_RUNTIME.with(|total| {
        total.set(total.get() + since_last);
        total.get()
    }))
}

/// Sleeps for `d` on the executor's timer.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}

/// How long background work (flushes, compactions) runs before it lets the
/// executor's other task queues in. glommio switches queues only when its
/// preemption timer fires (the request queue's latency, 1 ms) or a queue
/// yields; a yield inside the background queue goes on with its next task, so
/// a request arriving during a flush waited up to the whole millisecond.
pub const BACKGROUND_SLICE: Duration = Duration::from_micros(250);

/// Yields to other tasks of this executor. Called from the background queue,
/// it yields the queue itself once it has run [`BACKGROUND_SLICE`], so a
/// request waits at most about that long behind background work; the queues'
/// shares still decide how the CPU is split between them.
pub async fn yield_now() {
    if background_slice_spent() {
        glommio::executor().yield_task_queue_now().await;
        SLICE_START.with(|s| s.set(Some(Instant::now())));
    } else {
        futures_lite::future::yield_now().await;
    }
}

/// Whether the caller runs on this executor's background queue and that
/// queue's current slice is spent. A slice starts when the queue resumes
/// after yielding it (or at the first check); after an idle spell the first
/// check yields at once, an extra switch and nothing more.
fn background_slice_spent() -> bool {
    let Some(background) = current_background_queue() else {
        return false;
    };
    if glommio::executor().current_task_queue() != background {
        return false;
    }
    let now = Instant::now();
    SLICE_START.with(|s| match s.get() {
        Some(start) => now.saturating_duration_since(start) >= BACKGROUND_SLICE,
        None => {
            s.set(Some(now));
            false
        }
    })
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_rise_with_the_backlog_from_base_to_the_foreground() {
        assert_eq!(shares_for(100, 0.0), 100);
        assert_eq!(shares_for(100, -1.0), 100);
        assert_eq!(shares_for(100, f64::NAN), 100);
        assert_eq!(shares_for(100, 0.5), 550);
        assert_eq!(shares_for(100, 1.0), FOREGROUND_SHARES);
        assert_eq!(shares_for(100, 7.0), FOREGROUND_SHARES);
        assert_eq!(shares_for(0, 0.0), 1);
        assert_eq!(shares_for(5000, 0.0), FOREGROUND_SHARES);
    }

    /// Only the background queue's tasks count a slice; theirs is spent
    /// once it has run [`BACKGROUND_SLICE`], and a queue yield starts the next.
    #[test]
    fn background_tasks_yield_their_queue_once_their_slice_is_spent() {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async {
                set_background_queue(100);
                assert!(
                    !background_slice_spent(),
                    "the foreground never counts a slice"
                );
                let checks = spawn_background(async {
                    let first = background_slice_spent();
                    std::thread::sleep(BACKGROUND_SLICE * 2);
                    let after_the_slice = background_slice_spent();
                    yield_now().await;
                    let after_a_queue_yield = background_slice_spent();
                    (first, after_the_slice, after_a_queue_yield)
                })
                .await;
                assert_eq!(checks, (false, true, false));
                std::thread::sleep(BACKGROUND_SLICE * 2);
                assert!(
                    !background_slice_spent(),
                    "the foreground never counts a slice"
                );
            });
    }
}
