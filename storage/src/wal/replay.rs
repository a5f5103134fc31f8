//! Reading one WAL segment back: validates every frame, hands each batch to the
//! caller and decides where the log ends.
//!
//! Rules (see the module doc of `wal` for the format):
//! - A segment that is not the last must end with a valid segment-end frame;
//!   any invalid frame before it is mid-log corruption.
//! - In the last segment, the first invalid frame ends the log (a torn or
//!   never-written tail) unless a valid frame of this segment appears at any
//!   later aligned offset: then the bad frame sits in the middle of the log,
//!   which is corruption, not a crash.
//! - LSNs rise by one per batch across segments; a segment-end frame repeats
//!   the LSN of the segment's last batch.
//! - No LSN exceeds [`LSN_MAX`](crate::limits::LSN_MAX), so the next LSN
//!   never overflows; segment ids are bounded likewise on open.
//!
//! Known limit: a crash can persist the pages of the last in-flight write out
//! of order, leaving a hole followed by a valid (never acknowledged) record.
//! These rules report that as corruption: the safe side, since a bit flip in
//! an acknowledged record looks the same and must not silently drop the
//! acknowledged records after it. Telling the two apart would need each frame
//! to carry the LSN that was durable when it was written.
//!
//! The segment is read through a window of [`READ_CHUNK_SIZE`] bytes, so
//! replaying a 64 MiB segment does not hold it all in memory.

use super::record::{self, Decoded, Invalid, FRAME_ALIGN, FRAME_HEADER_SIZE, WAL_MAGIC};
use super::{batch, BatchEntries, Lsn, SegmentId, KIND_BATCH, KIND_SEGMENT_END};
use crate::error::{Error, Result};
use crate::io::{align_up, DirectFile};
use crate::limits::{BATCH_SIZE_MAX, BLOCK_SIZE, LSN_MAX, WAL_SCAN_CHECKSUM_RATIO_MAX};

/// Bytes read from a segment per read during replay (see
/// [`crate::limits::WAL_READ_CHUNK_SIZE`]).
pub use crate::limits::WAL_READ_CHUNK_SIZE as READ_CHUNK_SIZE;

/// What replaying one segment found.
#[derive(Debug)]
pub(crate) struct SegmentScan {
    /// Offset just past the last valid frame.
    pub good_end: u64,
    /// LSN of the last batch seen so far (this segment or earlier ones).
    pub last_lsn: Option<Lsn>,
    /// Whether the segment ends with a valid segment-end frame.
    pub ended: bool,
}

/// A forward-moving window over a direct file.
pub(crate) struct Window<'f> {
    file: &'f DirectFile,
    size: u64,
    start: u64,
    bytes: Vec<u8>,
}

impl<'f> Window<'f> {
    pub(crate) fn new(file: &'f DirectFile, size: u64) -> Self {
        Window {
            file,
            size,
            start: 0,
            bytes: Vec::new(),
        }
    }

    /// The file's path (for errors).
    pub(crate) fn path(&self) -> &std::path::Path {
        self.file.path()
    }

    /// Bytes `[pos, pos + len)` of the file, fewer at end of file.
    pub(crate) async fn get(&mut self, pos: u64, len: usize) -> Result<&[u8]> {
        let end = pos.saturating_add(len as u64).min(self.size);
        let have_end = self.start + self.bytes.len() as u64;
        if pos < self.start || end > have_end {
            let new_start = pos - pos % BLOCK_SIZE as u64;
            if new_start >= self.start && new_start <= have_end {
                self.bytes.drain(..(new_start - self.start) as usize);
            } else {
                self.bytes.clear();
            }
            self.start = new_start;
            let have_end = self.start + self.bytes.len() as u64;
            let want = end.max(new_start + READ_CHUNK_SIZE as u64);
            let want_end =
                (align_up(want as usize) as u64).min(align_up(self.size as usize) as u64);
            // A short read already hit the end of an unaligned file: nothing more to read.
            let at_eof = have_end % BLOCK_SIZE as u64 != 0;
            if want_end > have_end && !at_eof {
                let piece = self
                    .file
                    .read_at(have_end, (want_end - have_end) as usize)
                    .await?;
                self.bytes.extend_from_slice(&piece);
            }
        }
        let off = (pos.saturating_sub(self.start) as usize).min(self.bytes.len());
        let avail = (self.bytes.len() - off).min(end.saturating_sub(pos) as usize);
        Ok(&self.bytes[off..off + avail])
    }
}

/// Decodes the frame at `pos`, reading as much as it needs.
pub(crate) async fn frame_at<'w>(
    window: &'w mut Window<'_>,
    pos: u64,
    magic: [u8; 4],
    file_id: u64,
    payload_len_max: usize,
) -> Result<Decoded<'w>> {
    // The header tells how long the frame is; only then read the payload.
    let needed = {
        let bytes = window.get(pos, FRAME_HEADER_SIZE).await?;
        match record::decode_frame(bytes, magic, file_id, payload_len_max) {
            Decoded::Incomplete { needed } if bytes.len() == FRAME_HEADER_SIZE => needed,
            _ => FRAME_HEADER_SIZE,
        }
    };
    let bytes = window.get(pos, needed).await?;
    let available = bytes.len() as u64;
    Ok(
        match record::decode_frame(bytes, magic, file_id, payload_len_max) {
            Decoded::Incomplete { needed } => Decoded::Invalid(Invalid::Truncated {
                len: needed as u64,
                available,
            }),
            d => d,
        },
    )
}

/// Offset of the first valid frame of `file_id` at or after `from` (aligned), if any.
///
/// Every candidate whose header names this file costs a checksum over its
/// claimed payload; crafted headers every 32 bytes, each claiming a long
/// payload, would make that quadratic (terabytes for one segment). So the
/// bytes checksummed are capped at [`WAL_SCAN_CHECKSUM_RATIO_MAX`] times the
/// file size, and past the cap the scan gives up with
/// [`Error::Corruption`]: the safe side, as for any bad record followed by
/// something that looks written. Real tails stay far below the cap: their
/// frames do not overlap, and stale frames of a recycled segment carry
/// another file id, which is refused before any checksum.
pub(crate) async fn find_valid_frame(
    window: &mut Window<'_>,
    size: u64,
    from: u64,
    magic: [u8; 4],
    file_id: u64,
    payload_len_max: usize,
) -> Result<Option<u64>> {
    let mut q = from.next_multiple_of(FRAME_ALIGN as u64);
    let budget = size.saturating_mul(WAL_SCAN_CHECKSUM_RATIO_MAX);
    let mut checksummed = 0u64;
    while q + FRAME_HEADER_SIZE as u64 <= size {
        let chunk = window.get(q, READ_CHUNK_SIZE).await?;
        let advance = (chunk.len() / FRAME_ALIGN * FRAME_ALIGN) as u64;
        let candidates = record::magic_candidates(chunk, magic);
        for c in candidates {
            let at = q + c as u64;
            match frame_at(window, at, magic, file_id, payload_len_max).await? {
                Decoded::Frame { .. } => return Ok(Some(at)),
                Decoded::Invalid(Invalid::BadChecksum { .. }) => {
                    let header = window.get(at, FRAME_HEADER_SIZE).await?;
                    let len = header
                        .get(24..28)
                        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64);
                    checksummed = checksummed.saturating_add(len + FRAME_HEADER_SIZE as u64);
                    if checksummed > budget {
                        return Err(Error::corruption(
                            window.path(),
                            at,
                            format!(
                                "gave up looking for a valid record after checksumming \
                                 {checksummed} bytes of candidates in a {size}-byte file"
                            ),
                        ));
                    }
                }
                _ => {}
            }
        }
        if advance == 0 {
            break;
        }
        q += advance;
    }
    Ok(None)
}

/// Replays segment `id` from `file` (`size` bytes), calling `replay` per batch.
/// `prev_lsn` is the LSN of the last batch of the previous segments.
pub(crate) async fn replay_segment(
    file: &DirectFile,
    id: SegmentId,
    size: u64,
    is_last: bool,
    prev_lsn: Option<Lsn>,
    replay: &mut dyn FnMut(Lsn, BatchEntries) -> Result<()>,
) -> Result<SegmentScan> {
    let path = file.path().to_path_buf();
    let mut window = Window::new(file, size);
    let mut pos = 0u64;
    let mut last_lsn = prev_lsn;
    loop {
        if pos + FRAME_HEADER_SIZE as u64 > size {
            if is_last {
                return Ok(SegmentScan {
                    good_end: pos,
                    last_lsn,
                    ended: false,
                });
            }
            return Err(Error::corruption(
                &path,
                pos,
                "segment ends without a segment-end record",
            ));
        }
        let decoded = frame_at(&mut window, pos, WAL_MAGIC, id, BATCH_SIZE_MAX).await?;
        let invalid = match decoded {
            Decoded::Frame {
                kind,
                seq,
                payload,
                len,
            } => match kind {
                // Bounded so that `lsn + 1` never overflows, here or in the writer.
                _ if seq > LSN_MAX => {
                    return Err(Error::corruption(
                        &path,
                        pos,
                        format!("WAL record LSN {seq} over the limit {LSN_MAX}"),
                    ));
                }
                KIND_BATCH => {
                    if let Some(prev) = last_lsn {
                        if prev.checked_add(1) != Some(seq) {
                            return Err(Error::corruption(
                                &path,
                                pos,
                                format!("batch LSN {seq} does not follow LSN {prev}"),
                            ));
                        }
                    }
                    let entries = batch::decode(payload).map_err(|e| {
                        Error::corruption(
                            &path,
                            pos + (FRAME_HEADER_SIZE + e.offset) as u64,
                            format!("bad batch in a valid frame: {}", e.reason),
                        )
                    })?;
                    replay(seq, entries)?;
                    last_lsn = Some(seq);
                    pos += len as u64;
                    continue;
                }
                KIND_SEGMENT_END => {
                    if last_lsn.is_some_and(|prev| prev != seq) {
                        return Err(Error::corruption(
                                &path,
                                pos,
                                format!("segment-end LSN {seq} does not match the last batch LSN {last_lsn:?}"),
                            ));
                    }
                    return Ok(SegmentScan {
                        good_end: pos + len as u64,
                        last_lsn: last_lsn.or(Some(seq)),
                        ended: true,
                    });
                }
                other => {
                    return Err(Error::corruption(
                        &path,
                        pos,
                        format!("unknown WAL record kind {other}"),
                    ));
                }
            },
            Decoded::Invalid(why) => why,
            Decoded::Incomplete { needed } => Invalid::Truncated {
                len: needed as u64,
                available: size - pos,
            },
        };
        if !is_last {
            return Err(Error::corruption(
                &path,
                pos,
                format!("bad record in a finished segment: {invalid}"),
            ));
        }
        let later = find_valid_frame(
            &mut window,
            size,
            pos + FRAME_ALIGN as u64,
            WAL_MAGIC,
            id,
            BATCH_SIZE_MAX,
        )
        .await?;
        if let Some(at) = later {
            return Err(Error::corruption(
                &path,
                pos,
                format!("bad record ({invalid}) followed by a valid record at offset {at}: mid-log corruption"),
            ));
        }
        if !matches!(invalid, Invalid::Zeroed | Invalid::OtherFile { .. }) {
            tracing::warn!(
                file = %path.display(),
                offset = pos,
                reason = %invalid,
                "WAL: cutting a torn tail at the last whole record"
            );
        }
        return Ok(SegmentScan {
            good_end: pos,
            last_lsn,
            ended: false,
        });
    }
}
