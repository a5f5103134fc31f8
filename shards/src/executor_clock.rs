//! The shard executor's own statistics, read in one place.
//!
//! glommio 0.9 hands out its executor statistics since the last read and
//! starts them again, so two readers would each see part of them. Every
//! read goes through [`take_tasks_executed`] or [`runtime_total`], which keep
//! the running totals of this thread's executor.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    static RUNTIME_TOTAL: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    static TASKS_UNTAKEN: Cell<u64> = const { Cell::new(0) };
}

/// Starts this thread's totals again: call when a new executor starts on it
/// (a thread may run several one after another, as tests do).
pub fn reset() {
    let _ = glommio::executor().executor_stats();
    RUNTIME_TOTAL.with(|t| t.set(Duration::ZERO));
    TASKS_UNTAKEN.with(|t| t.set(0));
}

/// Folds glommio's statistics since the last read into the totals.
fn absorb() {
    let since_last = glommio::executor().executor_stats();
    RUNTIME_TOTAL.with(|t| t.set(t.get() + since_last.executor_runtime()));
    TASKS_UNTAKEN.with(|t| t.set(t.get() + since_last.tasks_executed()));
}

/// Tasks this thread's executor ran since the previous call (for the
/// watchdog's busy test; only one caller may use it).
pub fn take_tasks_executed() -> u64 {
    absorb();
    TASKS_UNTAKEN.with(|t| t.replace(0))
}

/// Time this thread's executor ran tasks since [`reset`]: every task queue,
/// not its polling for I/O or its sleep.
pub fn runtime_total() -> Duration {
    absorb();
    RUNTIME_TOTAL.with(Cell::get)
}
