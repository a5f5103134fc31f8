//! Stopping: a node-wide flag set from the signal thread, and a per-shard
//! event that tasks await to learn that the shard is stopping.
//!
//! The flag is an atomic because signals arrive on a plain thread; each shard
//! polls it every [`STOP_POLL_INTERVAL`](crate::limits::STOP_POLL_INTERVAL)
//! and fires its local [`StopEvent`], which wakes accept loops and idle
//! connections at once.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A one-way, single-threaded event: once fired, every waiter (present and
/// future) is ready.
#[derive(Clone, Default)]
pub struct StopEvent {
    inner: Rc<Inner>,
}

#[derive(Default)]
struct Inner {
    fired: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl StopEvent {
    /// A new, unfired event.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the event and wakes every waiter. Idempotent.
    pub fn fire(&self) {
        self.inner.fired.set(true);
        let waiters = std::mem::take(&mut *self.inner.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    /// Whether the event fired.
    pub fn is_fired(&self) -> bool {
        self.inner.fired.get()
    }

    /// Resolves once the event fired.
    pub fn wait(&self) -> StopWait {
        StopWait {
            inner: self.inner.clone(),
        }
    }
}

/// Future of [`StopEvent::wait`].
pub struct StopWait {
    inner: Rc<Inner>,
}

impl Future for StopWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.fired.get() {
            Poll::Ready(())
        } else {
            let mut waiters = self.inner.waiters.borrow_mut();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_before_and_after_firing_are_ready() {
        futures_lite::future::block_on(async {
            let ev = StopEvent::new();
            let early = ev.wait();
            ev.fire();
            early.await;
            ev.wait().await;
            assert!(ev.is_fired());
        });
    }
}
