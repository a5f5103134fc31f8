//! The io_uring network engine (`net_engine = "uring"`): a shard serves its
//! client connections (binary protocol and RESP) through its own io_uring ring, driven
//! from one glommio task of the shard, so one `io_uring_enter` carries the
//! receives and sends of many connections and a request costs no task
//! wake-up (measured in perf/RESULTS.md, "io_uring network engine").
//!
//! ```text
//!  glommio accept loop ──adopt(fd)──► Inbox ──► Driver (one glommio task)
//!                                                 │  IoUring (this shard's own)
//!   multishot recv, provided buffer ring ◄────────┤  eventfd registered with it,
//!   one send per connection per turn     ◄────────┘  read through glommio to park
//! ```
//!
//! What it owns: the ring, its receive buffers ([`bufring`]), the
//! connections handed to it ([`conn`]), and their batches in flight. What it
//! does not do: accept (the glommio listener does, and keeps the internode
//! preface check), or decide anything about requests (it runs
//! [`crate::conn::run_batch`] for binary connections and
//! [`crate::resp_conn::run_batch`] for RESP ones, the batches of the glommio
//! engine, so both engines answer alike).
//!
//! Invariants: the node-wide connection slot of a connection is held until
//! its socket is closed; a stopping shard answers the batches in flight,
//! sends their answers and closes every connection (idle ones at once)
//! within `SHUTDOWN_DRAIN_TIMEOUT`; the loop runs inside the shard's gate,
//! so the shard's stop waits for it.

mod bufring;
mod conn;
mod driver;
mod eventfd;
pub mod limits;
mod wake;

pub(crate) use conn::Speaks;

use crate::error::Error;
use crate::listener::Slot;
use crate::shard::Shard;
use crate::stop::StopEvent;
use glommio::io::BufferedFile;
use glommio::net::TcpStream;
use glommio::sync::Gate;
use glommio::TaskQueueHandle;
use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use wake::Signals;

/// Connections handed from the listeners to the loop, and the stop flag.
#[derive(Default)]
struct Inbox {
    queue: RefCell<Vec<(OwnedFd, Speaks, Slot)>>,
    stopping: Cell<bool>,
    /// The loop has ended: handed-over connections are closed at once.
    closed: Cell<bool>,
}

/// A shard's handle on its network loop: how the listeners hand it
/// connections.
pub struct NetLoop {
    inbox: Rc<Inbox>,
    signals: Arc<Signals>,
}

impl NetLoop {
    /// Builds the shard's ring, registers its receive buffers and eventfd,
    /// and starts the loop as a task of `gate` in `queue`; the loop drains
    /// and ends once `stop` fires. Fails (leaving nothing behind) when the
    /// kernel lacks what the loop needs (io_uring, provided buffer rings,
    /// multishot receive need Linux 6.0).
    pub fn start(
        shard: Rc<Shard>,
        gate: &Gate,
        queue: TaskQueueHandle,
        stop: StopEvent,
    ) -> Result<Rc<NetLoop>, Error> {
        let fail = |what: &str, e: std::io::Error| {
            Error::Startup(format!(
                "shard {}: io_uring network loop: {what}: {e}",
                shard.id
            ))
        };
        let ring = driver::build_ring().map_err(|e| fail("creating the ring", e))?;
        let bufs =
            bufring::BufRing::new(&ring).map_err(|e| fail("registering receive buffers", e))?;
        // A blocking eventfd: io_uring then arms a poll for the read instead
        // of failing it with EAGAIN.
        // SAFETY: eventfd(2) with valid flags; the result is checked.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(fail("eventfd", std::io::Error::last_os_error()));
        }
        // SAFETY: efd is a fresh descriptor that nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        ring.submitter()
            .register_eventfd(efd.as_raw_fd())
            .map_err(|e| fail("registering the eventfd", e))?;
        // SAFETY: glommio takes the descriptor over (it closes it when the
        // file is dropped); `into_raw_fd` gives up ours.
        let eventfd =
            unsafe { BufferedFile::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(efd)) };
        let inbox = Rc::new(Inbox::default());
        let signals = Arc::new(Signals::default());
        let driver = driver::Driver::new(
            ring,
            bufs,
            shard.clone(),
            signals.clone(),
            inbox.clone(),
            eventfd,
        );
        let task = gate.spawn_into(driver.run(), queue).map_err(|e| {
            Error::Startup(format!(
                "shard {}: spawning the network loop: {e}",
                shard.id
            ))
        })?;
        task.detach();
        tracing::debug!(
            shard = shard.id,
            "client connections served by the io_uring network loop"
        );
        let (watch_inbox, watch_signals) = (inbox.clone(), signals.clone());
        glommio::spawn_local_into(
            async move {
                stop.wait().await;
                watch_inbox.stopping.set(true);
                watch_signals.kick();
            },
            queue,
        )
        .map_err(|e| {
            Error::Startup(format!(
                "shard {}: spawning the stop watcher: {e}",
                shard.id
            ))
        })?
        .detach();
        Ok(Rc::new(NetLoop { inbox, signals }))
    }

    /// Hands a client connection to the loop, which then owns the socket
    /// and `slot`. A connection handed over while the shard stops is closed.
    /// When the loop cannot take it (it failed and ended, or the socket
    /// cannot be duplicated), the connection comes back to be served by
    /// glommio: `Some` gives it back.
    #[must_use = "a connection given back must be served or dropped"]
    pub(crate) fn adopt(
        &self,
        stream: TcpStream,
        speaks: Speaks,
        slot: Slot,
    ) -> Option<(TcpStream, Slot)> {
        if self.inbox.stopping.get() {
            return None;
        }
        if self.inbox.closed.get() {
            return Some((stream, slot));
        }
        let Some(fd) = take_socket(&stream) else {
            return Some((stream, slot));
        };
        drop(stream);
        self.inbox.queue.borrow_mut().push((fd, speaks, slot));
        self.signals.kick();
        None
    }
}

/// A descriptor of `stream`'s socket that outlives the stream, in blocking
/// mode (the ring waits for readiness itself). glommio's `TcpStream` cannot
/// give its descriptor up, so the socket is duplicated and the stream's own
/// descriptor closes with it.
fn take_socket(stream: &TcpStream) -> Option<OwnedFd> {
    // SAFETY: fcntl(2) on a descriptor the stream owns; the result is checked.
    let fd = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if fd < 0 {
        tracing::warn!(
            "handing a connection to the network loop: dup failed: {}",
            std::io::Error::last_os_error()
        );
        return None;
    }
    // SAFETY: fd is a fresh duplicate nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fcntl(2) on the descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Some(fd)
}

#[cfg(test)]
mod tests {
    use super::bufring::{BufRing, BUF_GROUP};
    use super::driver::build_ring;
    use io_uring::types::{Fd, SubmitArgs, Timespec};
    use io_uring::{cqueue, opcode};
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::rc::Rc;
    use std::time::Duration;

    fn eventfd() -> OwnedFd {
        // SAFETY: eventfd(2) with valid flags; checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor nothing else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// Waits for at least one completion, at most five seconds.
    fn wait_one(ring: &io_uring::IoUring) {
        let timeout = Timespec::from(Duration::from_secs(5));
        let args = SubmitArgs::new().timespec(&timeout);
        ring.submitter()
            .submit_with_args(1, &args)
            .expect("a completion within 5 s");
    }

    #[test]
    fn a_completion_on_the_network_ring_wakes_a_glommio_read_of_its_eventfd() {
        let ex = glommio::LocalExecutorBuilder::default()
            .make()
            .expect("executor");
        ex.run(async {
            let mut ring = build_ring().expect("ring");
            let efd = eventfd();
            ring.submitter()
                .register_eventfd(efd.as_raw_fd())
                .expect("register eventfd");
            // SAFETY: glommio takes the descriptor over.
            let file =
                Rc::new(unsafe { glommio::io::BufferedFile::from_raw_fd(efd.into_raw_fd()) });
            let reader = file.clone();
            let read =
                glommio::spawn_local(
                    async move { reader.read_at(0, 8).await.map(|r| r.len()).ok() },
                );
            // Let the read park on glommio's ring first.
            glommio::timer::sleep(Duration::from_millis(20)).await;
            let nop = opcode::Nop::new().build().user_data(42);
            // SAFETY: a NOP points to no memory.
            unsafe { ring.submission().push(&nop) }.expect("queue has room");
            ring.submit().expect("submit");
            let woke = futures_lite::future::or(read, async {
                glommio::timer::sleep(Duration::from_secs(5)).await;
                None
            })
            .await;
            assert_eq!(woke, Some(8), "the eventfd read completes with its counter");
            let done: Vec<u64> = ring.completion().map(|c| c.user_data()).collect();
            assert_eq!(done, vec![42]);
        });
    }

    /// The shard's thread sleeps in glommio's wait, on glommio's ring, while
    /// its connections are idle. A receive completing on the network ring
    /// (COOP_TASKRUN: queued as task work that does not interrupt a running
    /// thread) must still wake it, through the eventfd the loop reads with
    /// glommio. The executor runs on a thread of its own so that a thread
    /// that never wakes fails the test instead of hanging it.
    #[test]
    fn a_receive_on_the_network_ring_wakes_a_thread_asleep_in_glommio() {
        let (peer, ours) = UnixStream::pair().expect("socket pair");
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ex = glommio::LocalExecutorBuilder::default()
                .make()
                .expect("executor");
            let got = ex.run(async move {
                let mut ring = build_ring().expect("ring");
                let mut bufs = BufRing::new(&ring).expect("buffer ring");
                let efd = eventfd();
                ring.submitter()
                    .register_eventfd(efd.as_raw_fd())
                    .expect("register eventfd");
                // SAFETY: glommio takes the descriptor over.
                let file = unsafe { glommio::io::BufferedFile::from_raw_fd(efd.into_raw_fd()) };
                let recv = opcode::RecvMulti::new(Fd(ours.as_raw_fd()), BUF_GROUP)
                    .build()
                    .user_data(7);
                // SAFETY: the receive writes only into the registered buffer ring.
                unsafe { ring.submission().push(&recv) }.expect("queue has room");
                ring.submit().expect("submit");
                // Nothing else to do: the thread parks in glommio until the
                // eventfd is signalled.
                file.read_at(0, 8).await.expect("eventfd read");
                // Run whatever the kernel deferred, then reap.
                ring.submit().expect("submit");
                let mut got = Vec::new();
                for c in ring.completion() {
                    if let Some(bid) = cqueue::buffer_select(c.flags()) {
                        got.extend_from_slice(bufs.bytes(bid, c.result() as usize));
                        bufs.recycle(bid);
                    }
                }
                drop(ring);
                got
            });
            let _ = done_tx.send(got);
        });
        // Let the executor park first.
        std::thread::sleep(Duration::from_millis(100));
        (&peer).write_all(b"wake up").expect("write");
        let got = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the thread asleep in glommio woke for the receive");
        assert_eq!(got, b"wake up");
    }

    #[test]
    fn a_multishot_receive_fills_provided_buffers_until_the_peer_closes() {
        let mut ring = build_ring().expect("ring");
        let mut bufs = BufRing::new(&ring).expect("buffer ring");
        let (mut peer, ours) = UnixStream::pair().expect("socket pair");
        let recv = opcode::RecvMulti::new(Fd(ours.as_raw_fd()), BUF_GROUP)
            .build()
            .user_data(7);
        // SAFETY: the receive writes only into the registered buffer ring.
        unsafe { ring.submission().push(&recv) }.expect("queue has room");
        ring.submit().expect("submit");
        let mut got = Vec::new();
        let mut ended = false;
        for round in 0..3u8 {
            peer.write_all(&[round; 100]).expect("write");
            if round == 2 {
                peer.shutdown(std::net::Shutdown::Write).expect("shutdown");
            }
            wait_one(&ring);
            let cqes: Vec<_> = ring.completion().map(|c| (c.result(), c.flags())).collect();
            for (result, flags) in cqes {
                match cqueue::buffer_select(flags) {
                    Some(bid) => {
                        got.extend_from_slice(bufs.bytes(bid, result as usize));
                        bufs.recycle(bid);
                    }
                    None => {
                        assert_eq!(result, 0, "end of stream");
                        assert!(!cqueue::more(flags));
                        ended = true;
                    }
                }
            }
        }
        while !ended {
            wait_one(&ring);
            for c in ring.completion() {
                if let Some(bid) = cqueue::buffer_select(c.flags()) {
                    got.extend_from_slice(bufs.bytes(bid, c.result() as usize));
                    bufs.recycle(bid);
                } else {
                    ended = c.result() == 0;
                }
            }
        }
        let want: Vec<u8> = (0..3u8).flat_map(|r| [r; 100]).collect();
        assert_eq!(got, want);
        // Lengths the kernel reports are clamped to the buffer, never trusted.
        assert_eq!(
            bufs.bytes(0, usize::MAX).len(),
            super::limits::RECV_BUFFER_SIZE
        );
        drop(ring);
    }
}
