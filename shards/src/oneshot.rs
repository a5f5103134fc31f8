//! A single-threaded one-shot channel: one value, sent once, awaited once.
//! Used to hand a forwarded request's answer from the mesh receiver task to
//! the connection task that waits for it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

struct State<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
}

/// Sends the value.
pub struct Sender<T> {
    state: Rc<RefCell<State<T>>>,
}

/// Awaits the value; resolves to `None` if the sender was dropped unsent.
pub struct Receiver<T> {
    state: Rc<RefCell<State<T>>>,
}

/// A connected pair.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let state = Rc::new(RefCell::new(State {
        value: None,
        waker: None,
        sender_gone: false,
    }));
    (
        Sender {
            state: state.clone(),
        },
        Receiver { state },
    )
}

impl<T> Sender<T> {
    /// Delivers `value` and wakes the receiver.
    pub fn send(self, value: T) {
        let waker = {
            let mut s = self.state.borrow_mut();
            s.value = Some(value);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.state.borrow_mut();
            s.sender_gone = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.state.borrow_mut();
        if let Some(v) = s.value.take() {
            return Poll::Ready(Some(v));
        }
        if s.sender_gone {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_sent_is_the_value_received_and_a_dropped_sender_reads_none() {
        futures_lite::future::block_on(async {
            let (tx, rx) = channel();
            tx.send(5);
            assert_eq!(rx.await, Some(5));
            let (tx, rx) = channel::<u8>();
            drop(tx);
            assert_eq!(rx.await, None);
        });
    }
}
