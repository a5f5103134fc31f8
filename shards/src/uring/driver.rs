//! The network loop of one shard: its io_uring ring, the connections it
//! serves, and the turn that moves them all on.
//!
//! One turn: take the connections the listeners handed over (arm their
//! multishot receive); reap every completion (copy received bytes into their
//! connection, hand the buffer back); note the batches that were woken; for
//! each connection touched, move its batch on or start at most one (answers
//! of requests that complete at once go out in the same turn), then queue at
//! most one send; submit all of it with one `io_uring_enter`. If nothing is
//! ready then, wait on the ring's eventfd through glommio, so the executor
//! parks normally; otherwise yield to the executor (its other tasks and its
//! own ring get their turn when they need it) and go on.
//!
//! user_data of every operation: `generation (32) | slot (24) | op (8)`; a
//! completion whose generation differs from the slot's connection belongs to
//! a closed one and is ignored (its receive buffer recycled).
//!
//! Invariants: a connection's socket and send buffer are released only once
//! none of its operations is in flight; the ring is dropped before the
//! receive buffers, and if operations are still in flight then (the drain
//! timeout expired), the buffers they might write are leaked, not freed.

use super::bufring::{BufRing, BUF_GROUP};
use super::conn::{Conn, RecvAction};
use super::eventfd::EventfdRead;
use super::limits::{COMPLETION_ENTRIES, CONNECTION_SLOTS_MAX, RING_ENTRIES};
use super::wake::Signals;
use super::Inbox;
use crate::limits::{FOREGROUND_LATENCY, SHUTDOWN_DRAIN_TIMEOUT};
use crate::shard::{Shard, ShardCounters};
use glommio::io::BufferedFile;
use io_uring::types::Fd;
use io_uring::{cqueue, opcode, squeue, IoUring};
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_CANCEL: u64 = 3;

/// Longest the network loop keeps its task queue before handing the executor
/// back to other queues and to its own I/O: the request queue's latency goal.
const QUEUE_RUN_MAX: Duration = FOREGROUND_LATENCY;

/// How often a stopping loop looks at its drain deadline.
const STOP_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// How often the loop looks at its ring when its eventfd cannot be read.
const EVENT_FAILED_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// How often an idle loop looks at its ring even though nothing woke it.
/// A safety net: under load, once in several benchmark runs, every
/// connection of a shard went unanswered for minutes while the shard was
/// idle, and the next new connection (which wakes the loop) set them all
/// going again, which points at a completion whose wake-up was lost. The
/// cause is not found yet; with this re-check such a loss costs at most
/// this long, and is counted (`network_missed_wakeups`) and logged.
const IDLE_RECHECK_INTERVAL: Duration = Duration::from_millis(20);

/// How often the loop polls every batch in flight that nothing woke. The
/// second safety net. In one stall (a RESP SET benchmark, one connection
/// unanswered for minutes, its bytes read, the loop idle) the ring held
/// nothing, so the stall was in a batch whose wake-up did not come. This
/// re-poll found such batches several times a minute: all were WAL
/// followers (a write doing a memtable freeze waits for the WAL rotation)
/// whose write was durable but who were woken only when the leader's round
/// ended, 20-170 ms later; the WAL now wakes them at once
/// (`Wal` `mark_durable`), and the count stays 0 under the same load. A poll
/// nobody asked for is harmless to a future still waiting; one that
/// finishes a batch is counted (`network_unwoken_batches`) and logged.
const BATCH_RECHECK_INTERVAL: Duration = Duration::from_millis(20);

fn user_data(generation: u32, slot: usize, op: u64) -> u64 {
    (u64::from(generation) << 32) | ((slot as u64) << 8) | op
}

fn slot_of(ud: u64) -> usize {
    ((ud >> 8) & 0xff_ffff) as usize
}

/// The key a connection's waker reports: `generation << 32 | slot`.
fn key(generation: u32, slot: usize) -> u64 {
    (u64::from(generation) << 32) | slot as u64
}

/// The ring, with the completions reaped early when the submission queue
/// was full and the kernel asked us to reap first.
struct Io {
    ring: IoUring,
    backlog: Vec<(u64, i32, u32)>,
}

impl Io {
    /// Queues `entry`, submitting first when the queue is full.
    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every buffer an entry points to (a connection's
            // `sending`) stays alive and untouched until its completion
            // arrives (see the module invariants).
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            self.submit()?;
        }
    }

    /// Submits what is queued, and lets the kernel run the completions it
    /// deferred to us (`IORING_SETUP_COOP_TASKRUN`) or flush the ones that
    /// overflowed; no system call when there is none of that.
    fn submit(&mut self) -> io::Result<()> {
        loop {
            if self.ring.submission().is_empty() && !self.kernel_has_work() {
                return Ok(());
            }
            match self.ring.submit() {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    // The completion queue is full: reap it, then retry.
                    let before = self.backlog.len();
                    self.backlog.extend(
                        self.ring
                            .completion()
                            .map(|c| (c.user_data(), c.result(), c.flags())),
                    );
                    if self.backlog.len() == before {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether completions wait in the kernel for an `io_uring_enter`:
    /// deferred task work, or an overflowed completion queue.
    fn kernel_has_work(&mut self) -> bool {
        let sq = self.ring.submission();
        sq.taskrun() || sq.cq_overflow()
    }

    /// Moves every completion (the backlog first) into `into`.
    fn reap(&mut self, into: &mut Vec<(u64, i32, u32)>) {
        into.append(&mut self.backlog);
        into.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
    }

    /// Lets completions signal the eventfd again, for a wait. The caller
    /// looks at the ring afterwards: a completion posted before this did not
    /// signal, but is in the queue by then. With `COOP_TASKRUN` the kernel
    /// posts the loop's completions in this thread, as task work, so program
    /// order holds. One posted from another thread (an io-wq worker) could in
    /// principle slip between the kernel's post and its look at the flag; the
    /// loop's re-check timer bounds such a wait and counts it
    /// (`network_missed_wakeups`).
    fn signal_while_waiting(&mut self) {
        self.ring.completion().enable_eventfd();
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }

    /// Stops completions from signalling the eventfd while the loop runs:
    /// every completion it would see anyway (its own sends, posted inline
    /// during its submit; receives it reaps in the same turn) otherwise
    /// completed glommio's pending read of the eventfd, woke the loop again
    /// for nothing, and cost glommio a submit for the next read. At 30k
    /// requests/s (open loop, one or two per write) this took the shard's
    /// core from 88-89 % to 81-86 % busy and 7 % of its system calls.
    fn quiet_eventfd(&mut self) {
        self.ring.completion().disable_eventfd();
    }

    fn has_completions(&mut self) -> bool {
        !self.backlog.is_empty() || !self.ring.completion().is_empty()
    }
}

/// The network loop of one shard (see the module doc).
pub struct Driver {
    // Field order matters: the ring goes before the buffers it writes into.
    io: Io,
    bufs: BufRing,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    generation: u32,
    shard: Rc<Shard>,
    signals: Arc<Signals>,
    inbox: Rc<Inbox>,
    events: EventfdRead,
    /// The eventfd read failed once: wait with a short timer instead.
    event_failed: bool,
    /// Slots to look at this turn.
    dirty: Vec<usize>,
    /// Slots with work left for the next turn.
    again: Vec<usize>,
    completions: Vec<(u64, i32, u32)>,
    ready: Vec<u64>,
    stopping_since: Option<Instant>,
    /// When the batches in flight were last polled unasked.
    last_batch_recheck: Instant,
}

impl Driver {
    /// A loop over `ring` (its eventfd registered and read through
    /// `eventfd`) with `bufs` registered as its receive buffers.
    pub fn new(
        ring: IoUring,
        bufs: BufRing,
        shard: Rc<Shard>,
        signals: Arc<Signals>,
        inbox: Rc<Inbox>,
        eventfd: BufferedFile,
    ) -> Self {
        let mut io = Io {
            ring,
            backlog: Vec::new(),
        };
        // Signalled only while the loop waits (see `Io::signal_while_waiting`).
        io.quiet_eventfd();
        Driver {
            io,
            bufs,
            conns: Vec::new(),
            free: Vec::new(),
            generation: 0,
            shard,
            signals,
            inbox,
            events: EventfdRead::new(eventfd),
            event_failed: false,
            dirty: Vec::new(),
            again: Vec::new(),
            completions: Vec::with_capacity(COMPLETION_ENTRIES as usize),
            ready: Vec::new(),
            stopping_since: None,
            last_batch_recheck: Instant::now(),
        }
    }

    /// Serves connections until the shard stops and every connection has
    /// finished its batch in flight and closed (or the drain timeout
    /// expired). A ring failure closes every connection and ends the loop.
    pub async fn run(mut self) {
        if let Err(e) = self.serve().await {
            tracing::error!(
                shard = self.shard.id,
                "io_uring network loop failed, closing its connections: {e}"
            );
        }
        self.inbox.closed.set(true);
        // Connections handed over from now on are closed by the inbox.
        self.inbox.queue.borrow_mut().clear();
    }

    async fn serve(&mut self) -> io::Result<()> {
        // When this queue's current run on the executor began (see below).
        let mut queue_run_since = Instant::now();
        loop {
            self.take_inbox()?;
            self.reap()?;
            self.take_ready();
            if self.last_batch_recheck.elapsed() >= BATCH_RECHECK_INTERVAL {
                self.recheck_batches();
                self.last_batch_recheck = Instant::now();
            }
            self.advance_dirty()?;
            // One enter carries every send of the turn (and runs the
            // receives the kernel deferred to us).
            self.io.submit()?;
            if self.stopping_since.is_some() && self.drained() {
                return Ok(());
            }
            if self.again.is_empty() && !self.io.has_completions() && !self.io.kernel_has_work() {
                self.wait().await;
                queue_run_since = Instant::now();
            } else if queue_run_since.elapsed() >= QUEUE_RUN_MAX {
                // Under load this queue never runs dry, and glommio's
                // preemption timer may be armed at its 100 ms default (it is
                // armed before the queue woke): the flush, the WAL and the
                // executor's own I/O completions then waited up to 100 ms.
                // Hand the executor back after a short run instead.
                glommio::executor().yield_task_queue_now().await;
                queue_run_since = Instant::now();
            } else {
                // Work is ready: let the shard's other tasks in this queue run,
                // then go on.
                futures_lite::future::yield_now().await;
            }
            std::mem::swap(&mut self.dirty, &mut self.again);
        }
    }

    /// Whether every connection is gone, or the drain timeout expired (the
    /// remaining ones are then shut down and dropped).
    fn drained(&mut self) -> bool {
        if self.conns.iter().all(Option::is_none) {
            return true;
        }
        let expired = self
            .stopping_since
            .is_some_and(|t| t.elapsed() >= SHUTDOWN_DRAIN_TIMEOUT);
        if expired {
            tracing::warn!(
                shard = self.shard.id,
                "connections still busy after {SHUTDOWN_DRAIN_TIMEOUT:?}; closing anyway"
            );
        }
        expired
    }

    fn take_inbox(&mut self) -> io::Result<()> {
        if self.inbox.stopping.get() && self.stopping_since.is_none() {
            self.stopping_since = Some(Instant::now());
            for (slot, conn) in self.conns.iter_mut().enumerate() {
                if let Some(c) = conn {
                    c.finish();
                    self.dirty.push(slot);
                }
            }
        }
        let adopted = std::mem::take(&mut *self.inbox.queue.borrow_mut());
        for (fd, speaks, slot_guard) in adopted {
            if self.stopping_since.is_some() {
                continue; // dropping closes the socket and frees the slot
            }
            let slot = match self.free.pop() {
                Some(s) => s,
                None if self.conns.len() < CONNECTION_SLOTS_MAX => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
                None => continue,
            };
            self.generation = self.generation.wrapping_add(1);
            let waker = self.signals.conn_waker(key(self.generation, slot));
            let frame_size_max = self.shard.config.frame_size_max;
            let mut conn = Conn::new(
                fd,
                self.generation,
                speaks,
                frame_size_max,
                waker,
                slot_guard,
            );
            arm_recv(&mut self.io, &mut conn, slot)?;
            self.conns[slot] = Some(conn);
        }
        Ok(())
    }

    fn reap(&mut self) -> io::Result<()> {
        let mut completions = std::mem::take(&mut self.completions);
        self.io.reap(&mut completions);
        for &(ud, result, flags) in &completions {
            match ud & 0xff {
                OP_RECV => self.on_recv(ud, result, flags)?,
                OP_SEND => {
                    if let Some(conn) = self.conn_for(ud) {
                        conn.on_sent(result);
                        self.dirty.push(slot_of(ud));
                    }
                }
                _ => {} // a cancel's own completion: its receive reports
            }
        }
        completions.clear();
        self.completions = completions;
        Ok(())
    }

    /// The live connection a completion refers to (same slot and generation).
    fn conn_for(&mut self, ud: u64) -> Option<&mut Conn> {
        let generation = (ud >> 32) as u32;
        match self.conns.get_mut(slot_of(ud)) {
            Some(Some(c)) if c.generation == generation => Some(c),
            _ => None,
        }
    }

    fn on_recv(&mut self, ud: u64, result: i32, flags: u32) -> io::Result<()> {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let slot = slot_of(ud);
        let generation = (ud >> 32) as u32;
        let conn = match self.conns.get_mut(slot) {
            Some(Some(c)) if c.generation == generation => c,
            _ => {
                if let Some(bid) = bid {
                    self.bufs.recycle(bid);
                }
                return Ok(());
            }
        };
        if let Some(bid) = bid {
            if result > 0 {
                conn.receive(self.bufs.bytes(bid, result as usize));
            }
            self.bufs.recycle(bid);
        }
        match result {
            0 => conn.end_of_stream(),
            r if r > 0 => {}
            // Out of buffers (they come back this turn) or cancelled to
            // pause: neither ends the stream.
            r if r == -libc::ENOBUFS || r == -libc::ECANCELED => {}
            _ => conn.break_off(),
        }
        if !more {
            conn.recv_active = false;
            if conn.wants_bytes() {
                arm_recv(&mut self.io, conn, slot)?;
            }
        }
        self.dirty.push(slot);
        Ok(())
    }

    fn take_ready(&mut self) {
        self.signals.take_ready(&mut self.ready);
        for k in self.ready.drain(..) {
            let slot = (k & 0xff_ffff) as usize;
            if matches!(self.conns.get(slot), Some(Some(c)) if c.generation == (k >> 32) as u32) {
                self.dirty.push(slot);
            }
        }
    }

    /// Polls every batch in flight that is not due this turn anyway (see
    /// [`BATCH_RECHECK_INTERVAL`]); one that finishes had lost its wake-up,
    /// and its connection is moved on this turn.
    fn recheck_batches(&mut self) {
        self.dirty.sort_unstable();
        let due = self.dirty.len();
        for slot in 0..self.conns.len() {
            if self.dirty[..due].binary_search(&slot).is_ok() {
                continue;
            }
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            if conn.is_busy() && conn.poll_batch() {
                self.dirty.push(slot);
                let counter = &self.shard.counters.network_unwoken_batches;
                ShardCounters::bump(counter);
                if counter.get().is_power_of_two() {
                    tracing::warn!(
                        shard = self.shard.id,
                        unwoken = counter.get(),
                        "a batch in flight finished when polled unasked: its wake-up was lost (re-checked after {BATCH_RECHECK_INTERVAL:?})"
                    );
                }
            }
        }
    }

    fn advance_dirty(&mut self) -> io::Result<()> {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &slot in &dirty {
            self.advance(slot)?;
        }
        dirty.clear();
        self.dirty = dirty;
        Ok(())
    }

    /// Moves one connection on: its batch, its receive's flow control, its
    /// send, and its close.
    fn advance(&mut self, slot: usize) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return Ok(());
        };
        conn.step(&self.shard);
        match conn.recv_action() {
            RecvAction::Keep => {}
            RecvAction::Pause => {
                tracing::debug!(
                    shard = self.shard.id,
                    slot,
                    "receive paused: too many bytes wait"
                );
                let target = user_data(conn.generation, slot, OP_RECV);
                let entry = opcode::AsyncCancel::new(target)
                    .build()
                    .user_data(user_data(conn.generation, slot, OP_CANCEL));
                self.io.push(&entry)?;
            }
            RecvAction::Resume => {
                tracing::debug!(shard = self.shard.id, slot, "receive resumed");
                arm_recv(&mut self.io, conn, slot)?
            }
        }
        if let Some((ptr, len)) = conn.next_send() {
            let entry = opcode::Send::new(Fd(conn.fd.as_raw_fd()), ptr, len)
                .build()
                .user_data(user_data(conn.generation, slot, OP_SEND));
            conn.send_in_flight = true;
            self.io.push(&entry)?;
        }
        if conn.should_close() {
            if conn.is_quiet() {
                // Dropping closes the socket and frees the node's slot.
                self.conns[slot] = None;
                self.free.push(slot);
            } else if !conn.shut && !conn.is_busy() {
                // End the receive (and a send stuck on a peer that does not
                // read); their completions bring the connection back here.
                conn.shut = true;
                // SAFETY: shutdown(2) on a socket this connection owns.
                unsafe { libc::shutdown(conn.fd.as_raw_fd(), libc::SHUT_RDWR) };
            }
        } else if conn.has_more() {
            self.again.push(slot);
        }
        Ok(())
    }

    /// Parks the task until a completion, a woken batch, a handed-over
    /// connection or the stop, and at most [`IDLE_RECHECK_INTERVAL`] (while
    /// stopping, [`STOP_CHECK_INTERVAL`]).
    async fn wait(&mut self) {
        let tick = if self.stopping_since.is_some() {
            STOP_CHECK_INTERVAL
        } else if self.event_failed {
            EVENT_FAILED_POLL_INTERVAL
        } else {
            IDLE_RECHECK_INTERVAL
        };
        self.io.signal_while_waiting();
        let waited = std::future::poll_fn(|cx| {
            self.signals.register(cx.waker());
            if self.signals.take_kick() || self.io.has_completions() || self.io.kernel_has_work() {
                return Poll::Ready(());
            }
            if self.event_failed {
                return Poll::Pending;
            }
            match self.events.poll_read(cx) {
                Poll::Ready(result) => {
                    if let Err(e) = result {
                        tracing::warn!(
                            shard = self.shard.id,
                            "reading the network ring's eventfd failed ({e}); polling every millisecond"
                        );
                        self.event_failed = true;
                    }
                    Poll::Ready(())
                }
                Poll::Pending => Poll::Pending,
            }
        });
        let woken = futures_lite::future::or(
            async {
                waited.await;
                true
            },
            async {
                glommio::timer::sleep(tick).await;
                false
            },
        )
        .await;
        self.io.quiet_eventfd();
        if !woken && !self.event_failed && (self.io.has_completions() || self.io.kernel_has_work())
        {
            let counter = &self.shard.counters.network_missed_wakeups;
            ShardCounters::bump(counter);
            // The first, then every power of two: evidence without a flood.
            if counter.get().is_power_of_two() {
                tracing::warn!(
                    shard = self.shard.id,
                    missed = counter.get(),
                    "the network loop found completions no wake-up announced (re-checked after {IDLE_RECHECK_INTERVAL:?})"
                );
            }
        }
    }
}

fn arm_recv(io: &mut Io, conn: &mut Conn, slot: usize) -> io::Result<()> {
    conn.recv_active = true;
    let entry = opcode::RecvMulti::new(Fd(conn.fd.as_raw_fd()), BUF_GROUP)
        .build()
        .user_data(user_data(conn.generation, slot, OP_RECV));
    io.push(&entry)
}

impl Drop for Driver {
    fn drop(&mut self) {
        let mut in_flight = false;
        for conn in self.conns.iter_mut().flatten() {
            if conn.send_in_flight {
                conn.leak_send_buffer();
            }
            in_flight |= conn.send_in_flight || conn.recv_active;
            if !conn.shut {
                // SAFETY: shutdown(2) on a socket this connection owns.
                unsafe { libc::shutdown(conn.fd.as_raw_fd(), libc::SHUT_RDWR) };
            }
        }
        if in_flight {
            self.bufs.leak();
        }
    }
}

/// Builds a shard's network ring.
pub fn build_ring() -> io::Result<IoUring> {
    // COOP_TASKRUN: a receive that becomes ready does not interrupt the
    // shard's thread with an IPI; its completion is made the next time the
    // thread enters the kernel (this loop's submit, or glommio's own wait,
    // which a sleeping thread is woken from), and TASKRUN_FLAG tells the loop
    // that such work waits.
    IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .setup_taskrun_flag()
        .setup_submit_all()
        .setup_cqsize(COMPLETION_ENTRIES)
        .build(RING_ENTRIES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};

    /// The signals counted on a non-blocking eventfd since the last read (0 if none).
    fn take_signals(efd: &OwnedFd) -> u64 {
        let mut count = [0u8; 8];
        // SAFETY: reading 8 bytes into a live 8-byte buffer.
        let n = unsafe { libc::read(efd.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
        if n == 8 {
            u64::from_ne_bytes(count)
        } else {
            assert_eq!(
                io::Error::last_os_error().raw_os_error(),
                Some(libc::EAGAIN),
                "eventfd read"
            );
            0
        }
    }

    fn nop(io: &mut Io, user_data: u64) {
        io.push(&opcode::Nop::new().build().user_data(user_data))
            .expect("queue a NOP");
        io.submit().expect("submit");
    }

    /// The loop's own completions (a NOP here, its sends on the wire) do not
    /// signal the eventfd while it runs, so they neither complete glommio's
    /// read nor wake the loop again; while it waits, every completion does.
    #[test]
    fn only_a_waiting_loop_is_signalled_through_its_eventfd() {
        let ring = build_ring().expect("ring");
        // SAFETY: eventfd(2) with valid flags; checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        assert!(fd >= 0, "eventfd: {}", io::Error::last_os_error());
        // SAFETY: a fresh descriptor nothing else owns.
        let efd = unsafe { OwnedFd::from_raw_fd(fd) };
        ring.submitter()
            .register_eventfd(efd.as_raw_fd())
            .expect("register eventfd");
        let mut io = Io {
            ring,
            backlog: Vec::new(),
        };
        let mut reaped = Vec::new();
        nop(&mut io, 1);
        assert_eq!(take_signals(&efd), 1, "a fresh ring signals");

        io.quiet_eventfd();
        nop(&mut io, 2);
        nop(&mut io, 3);
        assert_eq!(take_signals(&efd), 0, "a running loop is not signalled");

        io.signal_while_waiting();
        nop(&mut io, 4);
        assert_eq!(take_signals(&efd), 1, "a waiting loop is");

        io.quiet_eventfd();
        nop(&mut io, 5);
        assert_eq!(take_signals(&efd), 0);
        io.reap(&mut reaped);
        let ids: Vec<u64> = reaped.iter().map(|c| c.0).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5], "no completion is lost either way");
    }
}
