//! The network loop's read of its ring's eventfd, through glommio, polled only when it may have
//! completed.
//!
//! Why it exists: a glommio file read that is still pending keeps one clone of the waker it is
//! polled with *per poll* (its source's waiter list only grows until the read completes). The
//! loop races this read against its own wake-ups and a re-check timer, and a busy shard goes
//! through many waits that end some other way while the same read stays pending; after 32,767
//! of them the clones overflowed the loop task's reference count (an `i16` in glommio) and
//! glommio's assertion panicked the shard. Seen under a prototype loadgen transport without
//! IPIs (perf/RESULTS.md, "A kick-free loadgen, tried"), whose requests woke the loop through
//! io_uring's task work rather than the eventfd.
//!
//! Invariant: the inner read is polled once when it is created and after that only when its own
//! waker fired, so at most one waker clone of ours sits in glommio's list per read.

use super::wake::TaskWaker;
use glommio::io::BufferedFile;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

type Read = Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// What the inner read's waker records: that it fired, and whom to wake for it.
#[derive(Default)]
struct Fired {
    fired: AtomicBool,
    task: TaskWaker,
}

impl Wake for Fired {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// Reads of one eventfd (8 bytes: the count of signals since the last read), one at a time.
pub(super) struct EventfdRead {
    file: Rc<BufferedFile>,
    /// The read polled and still pending (none between reads): poll it again only once
    /// `fired`.
    read: Option<Read>,
    fired: Arc<Fired>,
    waker: Waker,
}

impl EventfdRead {
    /// Reads of `file`, an eventfd that glommio owns.
    pub(super) fn new(file: BufferedFile) -> Self {
        let fired = Arc::new(Fired::default());
        EventfdRead {
            file: Rc::new(file),
            read: None,
            waker: Waker::from(fired.clone()),
            fired,
        }
    }

    /// Ready once the eventfd was signalled since the last ready read (with the read's error,
    /// if it failed); wakes `cx`'s task when that happens. Cheap to call again and again while
    /// pending: the inner read is not polled until it may have completed.
    pub(super) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        self.fired.task.register(cx.waker());
        if self.read.is_some() && !self.fired.fired.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let file = &self.file;
        let read = self.read.get_or_insert_with(|| {
            let file = file.clone();
            Box::pin(async move {
                file.read_at(0, 8)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        });
        match read.as_mut().poll(&mut Context::from_waker(&self.waker)) {
            Poll::Ready(result) => {
                self.read = None;
                Poll::Ready(result)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;
    use std::time::Duration;

    fn eventfd() -> (BufferedFile, i32) {
        // SAFETY: eventfd(2) with valid flags; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor; glommio owns it from here (the test only writes to it
        // while the file is alive).
        (unsafe { BufferedFile::from_raw_fd(fd) }, fd)
    }

    /// 40,000 waits that end some other way while one read is pending (more than the 32,767
    /// waker clones that panicked glommio) leave no more than one waker clone with glommio; then
    /// a signal: the read completes, and the next one waits for the next signal.
    #[test]
    fn many_waits_on_one_pending_read_neither_panic_nor_miss_the_signal() {
        let ex = glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor");
        ex.run(async {
            let (file, fd) = eventfd();
            let mut events = EventfdRead::new(file);
            for _ in 0..40_000 {
                let polled = std::future::poll_fn(|cx| Poll::Ready(events.poll_read(cx))).await;
                assert!(polled.is_pending(), "no signal was sent yet");
            }
            // Ours, the waker made of it, and the one clone glommio's pending read holds; polling
            // the read on every wait left one more per wait (with the task's own waker, whose
            // glommio reference count overflowed at 32,767).
            assert!(
                Arc::strong_count(&events.fired) <= 3,
                "{} clones of the read's waker after 40,000 waits",
                Arc::strong_count(&events.fired)
            );
            let one = 1u64.to_ne_bytes();
            // SAFETY: writing 8 bytes from a live buffer to the eventfd the file holds open.
            let wrote = unsafe { libc::write(fd, one.as_ptr().cast(), 8) };
            assert_eq!(wrote, 8);
            let read = glommio::timer::timeout(Duration::from_secs(5), async {
                Ok(std::future::poll_fn(|cx| events.poll_read(cx)).await)
            })
            .await
            .expect("the signalled read completes");
            assert_eq!(read, Ok(()));
            let next = std::future::poll_fn(|cx| Poll::Ready(events.poll_read(cx))).await;
            assert!(next.is_pending(), "no second signal was sent");
        });
    }
}
