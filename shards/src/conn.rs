//! One client connection: read into a buffer, decode every complete frame in
//! place, execute the batch concurrently, encode all answers into one buffer,
//! write it once.
//!
//! ```text
//!  buf: [ frame | frame | frame | partial... ]   <- read appends here
//!         \_______ one batch ______/
//!  out: [ answer | answer | answer ]             -> one write
//! ```
//!
//! Invariants: the receive buffer never grows beyond the frame maximum plus
//! its initial size (the decoder refuses larger frames from their header);
//! at most [`BATCH_FRAMES_MAX`] requests of one connection run at once; answers
//! within a batch come in completion order (clients match them by id); a bad
//! frame is answered per its [`Resync`]: `Skip` answers under its id and goes
//! on, `Close` answers with id 0, flushes and closes.

use crate::limits::{BATCH_FRAMES_MAX, RECEIVE_BUFFER_SIZE_INITIAL};
use crate::service::{answer_now, encode_error, handle, now_ms, write_now, Scope, WrittenNow};
use crate::shard::{Shard, ShardCounters};
use crate::stop::StopEvent;
use crate::store::EntryHints;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use ringkv_net::client_frame::{decode_request, Decoded, Request, RequestHeader, Resync, Status};
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// What decoding one batch found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchEnd {
    /// Bytes of complete frames consumed.
    pub(crate) consumed: usize,
    /// More bytes needed before the next frame is complete (0 if unknown).
    pub(crate) needed: usize,
    /// The stream is untrusted: close after writing the answers.
    pub(crate) close: bool,
    /// Frames decoded (good or bad).
    pub(crate) frames: usize,
}

/// Decodes and executes the complete frames at the start of `buf` (at most
/// [`BATCH_FRAMES_MAX`]), appending every answer to `out`. Shared by both
/// network engines, so a batch means the same thing in each.
pub(crate) async fn run_batch<'b>(
    shard: &'b Rc<Shard>,
    scope: Scope,
    buf: &'b [u8],
    out: &'b RefCell<Vec<u8>>,
) -> BatchEnd {
    let frame_size_max = shard.config.frame_size_max;
    let mut pos = 0;
    let mut end = BatchEnd {
        consumed: 0,
        needed: 0,
        close: false,
        frames: 0,
    };
    let mut pending = Pending::new(shard, scope, out);
    while end.frames < BATCH_FRAMES_MAX && pos < buf.len() {
        match decode_request(&buf[pos..], frame_size_max) {
            Ok(Decoded::Frame {
                frame: (header, req),
                len,
            }) => {
                let raw = &buf[pos..pos + len];
                pos += len;
                end.frames += 1;
                pending.push(header, req, raw);
            }
            Ok(Decoded::Incomplete { needed }) => {
                end.needed = needed;
                break;
            }
            Err(e) => {
                ShardCounters::bump(&shard.counters.bad_requests);
                end.frames += 1;
                tracing::debug!(shard = shard.id, "bad request: {e}");
                match e.resync {
                    Resync::Skip(n) => {
                        encode_error(
                            e.id.unwrap_or(0),
                            e.status,
                            &e.message,
                            &mut out.borrow_mut(),
                        );
                        // A skip always moves forward, so decoding cannot loop.
                        pos += n.max(1);
                    }
                    Resync::Close => {
                        encode_error(0, e.status, &e.message, &mut out.borrow_mut());
                        end.close = true;
                        break;
                    }
                }
            }
        }
    }
    end.consumed = pos.min(buf.len());
    let mut work = pending.release();
    if work.len() == 1 {
        if let Some(f) = work.pop() {
            f.await;
        }
    } else if !work.is_empty() {
        crate::join::join_all(work).await;
    }
    end
}

/// Requests of a batch decoded but not yet run; a longer batch runs in
/// several rounds.
const PENDING_MAX: usize = 32;

/// A batch's requests between decoding and running. Requests are held until
/// [`PENDING_MAX`] are decoded (or the batch ends), then the keys of their
/// GETs, PUTs and DELETEs are hinted to the store together (see
/// [`crate::store::Store::prefetch`]: the row cache for all, the memtable
/// index for writes) before any of them runs, so their cache misses overlap
/// instead of following one another.
///
/// A request runs at once when it can (a GET the store answers without I/O, see
/// [`answer_now`]; a PUT or DELETE the store takes without waiting, see
/// [`write_now`]), else it is queued as a future. Nothing overtakes queued
/// work: once one request is queued, every later one is queued too, so a
/// pipelined GET never runs before a PUT sent ahead of it. A write done at
/// once that only waits to be durable before it is answered does not count
/// as queued work: its effect is already there for later requests to see.
struct Pending<'b> {
    shard: &'b Rc<Shard>,
    scope: Scope,
    out: &'b RefCell<Vec<u8>>,
    /// The wall clock, read once per batch for the requests answered at once.
    now_ms: u64,
    held: [Option<(RequestHeader, Request<'b>, &'b [u8])>; PENDING_MAX],
    len: usize,
    queued: Vec<Pin<Box<dyn Future<Output = ()> + 'b>>>,
    /// Some queued future has not taken effect yet (a request for
    /// [`handle`]): later requests must queue behind it.
    effects_queued: bool,
}

impl<'b> Pending<'b> {
    fn new(shard: &'b Rc<Shard>, scope: Scope, out: &'b RefCell<Vec<u8>>) -> Self {
        Pending {
            shard,
            scope,
            out,
            now_ms: now_ms(),
            held: [const { None }; PENDING_MAX],
            len: 0,
            queued: Vec::new(),
            effects_queued: false,
        }
    }

    /// Holds one decoded request (`raw` is its whole frame).
    fn push(&mut self, header: RequestHeader, req: Request<'b>, raw: &'b [u8]) {
        if self.len == PENDING_MAX {
            self.run_held();
        }
        self.held[self.len] = Some((header, req, raw));
        self.len += 1;
    }

    /// Runs what is held; returns the futures of the requests that could
    /// not be answered at once, in request order.
    fn release(mut self) -> Vec<Pin<Box<dyn Future<Output = ()> + 'b>>> {
        self.run_held();
        self.queued
    }

    fn run_held(&mut self) {
        let mut reads: [&[u8]; PENDING_MAX] = [&[]; PENDING_MAX];
        let mut writes: [&[u8]; PENDING_MAX] = [&[]; PENDING_MAX];
        let (mut read, mut written) = (0, 0);
        for (_, req, _) in self.held[..self.len].iter().flatten() {
            match req {
                Request::Get { key } => {
                    reads[read] = key;
                    read += 1;
                }
                Request::Put { key, .. } | Request::Delete { key } => {
                    writes[written] = key;
                    written += 1;
                }
                _ => {}
            }
        }
        if read + written > 0 {
            self.shard
                .store
                .prefetch(&reads[..read], &writes[..written]);
        }
        let mut entry_hints =
            EntryHints::new(&self.shard.store, &reads[..read], &writes[..written]);
        for i in 0..self.len {
            match self.held[i] {
                Some((_, Request::Get { .. }, _)) => entry_hints.next_read(&self.shard.store),
                Some((_, Request::Put { .. } | Request::Delete { .. }, _)) => {
                    entry_hints.next_write(&self.shard.store)
                }
                _ => {}
            }
            let Some((header, req, raw)) = self.held[i].take() else {
                continue;
            };
            if !self.effects_queued {
                if answer_now(self.shard, &header, &req, self.now_ms, self.out) {
                    continue;
                }
                match write_now(self.shard, &header, &req, self.now_ms, self.out) {
                    WrittenNow::Answered => continue,
                    WrittenNow::Committing(f) => {
                        self.queued.push(f);
                        continue;
                    }
                    WrittenNow::NotTaken => {}
                }
            }
            let f = handle(self.shard, self.scope, header, req, raw, self.out);
            self.queued.push(Box::pin(f));
            self.effects_queued = true;
        }
        self.len = 0;
    }
}

/// Serves one connection until the peer closes it, the stream becomes
/// untrusted, or the shard stops (after the batch in flight is answered).
pub async fn serve(shard: Rc<Shard>, scope: Scope, mut stream: TcpStream, stop: StopEvent) {
    let frame_size_max = shard.config.frame_size_max;
    let mut buf = vec![0u8; RECEIVE_BUFFER_SIZE_INITIAL];
    let mut filled = 0usize;
    let out = RefCell::new(Vec::with_capacity(RECEIVE_BUFFER_SIZE_INITIAL));
    loop {
        let end = run_batch(&shard, scope, &buf[..filled], &out).await;
        if !out.borrow().is_empty() {
            let bytes = std::mem::take(&mut *out.borrow_mut());
            if stream.write_all(&bytes).await.is_err() {
                return;
            }
            let mut reuse = bytes;
            reuse.clear();
            *out.borrow_mut() = reuse;
        }
        if end.close {
            let _ = stream.close().await;
            return;
        }
        if end.consumed > 0 {
            buf.copy_within(end.consumed..filled, 0);
            filled -= end.consumed;
        }
        if end.frames > 0 && end.needed == 0 && filled > 0 {
            // The batch stopped at its frame cap: more complete frames may wait.
            continue;
        }
        if stop.is_fired() {
            let _ = stream.close().await;
            return;
        }
        // Make room for what the next frame needs (bounded by the frame maximum).
        let want = (filled + end.needed.max(1))
            .min(frame_size_max.saturating_add(RECEIVE_BUFFER_SIZE_INITIAL));
        if want > buf.len() {
            buf.resize(
                want.max(buf.len() * 2)
                    .min(frame_size_max + RECEIVE_BUFFER_SIZE_INITIAL),
                0,
            );
        } else if filled == 0 && buf.len() > 4 * RECEIVE_BUFFER_SIZE_INITIAL {
            buf.truncate(RECEIVE_BUFFER_SIZE_INITIAL);
            buf.shrink_to_fit();
        }
        if filled == buf.len() {
            // Cannot happen: the decoder refuses a frame larger than the buffer
            // can grow to. Refuse the stream rather than spin.
            let mut bytes = Vec::new();
            encode_error(0, Status::FrameTooLarge, "receive buffer full", &mut bytes);
            let _ = stream.write_all(&bytes).await;
            return;
        }
        let read = futures_lite::future::or(
            async { Some(stream.read(&mut buf[filled..]).await) },
            async {
                stop.wait().await;
                None
            },
        )
        .await;
        match read {
            Some(Ok(0)) | Some(Err(_)) => return,
            Some(Ok(n)) => filled += n,
            None => {
                let _ = stream.close().await;
                return;
            }
        }
    }
}
