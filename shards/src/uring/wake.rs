//! How the network loop learns that it has work besides completions of its
//! ring: a batch of requests that was waiting (a disk read, a WAL sync, a
//! forwarded call) can go on, a listener handed over a connection, or the
//! shard is stopping.
//!
//! Each connection owns one [`Waker`] for its batch in flight, made once
//! when the connection is adopted; waking it records the connection's key
//! and wakes the loop's task. Everything runs on the shard's thread; the
//! mutexes only make the wakers `Send + Sync`, as `std::task::Waker`
//! requires, and are never contended.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Wake, Waker};

/// The waker of one task, registered each time it waits (kept if it would
/// wake the same task) and woken from anywhere on the shard's thread.
#[derive(Default)]
pub(super) struct TaskWaker(Mutex<Option<Waker>>);

impl TaskWaker {
    /// Keeps `waker` as the one to wake (no clone if the kept one would wake
    /// the same task).
    pub(super) fn register(&self, waker: &Waker) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    /// Wakes the registered task, if any.
    pub(super) fn wake(&self) {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = slot.as_ref() {
            w.wake_by_ref();
        }
    }
}

/// What the loop has to look at, and how to wake it.
#[derive(Default)]
pub struct Signals {
    /// Keys (`generation << 32 | slot`) of connections whose batch was woken.
    ready: Mutex<Vec<u64>>,
    /// Set by every wake; cleared by the loop before it looks for work.
    kicked: AtomicBool,
    /// The loop task's waker, registered each time it waits.
    waker: TaskWaker,
}

impl Signals {
    /// Wakes the loop (it will look at its inbox and ready list).
    pub fn kick(&self) {
        self.kicked.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Registers the waker of the loop's task.
    pub fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// Whether a wake happened since the last call (clears it).
    pub fn take_kick(&self) -> bool {
        self.kicked.swap(false, Ordering::AcqRel)
    }

    /// Moves the keys of woken connections into `into`.
    pub fn take_ready(&self, into: &mut Vec<u64>) {
        let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        into.append(&mut ready);
    }

    /// A waker that reports connection `key` ready.
    pub fn conn_waker(self: &Arc<Self>, key: u64) -> Waker {
        Waker::from(Arc::new(ConnWake {
            key,
            signals: self.clone(),
        }))
    }
}

struct ConnWake {
    key: u64,
    signals: Arc<Signals>,
}

impl Wake for ConnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.signals
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.key);
        self.signals.kick();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_woken_connection_is_reported_once_and_kicks_the_loop() {
        let signals = Arc::new(Signals::default());
        let w = signals.conn_waker(7 << 32 | 3);
        assert!(!signals.take_kick());
        w.wake_by_ref();
        assert!(signals.take_kick());
        assert!(!signals.take_kick());
        let mut got = Vec::new();
        signals.take_ready(&mut got);
        assert_eq!(got, vec![7 << 32 | 3]);
        signals.take_ready(&mut got);
        assert_eq!(got.len(), 1);
    }
}
