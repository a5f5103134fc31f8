//! Two single-threaded async primitives the engine needs without a dependency
//! on the executor: an owned async lock ([`AsyncLock`]) for state that must be
//! held across `.await` (the manifest, the compaction slot), and a broadcast
//! [`Signal`] that tasks wait on until a condition they re-check holds.
//!
//! Both are `!Send` and only for tasks of one executor. No `RefCell` borrow is
//! ever held across an `.await`: a lock owner takes the value out and puts it
//! back when its guard drops.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A broadcast wake-up: `wait` returns after the next `notify_all`. Callers
/// loop `while !condition() { signal.wait().await }`; on one thread there is no
/// gap between the check and the registration.
#[derive(Default)]
pub struct Signal {
    waiters: RefCell<Vec<Waker>>,
}

impl Signal {
    /// Wakes every task currently waiting.
    pub fn notify_all(&self) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    /// Resolves after the next [`Signal::notify_all`].
    pub fn wait(&self) -> SignalWait<'_> {
        SignalWait {
            signal: self,
            registered: false,
        }
    }
}

/// Future of [`Signal::wait`].
pub struct SignalWait<'a> {
    signal: &'a Signal,
    registered: bool,
}

impl Future for SignalWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.registered {
            // Woken (or polled spuriously): the caller re-checks its condition.
            return Poll::Ready(());
        }
        self.registered = true;
        register(&mut self.signal.waiters.borrow_mut(), cx.waker());
        Poll::Pending
    }
}

/// Adds `waker` to `waiters` unless the same task is already there. A task
/// that joins many futures (a pipelined batch) polls each of them whenever it
/// is woken; pushing a clone per poll would grow the list without bound and
/// overflow glommio's 16-bit task reference count (seen under load: "Waker
/// invariant broken ... refcount: -32768").
pub(crate) fn register(waiters: &mut Vec<Waker>, waker: &Waker) {
    if !waiters.iter().any(|w| w.will_wake(waker)) {
        waiters.push(waker.clone());
    }
}

/// An async mutex owning a `T`: the holder gets the value itself through an
/// [`AsyncLockGuard`], so it may await while holding it. FIFO fair.
pub struct AsyncLock<T> {
    inner: Rc<LockInner<T>>,
}

struct LockInner<T> {
    value: RefCell<Option<T>>,
    queue: RefCell<VecDeque<Waker>>,
}

impl<T> AsyncLock<T> {
    /// A lock holding `value`.
    pub fn new(value: T) -> Self {
        AsyncLock {
            inner: Rc::new(LockInner {
                value: RefCell::new(Some(value)),
                queue: RefCell::new(VecDeque::new()),
            }),
        }
    }

    /// Waits until the value is free and takes it.
    pub async fn lock(&self) -> AsyncLockGuard<T> {
        std::future::poll_fn(|cx| {
            if let Some(value) = self.inner.value.borrow_mut().take() {
                return Poll::Ready(AsyncLockGuard {
                    value: Some(value),
                    inner: self.inner.clone(),
                });
            }
            let mut queue = self.inner.queue.borrow_mut();
            // One entry per task: a task that polls many waiting futures (a
            // join of a pipelined batch) must not queue a waker clone per
            // poll, or glommio's 16-bit task refcount overflows.
            if !queue.iter().any(|w| w.will_wake(cx.waker())) {
                queue.push_back(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Whether someone holds the lock now.
    pub fn is_locked(&self) -> bool {
        self.inner.value.borrow().is_none()
    }
}

/// Holds the value of an [`AsyncLock`]; returns it (and wakes the next waiter) on drop.
pub struct AsyncLockGuard<T> {
    value: Option<T>,
    inner: Rc<LockInner<T>>,
}

impl<T> Deref for AsyncLockGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // Only `drop` takes the value out.
        self.value
            .as_ref()
            .unwrap_or_else(|| unreachable!("guard value taken before drop"))
    }
}

impl<T> DerefMut for AsyncLockGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value
            .as_mut()
            .unwrap_or_else(|| unreachable!("guard value taken before drop"))
    }
}

impl<T> Drop for AsyncLockGuard<T> {
    fn drop(&mut self) {
        *self.inner.value.borrow_mut() = self.value.take();
        let next = self.inner.queue.borrow_mut().pop_front();
        if let Some(w) = next {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::{block_on, yield_now, zip};
    use std::cell::Cell;

    #[test]
    fn lock_is_exclusive_and_handed_over_in_order() {
        let lock = AsyncLock::new(Vec::<u32>::new());
        let task = |i: u32| {
            let lock = &lock;
            async move {
                let mut g = lock.lock().await;
                g.push(i);
                yield_now().await;
                g.push(i);
            }
        };
        block_on(zip(zip(task(0), task(1)), zip(task(2), task(3))));
        let g = block_on(lock.lock());
        assert_eq!(*g, vec![0, 0, 1, 1, 2, 2, 3, 3]);
        drop(g);
        assert!(!lock.is_locked());
    }

    #[test]
    fn signal_wakes_every_waiter() {
        let signal = Signal::default();
        let flag = Cell::new(false);
        let woken = Cell::new(0);
        let waiter = || async {
            while !flag.get() {
                signal.wait().await;
            }
            woken.set(woken.get() + 1);
        };
        let notifier = async {
            yield_now().await;
            flag.set(true);
            signal.notify_all();
        };
        block_on(zip(zip(waiter(), waiter()), zip(waiter(), notifier)));
        assert_eq!(woken.get(), 3);
    }
}
