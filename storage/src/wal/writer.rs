//! The WAL writer: the in-memory tail, group commit, segment files (prepare,
//! rotate, recycle) and opening (replay, then continue after the last record).

use super::record::{self, frame_len, FRAME_HEADER_SIZE, WAL_MAGIC};
use super::replay::{replay_segment, SegmentScan};
use super::tail_buf::TailBuf;
use super::{
    batch, segment_file_name, Durability, Lsn, SegmentId, WalOptions, WalStats,
    BACKGROUND_FLUSH_INTERVAL, KIND_BATCH, KIND_SEGMENT_END, PREPARE_CHUNK_PAUSE,
    PREPARE_CHUNK_SIZE, SEGMENT_SIZE_MIN,
};
use crate::error::{Error, Result};
use crate::io::{self, AlignedBuf, BackgroundTask, DirectFile};
use crate::limits::WAL_WRITE_CHUNK_SIZE as WRITE_CHUNK_SIZE;
use crate::limits::{BLOCK_SIZE, WAL_SEGMENT_ID_MAX};
use crate::types::{Record, RecordRef};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// The write-ahead log of one shard. Single-threaded; methods take `&self`.
/// See the module doc of [`crate::wal`] for format and guarantees.
pub struct Wal {
    shared: Rc<Shared>,
    flusher: RefCell<Option<BackgroundTask<()>>>,
}

struct Shared {
    dir: PathBuf,
    options: WalOptions,
    state: RefCell<State>,
}

/// Bytes of one segment not yet durable, from the page holding the first such byte.
struct Tail {
    id: SegmentId,
    size: u64,
    file: Option<Rc<DirectFile>>,
    /// Segment offset of the first live byte of `buf`, a multiple of the block size.
    buf_start: u64,
    buf: TailBuf,
    /// Bytes of `buf` already written and synced.
    written: usize,
    /// Value of `State::appended_seq` after the last byte of `buf`.
    seq_end: u64,
    /// Whether the segment-end frame is in `buf`.
    ended: bool,
}

impl Tail {
    fn end(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }
}

struct WaiterSlot {
    id: u64,
    target: u64,
    waker: Waker,
}

struct State {
    tails: VecDeque<Tail>,
    next_lsn: Lsn,
    durable_lsn: Lsn,
    /// (lsn, appended_seq after it) of batches not yet durable, oldest first.
    unsynced: VecDeque<(Lsn, u64)>,
    /// Bytes ever appended (a position in the log, across segments).
    appended_seq: u64,
    /// Bytes of the frames replayed at open: every live segment up to its
    /// last valid frame (measured as `appended_seq` is).
    replayed_bytes: u64,
    /// Bytes ever made durable.
    durable_seq: u64,
    in_flight: bool,
    waiters: Vec<WaiterSlot>,
    next_waiter_id: u64,
    poisoned: Option<String>,
    closed: bool,
    /// Live segments and their sizes.
    live: BTreeMap<SegmentId, u64>,
    spares: Vec<PathBuf>,
    /// The buffer of the last tail popped, emptied, for the next segment's
    /// tail: its pages are resident. A fresh buffer per segment faulted in
    /// MiBs every segment (4.3 % of a shard's CPU at 1M SETs/s, in
    /// `batch::encode` touching new pages).
    recycled_buf: Option<TailBuf>,
    next_spare: u64,
    preparing: Option<BackgroundTask<Result<PathBuf>>>,
    last_sync: Option<Instant>,
    stats: WalStats,
    inject_fault: bool,
}

impl State {
    // `tails` is never empty: open pushes the first tail before the WAL is
    // returned, and a tail is popped only when a later one exists (the
    // segment-end frame always starts the next tail). Hence the expects below.

    fn last_tail(&self) -> &Tail {
        self.tails.back().expect("there is always a tail")
    }

    fn last_tail_mut(&mut self) -> &mut Tail {
        self.tails.back_mut().expect("there is always a tail")
    }

    fn first_tail(&self) -> &Tail {
        self.tails.front().expect("there is always a tail")
    }

    fn check(&self) -> Result<()> {
        if let Some(reason) = &self.poisoned {
            return Err(Error::Poisoned {
                reason: reason.clone(),
            });
        }
        if self.closed {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Appends a segment-end frame to the last tail and starts the next segment.
    fn end_segment(&mut self, next_size: u64) {
        let last_lsn = self.next_lsn - 1;
        let tail = self.last_tail_mut();
        assert!(!tail.ended, "segment {} ended twice", tail.id);
        let before = tail.buf.len();
        let out = tail.buf.appender(frame_len(0));
        let start = record::begin_frame(out);
        record::finish_frame(out, start, WAL_MAGIC, KIND_SEGMENT_END, tail.id, last_lsn);
        tail.ended = true;
        let added = (tail.buf.len() - before) as u64;
        let id = tail.id + 1;
        // The next tail reserves room for its whole segment, so it never
        // reallocates: regrown from nothing by doubling, a tail copied MiBs
        // inside a request batch (8 ms of the request queue, seen with
        // `stall_report_ms`), and each larger allocation's pages faulted in
        // anew. Only the pages it uses are touched (see `TailBuf`).
        let capacity = TailBuf::reserve_for(next_size);
        self.appended_seq += added;
        let seq = self.appended_seq;
        self.last_tail_mut().seq_end = seq;
        let buf = match self.recycled_buf.take() {
            Some(buf) if buf.capacity() >= capacity => buf,
            _ => {
                self.stats.tail_buffers_allocated += 1;
                TailBuf::with_capacity(capacity)
            }
        };
        self.tails.push_back(Tail {
            id,
            size: next_size,
            file: None,
            buf_start: 0,
            buf,
            written: 0,
            seq_end: self.appended_seq,
            ended: false,
        });
    }

    fn poison(&mut self, reason: String) {
        if self.poisoned.is_none() {
            tracing::error!(%reason, "WAL poisoned");
            self.poisoned = Some(reason);
        }
        for w in self.waiters.drain(..) {
            w.waker.wake();
        }
    }

    /// Records that the append stream is durable through `seq`, and wakes
    /// the waiters that this satisfies at once: a leader's round goes on
    /// after the write that covered them (more writes, closing a finished
    /// segment, preparing the next), and a follower waiting for the round's
    /// end waited for that too (up to 170 ms seen under a SET load, while
    /// the round wrote and closed a segment).
    fn mark_durable(&mut self, seq: u64) {
        self.durable_seq = self.durable_seq.max(seq);
        while let Some(&(lsn, end)) = self.unsynced.front() {
            if end > self.durable_seq {
                break;
            }
            self.durable_lsn = lsn;
            self.unsynced.pop_front();
        }
        let durable = self.durable_seq;
        self.waiters.retain(|w| {
            if w.target <= durable {
                w.waker.wake_by_ref();
                false
            } else {
                true
            }
        });
    }

    /// Wakes every waiter now satisfied, and the first one still waiting (it
    /// leads the next round).
    fn wake_after_round(&mut self) {
        let durable = self.durable_seq;
        let mut next_leader_woken = false;
        self.waiters.retain(|w| {
            if w.target <= durable || !next_leader_woken {
                if w.target > durable {
                    next_leader_woken = true;
                }
                w.waker.wake_by_ref();
                false
            } else {
                true
            }
        });
    }
}

/// A rotation begun by [`Wal::start_rotation`]: the segment it finished and
/// the point of the append stream that makes it durable.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    segment: SegmentId,
    target: u64,
}

/// One step of a leader's round, decided while holding the state borrow.
enum Step {
    Acquire {
        id: SegmentId,
        size: u64,
    },
    /// Write `len` bytes of the front tail's buffer at `offset`. With
    /// `seq_end`, the write reaches the end of what was appended: sync it and
    /// mark the batches through `seq_end` durable. Without, it is one chunk
    /// of a longer write (no sync, nothing marked).
    Write {
        file: Rc<DirectFile>,
        offset: u64,
        buf: AlignedBuf,
        len: usize,
        seq_end: Option<u64>,
    },
    Pop,
    Done,
}

impl Wal {
    /// Opens (creating when missing) the WAL in `<dir>/wal/`, replays every
    /// live segment (id > `retired_through`) in order, calling `replay(lsn,
    /// entries)` per batch, and returns a WAL that appends after the last good
    /// record. Segments <= `retired_through` are recycled or deleted. A torn
    /// tail of the last segment is cut (and logged); any other bad record is
    /// [`Error::Corruption`] naming the file and offset.
    pub async fn open(
        dir: &Path,
        options: WalOptions,
        retired_through: SegmentId,
        mut replay: impl FnMut(Lsn, Vec<(Vec<u8>, Record)>) -> Result<()>,
    ) -> Result<Wal> {
        let dir = dir.join("wal");
        if options.segment_size % BLOCK_SIZE as u64 != 0 || options.segment_size < SEGMENT_SIZE_MIN
        {
            return Err(Error::io(
                "open WAL",
                &dir,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "segment size {} must be a multiple of {BLOCK_SIZE} and at least {SEGMENT_SIZE_MIN}",
                        options.segment_size
                    ),
                ),
            ));
        }
        if options.spare_segments_max == 0 {
            return Err(Error::io(
                "open WAL",
                &dir,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "at least one spare segment must be kept",
                ),
            ));
        }
        if retired_through > WAL_SEGMENT_ID_MAX {
            return Err(Error::corruption(
                &dir,
                0,
                format!(
                    "WAL retired through segment {retired_through}, over the limit {WAL_SEGMENT_ID_MAX}"
                ),
            ));
        }
        io::prepare_dir(&dir, false).await?;
        let listing = list_wal_dir(&dir, options.segment_size, options.spare_segments_max)?;
        let shared = Rc::new(Shared {
            dir: dir.clone(),
            options: options.clone(),
            state: RefCell::new(State {
                tails: VecDeque::new(),
                next_lsn: 1,
                durable_lsn: 0,
                unsynced: VecDeque::new(),
                appended_seq: 0,
                replayed_bytes: 0,
                durable_seq: 0,
                in_flight: false,
                waiters: Vec::new(),
                next_waiter_id: 0,
                poisoned: None,
                closed: false,
                live: BTreeMap::new(),
                spares: listing.spares,
                recycled_buf: None,
                next_spare: listing.next_spare,
                preparing: None,
                last_sync: None,
                stats: WalStats::default(),
                inject_fault: false,
            }),
        });
        let mut live: Vec<(SegmentId, u64)> = Vec::new();
        for (id, size) in listing.segments {
            if id <= retired_through {
                shared.retire_file(id, size).await;
            } else {
                live.push((id, size));
            }
        }
        // Segments are created one after another and retired oldest first, so
        // the live ones must start right after `retired_through` with no gap.
        if let Some(&(first, _)) = live.first() {
            if first != retired_through + 1 {
                let missing = retired_through + 1;
                return Err(Error::corruption(
                    dir.join(segment_file_name(missing)),
                    0,
                    format!(
                        "WAL segment {missing} is missing: segments through {retired_through} are \
                         retired but the first live one is {first}"
                    ),
                ));
            }
        }
        for pair in live.windows(2) {
            if pair[1].0 != pair[0].0 + 1 {
                let missing = pair[0].0 + 1;
                return Err(Error::corruption(
                    dir.join(segment_file_name(missing)),
                    0,
                    format!(
                        "WAL segment {missing} is missing between {} and {}",
                        pair[0].0, pair[1].0
                    ),
                ));
            }
        }
        let mut last_lsn: Option<Lsn> = None;
        let mut continue_in: Option<(SegmentId, u64, DirectFile, SegmentScan)> = None;
        for (i, &(id, size)) in live.iter().enumerate() {
            let is_last = i + 1 == live.len();
            let path = dir.join(segment_file_name(id));
            let file = if is_last {
                DirectFile::open_rw(&path).await?
            } else {
                DirectFile::open_read(&path).await?
            };
            let scan = replay_segment(&file, id, size, is_last, last_lsn, &mut replay).await?;
            last_lsn = scan.last_lsn;
            {
                let mut st = shared.state.borrow_mut();
                st.live.insert(id, size);
                st.replayed_bytes += scan.good_end;
            }
            if is_last && !scan.ended {
                continue_in = Some((id, size, file, scan));
            } else {
                file.close().await?;
            }
        }
        let next_lsn = last_lsn.map_or(1, |l| l + 1);
        {
            let mut st = shared.state.borrow_mut();
            st.next_lsn = next_lsn;
            st.durable_lsn = next_lsn - 1;
        }
        let tail = match continue_in {
            Some((id, size, file, scan)) => {
                let buf_start = scan.good_end - scan.good_end % BLOCK_SIZE as u64;
                let mut buf = TailBuf::for_segment(size);
                if scan.good_end > buf_start {
                    let page = file.read_at(buf_start, BLOCK_SIZE).await?;
                    let keep = (scan.good_end - buf_start) as usize;
                    let out = buf.appender(keep);
                    out.extend_from_slice(&page[..keep.min(page.len())]);
                    // A file cut inside the last frame's padding: the padding is zeros.
                    out.resize(keep, 0);
                }
                let written = buf.len();
                Tail {
                    id,
                    size: size - size % BLOCK_SIZE as u64,
                    file: Some(Rc::new(file)),
                    buf_start,
                    buf,
                    written,
                    seq_end: 0,
                    ended: false,
                }
            }
            None => {
                let id = live.last().map_or(retired_through, |&(id, _)| id) + 1;
                let file = shared.acquire_segment(id, options.segment_size).await?;
                Tail {
                    id,
                    size: options.segment_size,
                    file: Some(file),
                    buf_start: 0,
                    buf: TailBuf::for_segment(options.segment_size),
                    written: 0,
                    seq_end: 0,
                    ended: false,
                }
            }
        };
        shared.state.borrow_mut().tails.push_back(tail);
        let flusher = if options.durability == Durability::None {
            let weak = Rc::downgrade(&shared);
            // Not in the background queue: behind a compaction it ran up
            // to tens of ms late, and the tail it had not written grew in
            // the appends (a doubling of a many-MiB buffer, 4 ms and more,
            // in the request path).
            Some(io::spawn_beside(flush_periodically(weak)))
        } else {
            None
        };
        Ok(Wal {
            shared,
            flusher: RefCell::new(flusher),
        })
    }

    /// Encodes a batch into the in-memory tail and returns its LSN; no I/O.
    /// Refuses (writing nothing) keys, values or batches over the limits, and a
    /// batch that does not fit in one segment.
    pub fn append(&self, entries: &[(&[u8], RecordRef<'_>)]) -> Result<Lsn> {
        let mut st = self.shared.state.borrow_mut();
        st.check()?;
        let payload_len = batch::validate(entries)?;
        let frame = frame_len(payload_len) as u64;
        let end_frame = frame_len(0) as u64;
        let segment_size = self.shared.options.segment_size;
        if frame + end_frame > segment_size {
            return Err(Error::BatchTooLarge {
                entries: entries.len(),
                entries_max: crate::limits::BATCH_ENTRIES_MAX,
                size: payload_len,
                size_max: (segment_size - end_frame) as usize - FRAME_HEADER_SIZE,
            });
        }
        let tail = st.last_tail();
        if tail.end() + frame + end_frame > tail.size {
            st.end_segment(segment_size);
        }
        let lsn = st.next_lsn;
        let tail = st.last_tail_mut();
        let id = tail.id;
        let before = tail.buf.len();
        let out = tail.buf.appender(frame as usize);
        let start = record::begin_frame(out);
        batch::encode(entries, out);
        record::finish_frame(out, start, WAL_MAGIC, KIND_BATCH, id, lsn);
        let added = (tail.buf.len() - before) as u64;
        st.appended_seq += added;
        let seq = st.appended_seq;
        st.last_tail_mut().seq_end = seq;
        st.unsynced.push_back((lsn, seq));
        st.next_lsn += 1;
        st.stats.batches += 1;
        let tail = st.last_tail();
        let half_full = tail.end() > tail.size / 2;
        drop(st);
        if half_full {
            // Ahead of need, but not at open: a fresh shard's first commits
            // should not share the disk with 64 MiB of zeros.
            self.shared.start_preparing();
        }
        Ok(lsn)
    }

    /// Returns when batch `lsn` (returned by [`Wal::append`]) is durable as
    /// the durability mode defines it: synced (`Sync`), synced by a sync at most
    /// one window after the previous one (`Batch`), or at once (`None`).
    pub async fn commit(&self, lsn: Lsn) -> Result<()> {
        let target = {
            let st = self.shared.state.borrow();
            st.check()?;
            assert!(
                lsn < st.next_lsn,
                "commit of LSN {lsn} never appended (next is {})",
                st.next_lsn
            );
            if self.is_durable(lsn) {
                return Ok(());
            }
            // `unsynced` holds exactly the LSNs in (durable_lsn, next_lsn), in order.
            let front = st
                .unsynced
                .front()
                .expect("an undurable LSN is in the unsynced list")
                .0;
            st.unsynced[(lsn - front) as usize].1
        };
        // Boxed so that a write's future stays small when it never waits
        // (`Durability::None`, or already durable); one allocation is
        // nothing next to the sync this waits for.
        Box::pin(self.shared.drive(target)).await
    }

    /// Finishes the current segment (segment-end record, written and synced),
    /// starts the next one and returns the finished segment's id. Every batch
    /// appended before the call is durable when it returns.
    pub async fn rotate(&self) -> Result<SegmentId> {
        let rotation = self.start_rotation()?;
        self.finish_rotation(rotation).await
    }

    /// The first half of [`Wal::rotate`], with no I/O: ends the current
    /// segment, so every batch appended from now on lands in a later one.
    /// Appends may go on before [`Wal::finish_rotation`] returns.
    pub fn start_rotation(&self) -> Result<Rotation> {
        let mut st = self.shared.state.borrow_mut();
        st.check()?;
        let segment = st.last_tail().id;
        st.end_segment(self.shared.options.segment_size);
        Ok(Rotation {
            segment,
            target: st.appended_seq,
        })
    }

    /// The second half of [`Wal::rotate`]: returns the finished segment's id
    /// once it is written and synced (with every batch appended before
    /// [`Wal::start_rotation`]).
    pub async fn finish_rotation(&self, rotation: Rotation) -> Result<SegmentId> {
        self.shared.drive(rotation.target).await?;
        Ok(rotation.segment)
    }

    /// Declares segments `<= id` no longer needed (their batches are durable
    /// elsewhere): they are renamed to spares for reuse or deleted. `id` must be
    /// a finished segment (returned by [`Wal::rotate`]). Not durable by itself:
    /// the caller records `id` (the manifest's `WalRetiredThrough`) first, and
    /// open retires again whatever reappears.
    pub async fn retire_through(&self, id: SegmentId) -> Result<()> {
        let retired: Vec<(SegmentId, u64)> = {
            let mut st = self.shared.state.borrow_mut();
            st.check()?;
            let first_tail = st.first_tail().id;
            assert!(
                id < first_tail,
                "retiring WAL segment {id}, which is still being written"
            );
            let ids: Vec<SegmentId> = st.live.range(..=id).map(|(&k, _)| k).collect();
            ids.into_iter()
                .filter_map(|k| st.live.remove(&k).map(|size| (k, size)))
                .collect()
        };
        for (k, size) in retired {
            self.shared.retire_file(k, size).await;
        }
        Ok(())
    }

    /// Bytes appended since open (every frame with its header and padding,
    /// segment ends included; not the unused space at a segment's end): what
    /// the engine measures a memtable's span of the WAL with.
    pub fn appended_bytes(&self) -> u64 {
        self.shared.state.borrow().appended_seq
    }

    /// Bytes of the frames replayed at open (live segments up to their last
    /// valid frame), measured as [`appended_bytes`](Self::appended_bytes) is.
    pub fn replayed_bytes(&self) -> u64 {
        self.shared.state.borrow().replayed_bytes
    }

    /// Counters since open.
    pub fn stats(&self) -> WalStats {
        let st = self.shared.state.borrow();
        WalStats {
            live_segments: st.live.len() as u64,
            ..st.stats
        }
    }

    /// Whether [`commit`](Self::commit) of `lsn` would return at once:
    /// always under `Durability::None`, else once a sync covered it.
    pub fn is_durable(&self, lsn: Lsn) -> bool {
        self.shared.options.durability == Durability::None
            || lsn <= self.shared.state.borrow().durable_lsn
    }

    /// Highest LSN known durable.
    pub fn durable_lsn(&self) -> Lsn {
        self.shared.state.borrow().durable_lsn
    }

    /// Writes and syncs everything appended, stops background work and closes
    /// the files. Later calls return [`Error::Closed`]; closing twice is a no-op.
    pub async fn close(&self) -> Result<()> {
        let target = {
            let st = self.shared.state.borrow();
            if st.closed {
                return Ok(());
            }
            st.check()?;
            st.appended_seq
        };
        let synced = self.shared.drive(target).await;
        self.shared.state.borrow_mut().closed = true;
        let flusher = self.flusher.borrow_mut().take();
        if let Some(task) = flusher {
            task.await;
        }
        let preparing = self.shared.state.borrow_mut().preparing.take();
        if let Some(task) = preparing {
            match task.await {
                Ok(path) => self.shared.state.borrow_mut().spares.push(path),
                Err(e) => tracing::warn!(error = %e, "WAL: preparing a spare segment failed"),
            }
        }
        let files: Vec<Rc<DirectFile>> = {
            let mut st = self.shared.state.borrow_mut();
            st.tails.iter_mut().filter_map(|t| t.file.take()).collect()
        };
        for file in files {
            if let Ok(file) = Rc::try_unwrap(file) {
                file.close().await?;
            }
        }
        synced
    }

    /// Test hook: the next segment write fails as if the disk returned EIO.
    #[doc(hidden)]
    pub fn inject_write_fault(&self) {
        self.shared.state.borrow_mut().inject_fault = true;
    }
}

impl Shared {
    fn segment_path(&self, id: SegmentId) -> PathBuf {
        self.dir.join(segment_file_name(id))
    }

    /// Makes everything appended up to `target` (a byte position) durable:
    /// leads a round when no write is in flight, else waits for the leader.
    async fn drive(&self, target: u64) -> Result<()> {
        loop {
            let lead = {
                let mut st = self.state.borrow_mut();
                if let Some(reason) = &st.poisoned {
                    return Err(Error::Poisoned {
                        reason: reason.clone(),
                    });
                }
                if st.durable_seq >= target {
                    return Ok(());
                }
                if st.in_flight {
                    false
                } else {
                    st.in_flight = true;
                    true
                }
            };
            if !lead {
                let id = {
                    let mut st = self.state.borrow_mut();
                    st.next_waiter_id += 1;
                    st.next_waiter_id
                };
                Waiter {
                    shared: self,
                    id,
                    target,
                    done: false,
                }
                .await;
                continue;
            }
            let guard = LeaderGuard { shared: self };
            let result = self.lead(target).await;
            drop(guard);
            result?;
        }
    }

    /// One leader round: waits for the batch window, then writes and syncs
    /// the tails in segment order until everything up to `target` is durable
    /// (and no finished segment is left to close). It stops there even when
    /// more was appended meanwhile: under a steady stream of appends, a round
    /// that chased the end could run for as long as the stream lasted, and a
    /// rotation waiting for it with it. Waiters with later targets lead the
    /// next round.
    async fn lead(&self, target: u64) -> Result<()> {
        // Let every task of this reactor turn append and join this round.
        io::yield_now().await;
        if let Durability::Batch { window } = self.options.durability {
            let last = self.state.borrow().last_sync;
            if let Some(last) = last {
                let due = last + window;
                let now = Instant::now();
                if due > now {
                    io::sleep(due - now).await;
                }
            }
        }
        loop {
            let step = self.next_step(target);
            match step {
                Step::Done => return Ok(()),
                Step::Pop => {
                    let tail = {
                        let mut st = self.state.borrow_mut();
                        let mut tail = st.tails.pop_front();
                        if let Some(tail) = &mut tail {
                            st.recycled_buf = Some(std::mem::take(&mut tail.buf).emptied());
                        }
                        tail
                    };
                    if let Some(file) = tail.and_then(|t| t.file) {
                        if let Ok(file) = Rc::try_unwrap(file) {
                            self.fail_on_error(file.close().await)?;
                        }
                    }
                }
                Step::Acquire { id, size } => {
                    let file = self.fail_on_error(self.acquire_segment(id, size).await)?;
                    let mut st = self.state.borrow_mut();
                    if let Some(tail) = st.tails.iter_mut().find(|t| t.id == id) {
                        tail.file = Some(file);
                    }
                }
                Step::Write {
                    file,
                    offset,
                    buf,
                    len,
                    seq_end,
                } => {
                    let sync = seq_end.is_some();
                    self.fail_on_error(self.write_and_sync(&file, offset, buf, sync).await)?;
                    let mut st = self.state.borrow_mut();
                    st.stats.bytes_written += io::align_up(len) as u64;
                    if sync {
                        st.stats.syncs += 1;
                        st.last_sync = Some(Instant::now());
                    }
                    // Only the leader pops tails, and the leader is us.
                    let tail = st
                        .tails
                        .front_mut()
                        .expect("the written tail is still queued");
                    tail.written = tail.written.max(len);
                    // Keep only the page holding the first byte of the next
                    // write. Released here, after the write, not when it is
                    // issued: a leader dropped mid-round (see `LeaderGuard`)
                    // may have cancelled its write, and the next leader must
                    // find these bytes still in the tail to write them again.
                    let whole = tail.written - tail.written % BLOCK_SIZE;
                    tail.buf.release(whole);
                    tail.buf_start += whole as u64;
                    tail.written -= whole;
                    if let Some(seq_end) = seq_end {
                        st.mark_durable(seq_end);
                    }
                }
            }
        }
    }

    /// The leader's next step towards making `target` durable: `Done` once it
    /// is and only writes would be left (see [`Shared::lead`]).
    fn next_step(&self, target: u64) -> Step {
        let st = self.state.borrow();
        let Some(tail) = st.tails.front() else {
            return Step::Done;
        };
        let Some(file) = &tail.file else {
            return Step::Acquire {
                id: tail.id,
                size: tail.size,
            };
        };
        if tail.buf.len() > tail.written {
            if st.durable_seq >= target {
                return Step::Done;
            }
            // A chunk at a time (see `WAL_WRITE_CHUNK_SIZE`); a chunk is
            // whole blocks, so the next one starts block-aligned.
            let len = tail.buf.len().min(WRITE_CHUNK_SIZE);
            let reaches_end = len == tail.buf.len();
            return Step::Write {
                file: file.clone(),
                offset: tail.buf_start,
                buf: file.alloc_copy(&tail.buf.live()[..len]),
                len,
                seq_end: reaches_end.then_some(tail.seq_end),
            };
        }
        if tail.ended && st.tails.len() > 1 {
            return Step::Pop;
        }
        Step::Done
    }

    async fn write_and_sync(
        &self,
        file: &DirectFile,
        offset: u64,
        buf: AlignedBuf,
        sync: bool,
    ) -> Result<()> {
        let fault = std::mem::take(&mut self.state.borrow_mut().inject_fault);
        if fault {
            return Err(Error::io(
                "write",
                file.path(),
                std::io::Error::other("injected write fault"),
            ));
        }
        file.write_at(buf, offset).await?;
        if sync {
            file.sync().await?;
        }
        Ok(())
    }

    fn fail_on_error<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.state.borrow_mut().poison(e.to_string());
        }
        r
    }

    /// Makes segment `id` exist (a spare renamed into place, or a new file
    /// written full of zeros), durable in the directory, and open for writing.
    async fn acquire_segment(&self, id: SegmentId, size: u64) -> Result<Rc<DirectFile>> {
        let path = self.segment_path(id);
        let spare = self.state.borrow_mut().spares.pop();
        let source = match spare {
            Some(p) => p,
            None => {
                // No zero-filled spare is ready. Waiting for the background fill
                // (paced, in a low-share queue) stalled writers for seconds under
                // load, so allocate this segment with fallocate instead: its
                // commits pay a journal update each until the fill in progress
                // supplies the next spare.
                let name = self.take_spare_name();
                allocate_spare(self.dir.clone(), name, size).await?
            }
        };
        io::rename(&source, &path)?;
        io::sync_dir(&self.dir).await?;
        let file = DirectFile::open_rw(&path).await?;
        self.state.borrow_mut().live.insert(id, size);
        Ok(Rc::new(file))
    }

    fn take_spare_name(&self) -> String {
        let mut st = self.state.borrow_mut();
        // Wrapping: the counter starts from names found on disk, which may be
        // anything up to u64::MAX; a reused name is only a spare replaced.
        st.next_spare = st.next_spare.wrapping_add(1);
        format!("fresh-{:020}.spare", st.next_spare)
    }

    /// Starts preparing a spare segment in the background when none is ready.
    fn start_preparing(&self) {
        let needed = {
            let st = self.state.borrow();
            st.spares.is_empty() && st.preparing.is_none() && !st.closed
        };
        if needed {
            let name = self.take_spare_name();
            let task = io::spawn_background(prepare_spare(
                self.dir.clone(),
                name,
                self.options.segment_size,
                true,
            ));
            self.state.borrow_mut().preparing = Some(task);
        }
    }

    /// Recycles a retired segment as a spare, or deletes it.
    async fn retire_file(&self, id: SegmentId, size: u64) {
        let path = self.segment_path(id);
        let recycle = {
            let st = self.state.borrow();
            size == self.options.segment_size && st.spares.len() < self.options.spare_segments_max
        };
        let result = if recycle {
            let spare = self.dir.join(format!("recycled-{id:020}.spare"));
            io::rename(&path, &spare).map(|()| self.state.borrow_mut().spares.push(spare))
        } else {
            io::remove_file_off_thread(&path).await
        };
        if let Err(e) = result {
            // Harmless: open retires whatever reappears.
            tracing::warn!(error = %e, "WAL: retiring segment {id} failed");
        }
    }
}

/// Writes a spare segment full of zeros under a temporary name, syncs it and
/// renames it to `<dir>/<name>`, pausing between chunks when `paced`.
/// Returns the spare's path.
async fn prepare_spare(dir: PathBuf, name: String, size: u64, paced: bool) -> Result<PathBuf> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = DirectFile::create_new(&tmp).await?;
    let mut offset = 0u64;
    while offset < size {
        let len = (size - offset).min(PREPARE_CHUNK_SIZE as u64) as usize;
        let buf = file.alloc(len);
        file.write_at(buf, offset).await?;
        offset += len as u64;
        if paced {
            // Leave the disk to foreground commits between chunks.
            io::sleep(PREPARE_CHUNK_PAUSE).await;
        }
    }
    file.sync().await?;
    file.close().await?;
    let path = dir.join(name);
    io::rename(&tmp, &path)?;
    Ok(path)
}

/// Creates a spare segment of `size` bytes with fallocate (unwritten extents,
/// read back as zeros) under a temporary name, syncs it and renames it to
/// `<dir>/<name>`. Fast, but each commit into it costs a journal update.
async fn allocate_spare(dir: PathBuf, name: String, size: u64) -> Result<PathBuf> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = DirectFile::create_new(&tmp).await?;
    file.preallocate(size, false).await?;
    file.sync().await?;
    file.close().await?;
    let path = dir.join(name);
    io::rename(&tmp, &path)?;
    Ok(path)
}

/// In [`Durability::None`] mode: writes what was appended every interval.
async fn flush_periodically(weak: Weak<Shared>) {
    loop {
        io::sleep(BACKGROUND_FLUSH_INTERVAL).await;
        let Some(shared) = weak.upgrade() else { return };
        let target = {
            let st = shared.state.borrow();
            if st.closed || st.poisoned.is_some() {
                return;
            }
            if st.appended_seq <= st.durable_seq || st.in_flight {
                continue;
            }
            st.appended_seq
        };
        if let Err(e) = shared.drive(target).await {
            tracing::error!(error = %e, "WAL background flush failed");
            return;
        }
    }
}

/// Releases leadership (also when the leader's future is dropped mid-round)
/// and wakes the next waiters.
struct LeaderGuard<'a> {
    shared: &'a Shared,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.shared.state.borrow_mut();
        st.in_flight = false;
        st.wake_after_round();
    }
}

/// A follower waiting for a leader's round.
struct Waiter<'a> {
    shared: &'a Shared,
    id: u64,
    target: u64,
    done: bool,
}

impl Future for Waiter<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let ready = {
            let st = self.shared.state.borrow();
            st.poisoned.is_some() || st.durable_seq >= self.target || !st.in_flight
        };
        let id = self.id;
        let mut st = self.shared.state.borrow_mut();
        if ready {
            st.waiters.retain(|w| w.id != id);
            drop(st);
            self.done = true;
            return Poll::Ready(());
        }
        match st.waiters.iter_mut().find(|w| w.id == id) {
            Some(slot) => slot.waker.clone_from(cx.waker()),
            None => {
                let target = self.target;
                st.waiters.push(WaiterSlot {
                    id,
                    target,
                    waker: cx.waker().clone(),
                });
            }
        }
        Poll::Pending
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped while waiting: it may have been woken to lead; pass that on.
        let mut st = self.shared.state.borrow_mut();
        st.waiters.retain(|w| w.id != self.id);
        if !st.in_flight {
            st.wake_after_round();
        }
    }
}

struct Listing {
    segments: Vec<(SegmentId, u64)>,
    spares: Vec<PathBuf>,
    next_spare: u64,
}

/// Classifies the files of the WAL directory; removes leftovers of an
/// interrupted preparation, spares of the wrong size and spares beyond
/// `spares_max`.
fn list_wal_dir(dir: &Path, segment_size: u64, spares_max: usize) -> Result<Listing> {
    let mut listing = Listing {
        segments: Vec::new(),
        spares: Vec::new(),
        next_spare: 0,
    };
    for path in io::list_dir(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if name.ends_with(".tmp") {
            io::remove_file(&path)?;
            continue;
        }
        let size = || -> Result<u64> {
            std::fs::metadata(&path)
                .map(|m| m.len())
                .map_err(|e| Error::io("stat", &path, e))
        };
        if let Some(stem) = name.strip_suffix(".spare") {
            if let Some(n) = stem
                .strip_prefix("fresh-")
                .and_then(|n| n.parse::<u64>().ok())
            {
                listing.next_spare = listing.next_spare.max(n);
            }
            if size()? == segment_size && listing.spares.len() < spares_max {
                listing.spares.push(path);
            } else {
                io::remove_file(&path)?;
            }
            continue;
        }
        if let Some(id) = name
            .strip_suffix(".log")
            .filter(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
        {
            // Bounded so that `id + 1` (the next segment) never overflows.
            if id > WAL_SEGMENT_ID_MAX {
                return Err(Error::corruption(
                    &path,
                    0,
                    format!("WAL segment id {id} over the limit {WAL_SEGMENT_ID_MAX}"),
                ));
            }
            listing.segments.push((id, size()?));
            continue;
        }
        if name != io::PROBE_FILE_NAME {
            tracing::warn!(file = %path.display(), "WAL: ignoring an unknown file");
        }
    }
    listing.segments.sort_unstable();
    Ok(listing)
}
