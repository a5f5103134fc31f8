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
        self.signal.waiters.borrow_mut().push(cx.waker().clone());
        Poll::Pending
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
            self.inner.queue.borrow_mut().push_back(cx.waker().clone());
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

    #[test]
    fn lock_is_exclusive_and_handed_over_in_order() {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async {
                let lock = Rc::new(AsyncLock::new(Vec::<u32>::new()));
                let mut tasks = Vec::new();
                for i in 0..4u32 {
                    let lock = lock.clone();
                    tasks.push(glommio::spawn_local(async move {
                        let mut g = lock.lock().await;
                        g.push(i);
                        futures_lite::future::yield_now().await;
                        g.push(i);
                    }));
                }
                for t in tasks {
                    t.await;
                }
                let g = lock.lock().await;
                assert_eq!(*g, vec![0, 0, 1, 1, 2, 2, 3, 3]);
            });
    }

    #[test]
    fn signal_wakes_every_waiter() {
        glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor")
            .run(async {
                let signal = Rc::new(Signal::default());
                let flag = Rc::new(std::cell::Cell::new(false));
                let mut tasks = Vec::new();
                for _ in 0..3 {
                    let (signal, flag) = (signal.clone(), flag.clone());
                    tasks.push(glommio::spawn_local(async move {
                        while !flag.get() {
                            signal.wait().await;
                        }
                    }));
                }
                futures_lite::future::yield_now().await;
                flag.set(true);
                signal.notify_all();
                for t in tasks {
                    t.await;
                }
            });
    }
}
