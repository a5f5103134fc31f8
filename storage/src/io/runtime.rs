//! Background tasks, timers and the wall clock, for the engine's own use.

use std::future::Future;
use std::time::Duration;

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

/// The background queue registered by the executor running on this thread, if any.
fn current_background_queue() -> Option<glommio::TaskQueueHandle> {
    let executor_id = glommio::executor().id();
    BACKGROUND_QUEUE.with(|q| match q.get() {
        Some((id, tq)) if id == executor_id => Some(tq),
        _ => None,
    })
}

thread_local! {
    /// The background queue and the id of the executor that owns it: a thread
    /// may run several executors one after another (tests do), and a queue
    /// handle is only valid in the executor that created it.
    static BACKGROUND_QUEUE: std::cell::Cell<Option<(usize, glommio::TaskQueueHandle)>> =
        const { std::cell::Cell::new(None) };
}

/// Creates (once per executor) a task queue with `shares` (foreground work
/// usually has 1000) for flushes and compactions, so they never take the
/// foreground's latency budget. Call once per executor before opening engines.
pub fn set_background_queue(shares: usize) {
    if current_background_queue().is_some() {
        return;
    }
    let tq = glommio::executor().create_task_queue(
        glommio::Shares::Static(shares),
        glommio::Latency::NotImportant,
        "ringkv-storage-background",
    );
    let executor_id = glommio::executor().id();
    BACKGROUND_QUEUE.with(|q| q.set(Some((executor_id, tq))));
}

/// Sleeps for `d` on the executor's timer.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}

/// Yields to other tasks of this executor.
pub async fn yield_now() {
    futures_lite::future::yield_now().await;
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
