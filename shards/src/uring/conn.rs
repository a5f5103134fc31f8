//! One client connection of the network loop, in either protocol (ringkv's
//! binary one or RESP): its receive buffer, its batch of requests in flight,
//! its answers, and the state that decides when it may receive, send and
//! close. Pure state: the loop ([`super::driver`]) turns what it asks for
//! into ring operations.
//!
//! ```text
//!  recv completions ──► buf: [ frame | frame | partial ]
//!                              \__ batch (moved out while it runs) __/
//!  while a batch runs, new bytes land in the (empty) spare, and are
//!  appended to the batch's leftover when it returns.
//!  batch answers ──► out ──(one send per turn)──► sending (in flight)
//! ```
//!
//! Invariants:
//! - at most one batch of at most `BATCH_FRAMES_MAX` frames runs at once,
//!   and a new batch starts only when the previous answers were handed to a
//!   send (`out` is empty), so a connection holds at most two batches of
//!   answers;
//! - received and unprocessed bytes stay below [`Conn::pause_at`] while the
//!   receive runs (the loop cancels the receive above it, and arms it again
//!   below), and a connection that still goes over [`Conn::refuse_at`] is
//!   answered `FrameTooLarge` and closed;
//! - answers of a binary batch come in completion order, like the glommio
//!   engine (clients match them by id); RESP replies come in command order
//!   (the RESP batch runs its commands one after the other).

use crate::conn::BatchEnd;
use crate::limits::RECEIVE_BUFFER_SIZE_INITIAL;
use crate::listener::Slot;
use crate::resp_exec::Session;
use crate::service::{encode_error, Scope};
use crate::shard::Shard;
use ringkv_net::client_frame::{decode_request, Decoded, Status};
use ringkv_net::resp::{parse_command, RespLimits};
use std::cell::RefCell;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// What a connection speaks, with the state its protocol keeps between
/// batches.
pub enum Speaks {
    /// ringkv's binary protocol, with its SCAN scope.
    Binary(Scope),
    /// RESP, with the connection's session (lent to the batch in flight,
    /// `None` meanwhile).
    Resp(Option<Box<Session>>),
}

/// What a finished batch hands back: the buffer it decoded from, its
/// answers, what decoding found, and the RESP session it borrowed.
pub struct BatchDone {
    buf: Vec<u8>,
    out: Vec<u8>,
    end: BatchEnd,
    session: Option<Box<Session>>,
}

type Batch = Pin<Box<dyn Future<Output = BatchDone>>>;

/// A connection a buffer this large after use is shrunk back.
const BUFFER_SHRINK_CAPACITY: usize = 4 * RECEIVE_BUFFER_SIZE_INITIAL;

/// One client connection.
pub struct Conn {
    /// The socket (closed when the connection is dropped).
    pub fd: OwnedFd,
    /// Tells this connection's completions from those of an earlier one in
    /// the same slot.
    pub generation: u32,
    speaks: Speaks,
    /// The largest request (frame or command) the protocol accepts.
    request_size_max: usize,
    /// Wakes the loop for this connection's batch.
    waker: Waker,
    /// Received bytes not yet handed to a batch.
    buf: Vec<u8>,
    /// An empty buffer to receive into while `buf` is lent to a batch.
    spare: Vec<u8>,
    /// Answers not yet handed to a send.
    out: Vec<u8>,
    /// Answers of the send in flight (or partly sent).
    sending: Vec<u8>,
    /// Bytes of `sending` already sent.
    sent: usize,
    batch: Option<Batch>,
    /// Bytes lent to the batch in flight.
    batch_len: usize,
    /// Bytes arrived (or frames left over) since decoding last stopped.
    fresh: bool,
    /// Length the unprocessed bytes need to reach to hold the next frame
    /// (0 when unknown).
    need: usize,
    /// A send is in flight.
    pub send_in_flight: bool,
    /// A multishot receive is armed (its last completion has not come).
    pub recv_active: bool,
    /// The receive was cancelled because too many bytes wait.
    pub recv_paused: bool,
    /// The peer sent its last byte (or the receive failed).
    eof: bool,
    /// Answer what has started, send it, then close (a bad stream, or the
    /// shard stopping).
    finishing: bool,
    /// Close as soon as nothing is in flight; answers are dropped.
    broken: bool,
    /// `shutdown(2)` was called, to end the receive or a stuck send.
    pub shut: bool,
    /// Holds one of the node's connection slots until dropped.
    _slot: Slot,
}

/// What the loop should do about a connection's receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvAction {
    /// Nothing to change.
    Keep,
    /// Too many bytes wait: cancel the receive.
    Pause,
    /// Room again: arm the receive.
    Resume,
}

impl Conn {
    /// A connection on `fd` speaking `speaks`, woken by `waker`; binary
    /// frames are refused above `frame_size_max`.
    pub fn new(
        fd: OwnedFd,
        generation: u32,
        speaks: Speaks,
        frame_size_max: usize,
        waker: Waker,
        slot: Slot,
    ) -> Self {
        let request_size_max = match speaks {
            Speaks::Binary(_) => frame_size_max,
            Speaks::Resp(_) => RespLimits::default().command_size_max,
        };
        Conn {
            fd,
            generation,
            speaks,
            request_size_max,
            waker,
            buf: Vec::new(),
            spare: Vec::new(),
            out: Vec::new(),
            sending: Vec::new(),
            sent: 0,
            batch: None,
            batch_len: 0,
            fresh: false,
            need: 0,
            send_in_flight: false,
            recv_active: false,
            recv_paused: false,
            eof: false,
            finishing: false,
            broken: false,
            shut: false,
            _slot: slot,
        }
    }

    /// Appends received bytes (dropped once the connection is closing).
    pub fn receive(&mut self, bytes: &[u8]) {
        if self.broken || self.finishing || self.eof {
            return;
        }
        self.buf.extend_from_slice(bytes);
        self.fresh = true;
    }

    /// The peer closed its side: answer the complete frames, then close.
    pub fn end_of_stream(&mut self) {
        self.eof = true;
    }

    /// The socket failed: close without answering.
    pub fn break_off(&mut self) {
        self.broken = true;
    }

    /// Stop starting batches; answer the one in flight, then close.
    pub fn finish(&mut self) {
        self.finishing = true;
    }

    /// Whether the receive should stay armed (or be armed again).
    pub fn wants_bytes(&self) -> bool {
        !(self.eof || self.broken || self.finishing || self.shut || self.recv_paused)
    }

    /// Received bytes not yet answered (waiting, and lent to the batch).
    fn unprocessed(&self) -> usize {
        self.buf.len() + self.batch_len
    }

    /// Unprocessed bytes at which the receive pauses: the initial buffer
    /// size, or the next request's length when it is larger (bounded by the
    /// protocol's request limit), as the glommio engine's buffer grows.
    pub fn pause_at(&self) -> usize {
        RECEIVE_BUFFER_SIZE_INITIAL.max(self.need).min(
            self.request_size_max
                .saturating_add(RECEIVE_BUFFER_SIZE_INITIAL),
        )
    }

    /// Unprocessed bytes at which the connection is refused: twice the
    /// largest pause point, room for what the kernel delivered before the
    /// cancel of the receive took effect.
    pub fn refuse_at(&self) -> usize {
        self.request_size_max
            .saturating_add(RECEIVE_BUFFER_SIZE_INITIAL)
            .saturating_mul(2)
    }

    /// Decides the receive's flow control; refuses a connection over
    /// [`Conn::refuse_at`].
    pub fn recv_action(&mut self) -> RecvAction {
        let waiting = self.unprocessed();
        if waiting > self.refuse_at() && !self.finishing && !self.broken {
            let msg = format!(
                "receive buffer full: {waiting} bytes wait, limit {}",
                self.refuse_at()
            );
            match self.speaks {
                Speaks::Binary(_) => encode_error(0, Status::FrameTooLarge, &msg, &mut self.out),
                // An error line reads the same in RESP2 and RESP3.
                Speaks::Resp(_) => self
                    .out
                    .extend_from_slice(format!("-ERR Protocol error: {msg}\r\n").as_bytes()),
            }
            self.buf = Vec::new();
            self.finishing = true;
        }
        let pause = waiting >= self.pause_at();
        if self.recv_active && !self.recv_paused && pause {
            self.recv_paused = true;
            RecvAction::Pause
        } else if self.recv_paused && !self.recv_active && !pause {
            self.recv_paused = false;
            if self.wants_bytes() {
                RecvAction::Resume
            } else {
                RecvAction::Keep
            }
        } else {
            RecvAction::Keep
        }
    }

    /// Moves the batch in flight on (if woken) and starts the next one when
    /// complete frames wait and the previous answers went to a send. At most
    /// one batch starts per call: the loop calls once per connection per
    /// turn, so a flooding connection cannot starve the others.
    pub fn step(&mut self, shard: &Rc<Shard>) {
        self.poll_batch();
        if self.batch.is_some() || !self.may_start_batch() {
            return;
        }
        self.fresh = false;
        if let Some(needed) = self.incomplete(shard) {
            self.need = self.buf.len() + needed;
            return;
        }
        let buf = std::mem::replace(&mut self.buf, std::mem::take(&mut self.spare));
        let out = std::mem::take(&mut self.out);
        self.batch_len = buf.len();
        let shard = shard.clone();
        let mut batch: Batch = match &mut self.speaks {
            Speaks::Binary(scope) => {
                let scope = *scope;
                Box::pin(async move {
                    let out = RefCell::new(out);
                    let end = crate::conn::run_batch(&shard, scope, &buf, &out).await;
                    BatchDone {
                        buf,
                        out: out.into_inner(),
                        end,
                        session: None,
                    }
                })
            }
            Speaks::Resp(session) => {
                let Some(mut session) = session.take() else {
                    // Cannot happen: a session is lent only to a batch in
                    // flight, and none is. Close rather than guess.
                    self.broken = true;
                    return;
                };
                Box::pin(async move {
                    let mut out = out;
                    let end =
                        crate::resp_conn::run_batch(&shard, &mut session, &buf, &mut out).await;
                    BatchDone {
                        buf,
                        out,
                        end,
                        session: Some(session),
                    }
                })
            }
        };
        let mut cx = Context::from_waker(&self.waker);
        match batch.as_mut().poll(&mut cx) {
            Poll::Ready(done) => self.absorb(done),
            Poll::Pending => self.batch = Some(batch),
        }
    }

    /// More bytes the first request in `buf` needs, when it is incomplete
    /// (so no batch is worth starting).
    fn incomplete(&self, shard: &Shard) -> Option<usize> {
        match &self.speaks {
            Speaks::Binary(_) => match decode_request(&self.buf, shard.config.frame_size_max) {
                Ok(Decoded::Incomplete { needed }) => Some(needed),
                _ => None,
            },
            Speaks::Resp(session) => {
                let limits = RespLimits {
                    authenticated: session.as_ref().is_some_and(|s| s.authenticated),
                    ..RespLimits::default()
                };
                match parse_command(&self.buf, &limits) {
                    Ok(ringkv_net::resp::Decoded::Incomplete { needed }) => Some(needed.max(1)),
                    _ => None,
                }
            }
        }
    }

    /// Polls the batch in flight, if any, and takes its answers back when it
    /// is done. Returns whether it finished on this poll. A poll that nothing
    /// asked for is harmless: the batch stays pending.
    pub fn poll_batch(&mut self) -> bool {
        let Some(batch) = self.batch.as_mut() else {
            return false;
        };
        let mut cx = Context::from_waker(&self.waker);
        match batch.as_mut().poll(&mut cx) {
            Poll::Ready(done) => {
                self.batch = None;
                self.absorb(done);
                true
            }
            Poll::Pending => false,
        }
    }

    fn may_start_batch(&self) -> bool {
        self.batch.is_none() && self.fresh && self.out.is_empty() && !self.finishing && !self.broken
    }

    /// Takes a finished batch's answers and leftover bytes back.
    fn absorb(&mut self, done: BatchDone) {
        let BatchDone {
            mut buf,
            out,
            end,
            session,
        } = done;
        self.batch_len = 0;
        if let (Speaks::Resp(lent), Some(session)) = (&mut self.speaks, session) {
            *lent = Some(session);
        }
        if self.broken {
            // Nobody will read them.
        } else if self.out.is_empty() {
            self.out = out;
        } else {
            self.out.extend_from_slice(&out);
        }
        buf.drain(..end.consumed.min(buf.len()));
        self.need = if end.needed > 0 {
            buf.len() + end.needed
        } else {
            0
        };
        if end.frames > 0 && end.needed == 0 && !buf.is_empty() {
            // The batch stopped at its frame cap: more complete frames may wait.
            self.fresh = true;
        }
        if !self.buf.is_empty() {
            buf.extend_from_slice(&self.buf);
            self.buf.clear();
            self.fresh = true;
        }
        self.spare = std::mem::replace(&mut self.buf, buf);
        if self.spare.capacity() > BUFFER_SHRINK_CAPACITY {
            self.spare = Vec::new();
        }
        if self.buf.is_empty() && self.buf.capacity() > BUFFER_SHRINK_CAPACITY {
            self.buf = Vec::new();
        }
        if end.close {
            self.finishing = true;
        }
    }

    /// Whether another turn could start a batch without new bytes (the last
    /// one stopped at its frame cap).
    pub fn has_more(&self) -> bool {
        self.may_start_batch()
    }

    /// The bytes to send next, if no send is in flight: the rest of a
    /// partly sent buffer, or every answer gathered since the last send.
    pub fn next_send(&mut self) -> Option<(*const u8, u32)> {
        if self.send_in_flight || self.broken {
            return None;
        }
        if self.sent >= self.sending.len() && !self.out.is_empty() {
            self.sending.clear();
            self.sent = 0;
            std::mem::swap(&mut self.sending, &mut self.out);
        }
        let rest = self.sending.get(self.sent..).unwrap_or_default();
        if rest.is_empty() {
            return None;
        }
        // A send of more than u32::MAX bytes goes out in several parts.
        let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        Some((rest.as_ptr(), len))
    }

    /// Records a send's result (bytes sent, or a negative errno).
    pub fn on_sent(&mut self, result: i32) {
        self.send_in_flight = false;
        if result <= 0 {
            self.broken = true;
            return;
        }
        self.sent += result as usize;
        if self.sent >= self.sending.len() {
            self.sending.clear();
            self.sent = 0;
            if self.sending.capacity() > BUFFER_SHRINK_CAPACITY {
                self.sending = Vec::new();
            }
        }
    }

    /// Whether the connection is done: nothing more to answer or send.
    pub fn should_close(&self) -> bool {
        if self.broken {
            return true;
        }
        let idle = self.batch.is_none()
            && !self.send_in_flight
            && self.out.is_empty()
            && self.sent >= self.sending.len();
        idle && (self.finishing || (self.eof && !self.has_more()))
    }

    /// Whether nothing of this connection is in flight: its batch, send and
    /// receive have all ended, so its socket and buffers may go.
    pub fn is_quiet(&self) -> bool {
        self.batch.is_none() && !self.send_in_flight && !self.recv_active
    }

    /// A batch is in flight.
    pub fn is_busy(&self) -> bool {
        self.batch.is_some()
    }

    /// Gives up the send buffer without freeing it: the ring is being torn
    /// down with this send still in flight.
    pub fn leak_send_buffer(&mut self) {
        std::mem::forget(std::mem::take(&mut self.sending));
    }
}
