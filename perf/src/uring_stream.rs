//! loadgen's own socket transport (`--transport uring`): each client thread's connections on one
//! io_uring of its own, set up with `COOP_TASKRUN`, and driven by a task that polls it without
//! ever sleeping while the kernel holds any of its operations.
//!
//! Why: on loopback a server's send runs the client's receive path, and when that finds the
//! client's thread running, an io_uring without `COOP_TASKRUN` (glommio 0.9's rings) interrupts
//! it with an IPI, which the server pays for (about 10 us of its CPU each on this VM; see
//! perf/RESULTS.md, "Who pays for the client's wake-ups"). With `COOP_TASKRUN` the kernel only
//! flags the work (`IORING_SQ_TASKRUN`), and the poller picks it up with its next system call.
//!
//! How the poller shares the thread with glommio: between two looks at the ring it steps aside on
//! a glommio timer due at once, so the tasks it woke run, and glommio looks at its own ring and
//! fires its timers (send times, deadlines, reports) every turn. A second, later timer stays
//! pending meanwhile ([`STEP_ASIDE_GUARD`]): glommio 0.9 sometimes parks with the woken poller
//! still queued, and only an event of glommio's own ends that sleep. The poller never waits for
//! this ring through glommio's (an eventfd the ring signals, read through glommio, was tried: that
//! is how the stranded wake-up was first seen, as runs that slept through their completions).
//! The cost is a busy core for as long as a connection has an operation in flight; the runner
//! pairs this transport with glommio's `spin_before_park`, so the executor does not sleep between
//! two of those timers either. With nothing in flight the poller waits for the next operation
//! queued, and the executor may sleep: nothing is in the kernel's hands then.
//!
//! Invariants: an operation's buffer lives in its slot until the kernel has completed it, even
//! when its stream was dropped first (the slot is then orphaned and freed by the poller); a
//! stream has at most one receive and one send in flight, so its bytes go out and come in in
//! order; the poller ends once only it holds the ring and no operation is left.

use std::cell::RefCell;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use io_uring::{opcode, types::Fd, IoUring};

/// Submission queue entries of a thread's ring (completion queue: twice that).
const RING_ENTRIES: u32 = 1024;

/// What one receive of a stream asks for.
const RECV_SIZE_MAX: usize = 64 << 10;

/// The poller's timer between two looks at the ring: due as good as at once, so the step aside
/// lasts one turn of glommio's loop (its I/O, its timers, the tasks they woke).
const STEP_ASIDE: Duration = Duration::from_micros(1);

/// A second timer the poller keeps pending while it steps aside, so that glommio never sleeps
/// without a timer to end it. glommio 0.9 can park with tasks ready to run: when its latency ring
/// holds a stray completion (`need_preempt()`) as it starts to run task queues, it runs none,
/// takes that for an idle executor and sleeps (after `spin_before_park`), until some event of its
/// own; if the step's timer was the one that woke the poller, there is none. The guard bounds that
/// stall to its duration. If the guard fires too before the poller runs again (a long turn of other
/// tasks), the thread's heartbeat timers and watchdog (`runner`) are what end such a sleep.
const STEP_ASIDE_GUARD: Duration = Duration::from_micros(50);

/// One operation's state, owned by the ring until it completes.
#[derive(Default)]
struct Slot {
    buf: Vec<u8>,
    /// The kernel's result, once completed.
    result: Option<i32>,
    waker: Option<Waker>,
    /// Its stream is gone: free the slot when the operation completes.
    orphan: bool,
}

struct State {
    ring: IoUring,
    /// The poller, while it waits for an operation to be queued (nothing in flight).
    idle: Option<Waker>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    in_flight: usize,
    /// The kernel refused the ring's submissions with this errno (not a retryable one): every
    /// stream fails from then on, and its operations' slots stay reserved.
    broken: Option<i32>,
    /// Completions taken from the ring, before they go to their slots (kept for its capacity).
    done: Vec<(usize, i32)>,
}

impl State {
    fn slot(&mut self) -> usize {
        match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        }
    }

    /// Queues `entry` for slot `i` (submitted by the poller's next look at the ring).
    fn push(&mut self, i: usize, entry: io_uring::squeue::Entry) -> io::Result<()> {
        self.check()?;
        let entry = entry.user_data(i as u64);
        // SAFETY: the entry's buffer is `slots[i].buf`, which stays put until the operation
        // completes (slots are freed only after their completion, orphaned or not).
        while unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.ring.submit()?;
        }
        self.in_flight += 1;
        self.wake_idle_poller();
        Ok(())
    }

    fn wake_idle_poller(&mut self) {
        if let Some(w) = self.idle.take() {
            w.wake();
        }
    }

    /// The ring's failure, if it has failed.
    fn check(&self) -> io::Result<()> {
        match self.broken {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    fn release(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        slot.result = None;
        slot.waker = None;
        slot.orphan = false;
        self.free.push(i);
    }

    /// Submits what is queued and runs the completions the kernel left for this thread (one
    /// system call, only when there is either), then moves every completion to its slot and
    /// collects the wakers of the streams waiting on them.
    fn reap(&mut self, ready: &mut Vec<Waker>) {
        let pending = !self.ring.submission().is_empty();
        // Entering also runs the task work the kernel flagged (COOP_TASKRUN) and flushes
        // completions it held back when the completion queue overflowed.
        let kernel_has_some = {
            let sq = self.ring.submission();
            sq.taskrun() || sq.cq_overflow()
        };
        if self.broken.is_none() && (pending || kernel_has_some) {
            if let Err(e) = self.ring.submit_and_wait(0) {
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                if !matches!(errno, libc::EINTR | libc::EAGAIN | libc::EBUSY) {
                    self.broken = Some(errno);
                    ready.extend(self.slots.iter_mut().filter_map(|s| s.waker.take()));
                }
            }
        }
        let mut done = std::mem::take(&mut self.done);
        done.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data() as usize, c.result())),
        );
        for (i, result) in done.drain(..) {
            self.in_flight -= 1;
            let slot = &mut self.slots[i];
            if slot.orphan {
                self.release(i);
                continue;
            }
            slot.result = Some(result);
            if let Some(w) = slot.waker.take() {
                ready.push(w);
            }
        }
        self.done = done;
    }
}

/// How long dropping a ring with operations in flight waits for the kernel to cancel them.
const CANCEL_ON_DROP_TIMEOUT: Duration = Duration::from_secs(1);

impl Drop for State {
    /// A ring dropped with operations in flight (its executor torn down before the poller's
    /// end): the kernel may still write into their buffers until it has cancelled them, so they
    /// are cancelled and waited for; buffers of any the kernel did not give up in time are
    /// leaked, never freed under it.
    fn drop(&mut self) {
        if self.in_flight == 0 {
            return;
        }
        let timeout = io_uring::types::Timespec::new()
            .sec(CANCEL_ON_DROP_TIMEOUT.as_secs())
            .nsec(CANCEL_ON_DROP_TIMEOUT.subsec_nanos());
        // Queued but not yet submitted entries are submitted first, so that they are cancelled
        // with the rest instead of counting as in flight for ever.
        let _ = self.ring.submit();
        let cancelled = match self
            .ring
            .submitter()
            .register_sync_cancel(Some(timeout), io_uring::types::CancelBuilder::any())
        {
            // Nothing left to cancel: all of them completed, and are reaped below.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other,
        };
        // Completions of the cancelled operations, so their slots count as done.
        let _ = self.ring.submit_and_wait(0);
        let done: Vec<u64> = self.ring.completion().map(|c| c.user_data()).collect();
        self.in_flight = self.in_flight.saturating_sub(done.len());
        if cancelled.is_err() || self.in_flight > 0 {
            std::mem::forget(std::mem::take(&mut self.slots));
        }
    }
}

/// A thread's ring for its connections: cheap to clone, not `Send`.
#[derive(Clone)]
pub struct UringTransport {
    state: Rc<RefCell<State>>,
}

impl UringTransport {
    /// A new ring for the calling thread. Fails where the kernel lacks io_uring or
    /// `COOP_TASKRUN` and `SINGLE_ISSUER` (Linux 6.0).
    pub fn new() -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(RING_ENTRIES * 2)
            .build(RING_ENTRIES)?;
        Ok(Self {
            state: Rc::new(RefCell::new(State {
                ring,
                idle: None,
                slots: Vec::new(),
                free: Vec::new(),
                in_flight: 0,
                broken: None,
                done: Vec::new(),
            })),
        })
    }

    /// Connects to `addr` (a blocking connect, done before anything is measured) and hands the
    /// socket to this ring.
    pub fn connect(&self, addr: &str) -> io::Result<UringStream> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        Ok(UringStream {
            fd: OwnedFd::from(stream),
            transport: self.clone(),
            recv: None,
            leftover: Vec::new(),
            leftover_at: 0,
            send: None,
            sent: 0,
        })
    }

    /// Submits, reaps and wakes until nothing but the poller holds the ring (every stream and
    /// every other handle dropped) and no operation is left; spawn it as a task of the thread
    /// that owns the ring before the first connect. If the kernel refuses to take submissions
    /// (anything but a retryable error), every stream fails with that error from then on instead
    /// of hanging.
    pub async fn poll_until_idle(self) {
        let mut ready: Vec<Waker> = Vec::new();
        loop {
            let idle = {
                let mut st = self.state.borrow_mut();
                if Rc::strong_count(&self.state) == 1 && st.in_flight == 0 {
                    return;
                }
                st.reap(&mut ready);
                // Never idle (no timer of ours pending) right after waking someone: if glommio
                // parked with that task queued, nothing would end the sleep.
                ready.is_empty() && st.in_flight == 0 && st.ring.submission().is_empty()
            };
            for w in ready.drain(..) {
                w.wake();
            }
            if idle {
                self.next_operation().await;
            } else {
                futures_lite::future::or(
                    glommio::timer::sleep(STEP_ASIDE),
                    glommio::timer::sleep(STEP_ASIDE_GUARD),
                )
                .await;
            }
        }
    }

    /// Ready once an operation is queued or a handle of the ring is dropped (the poller then
    /// looks again, and ends if it is the last).
    fn next_operation(&self) -> impl std::future::Future<Output = ()> + '_ {
        let mut asked = false;
        std::future::poll_fn(move |cx| {
            let mut st = self.state.borrow_mut();
            if asked && st.idle.is_none() {
                return Poll::Ready(());
            }
            if st.in_flight > 0 || Rc::strong_count(&self.state) == 1 {
                return Poll::Ready(());
            }
            asked = true;
            st.idle = Some(cx.waker().clone());
            Poll::Pending
        })
    }
}

impl Drop for UringTransport {
    fn drop(&mut self) {
        // The poller may wait for an operation that will now never come; let it look again.
        if let Ok(mut st) = self.state.try_borrow_mut() {
            st.wake_idle_poller();
        }
    }
}

/// A TCP connection on a [`UringTransport`]: `AsyncRead` + `AsyncWrite`. A write is copied and
/// sent in the background (one send in flight; the next write waits for it); `flush` waits
/// until everything written has been sent.
pub struct UringStream {
    fd: OwnedFd,
    transport: UringTransport,
    /// The slot of the receive in flight or completed and not yet taken.
    recv: Option<usize>,
    /// Received bytes the reader's buffer had no room for, from `leftover_at`.
    leftover: Vec<u8>,
    leftover_at: usize,
    /// The slot of the send in flight, and how much of its buffer has gone out.
    send: Option<usize>,
    sent: usize,
}

impl UringStream {
    /// Where the send in flight stands: `Ready(Ok)` once all of it went out (and the slot is
    /// free again), `Pending` while the kernel has some of it.
    fn poll_send_done(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(i) = self.send else {
            return Poll::Ready(Ok(()));
        };
        let mut st = self.transport.state.borrow_mut();
        let Some(result) = st.slots[i].result.take() else {
            // A broken ring fails the stream; the slot stays reserved (see Drop).
            st.check()?;
            st.slots[i].waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        if result < 0 {
            st.release(i);
            self.send = None;
            return Poll::Ready(Err(io::Error::from_raw_os_error(-result)));
        }
        self.sent += result as usize;
        let len = st.slots[i].buf.len();
        if self.sent >= len {
            st.release(i);
            self.send = None;
            return Poll::Ready(Ok(()));
        }
        // A short send: the rest goes out from where it stopped.
        let rest = &st.slots[i].buf[self.sent..];
        let entry =
            opcode::Send::new(Fd(self.fd.as_raw_fd()), rest.as_ptr(), rest.len() as u32).build();
        st.slots[i].waker = Some(cx.waker().clone());
        if let Err(e) = st.push(i, entry) {
            // Not queued: the slot is ours again, and the stream has no send in flight.
            st.release(i);
            self.send = None;
            return Poll::Ready(Err(e));
        }
        Poll::Pending
    }
}

impl AsyncRead for UringStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.leftover_at < this.leftover.len() {
            let n = out.len().min(this.leftover.len() - this.leftover_at);
            out[..n].copy_from_slice(&this.leftover[this.leftover_at..this.leftover_at + n]);
            this.leftover_at += n;
            return Poll::Ready(Ok(n));
        }
        let mut st = this.transport.state.borrow_mut();
        let i = match this.recv {
            Some(i) => i,
            None => {
                let i = st.slot();
                // As much as has arrived, up to RECV_SIZE_MAX, whatever the reader's buffer:
                // what it has no room for waits in `leftover`.
                let size = RECV_SIZE_MAX;
                // The kernel fills the spare capacity; `set_len` once it says how much (zeroing
                // 64 KiB per receive took a sixth of the client's CPU).
                let buf = &mut st.slots[i].buf;
                buf.clear();
                buf.reserve(size);
                let entry = opcode::Recv::new(
                    Fd(this.fd.as_raw_fd()),
                    buf.spare_capacity_mut().as_mut_ptr().cast(),
                    size as u32,
                )
                .build();
                st.slots[i].waker = Some(cx.waker().clone());
                if let Err(e) = st.push(i, entry) {
                    st.release(i);
                    return Poll::Ready(Err(e));
                }
                this.recv = Some(i);
                return Poll::Pending;
            }
        };
        let Some(result) = st.slots[i].result.take() else {
            // A broken ring fails the stream; the slot stays reserved (see Drop).
            st.check()?;
            st.slots[i].waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        this.recv = None;
        if result < 0 {
            st.release(i);
            return Poll::Ready(Err(io::Error::from_raw_os_error(-result)));
        }
        let buf = &mut st.slots[i].buf;
        // SAFETY: the receive completed with `result` bytes written at the start of the spare
        // capacity reserved above (at least `size` >= `result` bytes).
        unsafe { buf.set_len(result as usize) };
        let got = &buf[..];
        let n = out.len().min(got.len());
        out[..n].copy_from_slice(&got[..n]);
        if n < got.len() {
            this.leftover.clear();
            this.leftover.extend_from_slice(&got[n..]);
            this.leftover_at = 0;
        }
        st.release(i);
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for UringStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match this.poll_send_done(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut st = this.transport.state.borrow_mut();
        let i = st.slot();
        let buf = &mut st.slots[i].buf;
        buf.clear();
        buf.extend_from_slice(data);
        let entry =
            opcode::Send::new(Fd(this.fd.as_raw_fd()), buf.as_ptr(), buf.len() as u32).build();
        if let Err(e) = st.push(i, entry) {
            st.release(i);
            return Poll::Ready(Err(e));
        }
        this.send = Some(i);
        this.sent = 0;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send_done(cx)
    }

    /// Waits until everything written has been sent; the socket is shut down when the stream is
    /// dropped, not here.
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_send_done(cx)
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        // SAFETY: a socket we own; shutting it down completes its operations in flight, whose
        // slots (and buffers) the poller frees when their completions arrive.
        unsafe { libc::shutdown(self.fd.as_raw_fd(), libc::SHUT_RDWR) };
        let mut st = self.transport.state.borrow_mut();
        for i in [self.recv.take(), self.send.take()].into_iter().flatten() {
            if st.slots[i].result.is_some() {
                st.release(i);
            } else {
                st.slots[i].orphan = true;
                st.slots[i].waker = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A peer that echoes what it reads until the client shuts its side down.
    fn echo_peer() -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("bound").to_string();
        let peer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = vec![0u8; 7000];
            let mut total = 0;
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => {
                        total += n;
                        if s.write_all(&buf[..n]).is_err() {
                            return total;
                        }
                    }
                }
            }
        });
        (addr, peer)
    }

    /// Bytes written through the ring come back whole and in order, through a reader whose
    /// buffer is smaller than what a receive brings (the rest is kept for the next read), with
    /// writes larger than the socket buffers (short sends go on from where they stopped); once
    /// the stream and every handle are dropped, the poller ends by itself.
    #[test]
    fn bytes_round_trip_in_order_and_the_poller_ends_when_the_streams_do() {
        let (addr, peer) = echo_peer();
        let ex = glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor");
        let echoed = ex.run(async move {
            let ring = UringTransport::new().expect("io_uring with COOP_TASKRUN");
            let poller = glommio::spawn_local(ring.clone().poll_until_idle());
            let stream = ring.connect(&addr).expect("connect");
            drop(ring);
            let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
            let (mut reader, mut writer) = futures_lite::io::split(stream);
            let send = data.clone();
            let writing = glommio::spawn_local(async move {
                for chunk in send.chunks(1 << 20) {
                    writer.write_all(chunk).await.expect("write");
                }
                writer.flush().await.expect("flush");
                writer
            });
            let mut got = Vec::with_capacity(data.len());
            let mut buf = [0u8; 1000];
            let reading = glommio::timer::timeout(Duration::from_secs(10), async {
                while got.len() < data.len() {
                    let n = reader.read(&mut buf).await?;
                    assert!(n > 0, "the peer closed early");
                    got.extend_from_slice(&buf[..n]);
                }
                Ok(())
            })
            .await;
            assert!(
                reading.is_ok(),
                "{} of {} bytes came back in 10 s: {reading:?}",
                got.len(),
                data.len()
            );
            assert!(got == data, "the bytes came back changed or out of order");
            let writer = writing.await;
            drop((reader, writer));
            glommio::timer::timeout(Duration::from_secs(5), async {
                poller.await;
                Ok(())
            })
            .await
            .expect("the poller ends once its streams are gone");
            got.len()
        });
        assert_eq!(peer.join().expect("peer thread"), echoed);
    }
}
