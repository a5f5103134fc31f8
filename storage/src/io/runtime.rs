//! Background tasks, timers and the wall clock, for the engine's own use.

use std::future::Future;
use std::time::Duration;

/// A background task handle. Dropping it cancels the task (glommio 0.9
/// semantics): await it, or call `.detach()` to let it run on its own.
pub type BackgroundTask<T> = glommio::Task<T>;

/// Spawns `fut` on the current executor's background task queue if the caller
/// registered one (see [`set_background_queue`]), else on the default queue.
pub fn spawn_background<T: 'static>(fut: impl Future<Output = T> + 'static) -> BackgroundTask<T> {
    match BACKGROUND_QUEUE.with(|q| q.get()) {
        // The queue is created once per thread and never removed, so spawning
        // into it cannot fail.
        Some(tq) => glommio::spawn_local_into(fut, tq).expect("the background task queue is never removed"),
        None => glommio::spawn_local(fut),
    }
}

thread_local! {
    static BACKGROUND_QUEUE: std::cell::Cell<Option<glommio::TaskQueueHandle>> =
        const { std::cell::Cell::new(None) };
}

/// Creates (once per thread) a task queue with `shares` (foreground work
/// usually has 1000) for flushes and compactions, so they never take the
/// foreground's latency budget. Call once per executor before opening engines.
pub fn set_background_queue(shares: usize) {
    if BACKGROUND_QUEUE.with(|q| q.get()).is_some() {
        return;
    }
    let tq = glommio::executor().create_task_queue(
        glommio::Shares::Static(shares),
        glommio::Latency::NotImportant,
        "ringkv-storage-background",
    );
    BACKGROUND_QUEUE.with(|q| q.set(Some(tq)));
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
