//! Per-key asynchronous locks of one shard, so that read-modify-write
//! operations (CAS, INCR/DECR) and the plain writes of the same key never
//! interleave across the awaits of a storage call.
//!
//! Invariants: an entry exists in the table only while some task holds or
//! waits for its key (the table never grows with the key space); a released
//! lock wakes every waiter and the first to be polled takes it (no lost
//! wake-ups even when a waiting future is dropped). Single-threaded (`Rc`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Keys held or waited for. ahash: the table is probed twice per write, and
/// SipHash showed in the SET profile.
type LockTable = HashMap<Vec<u8>, Slot, ahash::RandomState>;

#[derive(Default)]
struct Slot {
    /// Tasks holding or waiting for the key.
    interested: usize,
    locked: bool,
    waiters: Vec<Waker>,
}

/// The lock table of one shard.
#[derive(Default, Clone)]
pub struct KeyLocks {
    table: Rc<RefCell<LockTable>>,
}

/// Holds the lock of one key until dropped.
pub struct KeyGuard {
    table: Rc<RefCell<LockTable>>,
    key: Vec<u8>,
}

/// Waits for the lock of one key.
pub struct LockFuture {
    table: Rc<RefCell<LockTable>>,
    key: Option<Vec<u8>>,
}

impl KeyLocks {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until no other task holds `key`'s lock, then holds it.
    pub fn lock(&self, key: &[u8]) -> LockFuture {
        self.table
            .borrow_mut()
            .entry(key.to_vec())
            .or_default()
            .interested += 1;
        LockFuture {
            table: self.table.clone(),
            key: Some(key.to_vec()),
        }
    }

    /// Whether no task holds or waits for `key`'s lock: a write that runs
    /// to its end with no await may then go ahead without taking it.
    pub fn is_free(&self, key: &[u8]) -> bool {
        let table = self.table.borrow();
        table.is_empty() || !table.contains_key(key)
    }

    /// Locks several keys in sorted order (so two multi-key writers cannot
    /// deadlock); duplicate keys are locked once.
    pub async fn lock_many(&self, keys: &[&[u8]]) -> Vec<KeyGuard> {
        let mut sorted: Vec<&[u8]> = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut guards = Vec::with_capacity(sorted.len());
        for key in sorted {
            guards.push(self.lock(key).await);
        }
        guards
    }

    /// Number of keys currently held or waited for.
    pub fn len(&self) -> usize {
        self.table.borrow().len()
    }

    /// Whether no key is held or waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Removes one interested task from `key`'s slot; wakes the waiters if the
/// lock is free.
fn leave(table: &RefCell<LockTable>, key: &[u8], was_holder: bool) {
    let waiters = {
        let mut table = table.borrow_mut();
        let Some(slot) = table.get_mut(key) else {
            return;
        };
        assert!(slot.interested > 0, "a lock slot counts its tasks");
        slot.interested -= 1;
        if was_holder {
            slot.locked = false;
        }
        if slot.interested == 0 {
            table.remove(key);
            Vec::new()
        } else if slot.locked {
            Vec::new()
        } else {
            std::mem::take(&mut slot.waiters)
        }
    };
    for w in waiters {
        w.wake();
    }
}

impl Future for LockFuture {
    type Output = KeyGuard;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<KeyGuard> {
        let acquired = {
            let key = self.key.as_deref().unwrap_or_default();
            let mut table = self.table.borrow_mut();
            match table.get_mut(key) {
                Some(slot) if !slot.locked => {
                    slot.locked = true;
                    true
                }
                Some(slot) => {
                    // One entry per task (see the storage engine's `sync::register`).
                    if !slot.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                        slot.waiters.push(cx.waker().clone());
                    }
                    false
                }
                None => unreachable!("a slot lives while a task waits for it"),
            }
        };
        if acquired {
            let key = self.key.take().unwrap_or_default();
            Poll::Ready(KeyGuard {
                table: self.table.clone(),
                key,
            })
        } else {
            Poll::Pending
        }
    }
}

impl Drop for LockFuture {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            leave(&self.table, &key, false);
        }
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        leave(&self.table, &self.key, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_key_is_held_by_one_task_at_a_time_and_the_table_empties() {
        glommio::LocalExecutorBuilder::default()
            .make()
            .unwrap()
            .run(async {
                let locks = KeyLocks::new();
                let inside = Rc::new(Cell::new(0));
                let max_inside = Rc::new(Cell::new(0));
                let mut tasks = Vec::new();
                for _ in 0..8 {
                    let (locks, inside, max_inside) =
                        (locks.clone(), inside.clone(), max_inside.clone());
                    tasks.push(glommio::spawn_local(async move {
                        let _g = locks.lock(b"k").await;
                        inside.set(inside.get() + 1);
                        max_inside.set(max_inside.get().max(inside.get()));
                        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                        inside.set(inside.get() - 1);
                    }));
                }
                for t in tasks {
                    t.await;
                }
                assert_eq!(max_inside.get(), 1);
                assert!(locks.is_empty());
            });
    }

    #[test]
    fn different_keys_do_not_wait_for_each_other() {
        glommio::LocalExecutorBuilder::default()
            .make()
            .unwrap()
            .run(async {
                let locks = KeyLocks::new();
                let a = locks.lock(b"a").await;
                let b = locks.lock(b"b").await;
                assert_eq!(locks.len(), 2);
                drop((a, b));
                let many = locks.lock_many(&[b"x", b"a", b"x"]).await;
                assert_eq!(many.len(), 2);
                drop(many);
                assert!(locks.is_empty());
            });
    }

    #[test]
    fn a_dropped_waiter_does_not_leak_its_slot() {
        glommio::LocalExecutorBuilder::default()
            .make()
            .unwrap()
            .run(async {
                let locks = KeyLocks::new();
                let held = locks.lock(b"k").await;
                let waiting = locks.lock(b"k");
                drop(waiting);
                drop(held);
                assert!(locks.is_empty());
            });
    }
}
