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
use crate::service::{encode_error, handle, Scope};
use crate::shard::{Shard, ShardCounters};
use crate::stop::StopEvent;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use ringkv_net::client_frame::{decode_request, Decoded, Resync, Status};
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
    let mut work: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = Vec::new();
    while end.frames < BATCH_FRAMES_MAX && pos < buf.len() {
        match decode_request(&buf[pos..], frame_size_max) {
            Ok(Decoded::Frame {
                frame: (header, req),
                len,
            }) => {
                let raw = &buf[pos..pos + len];
                work.push(Box::pin(handle(shard, scope, header, req, raw, out)));
                pos += len;
                end.frames += 1;
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
    if work.len() == 1 {
        if let Some(f) = work.pop() {
            f.await;
        }
    } else if !work.is_empty() {
        crate::join::join_all(work).await;
    }
    end
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
