//! One manifest log file: appending records (one O_DIRECT write of the pages
//! from the first unwritten byte, then fdatasync) and replaying them.
//!
//! Frames are the WAL's ([`crate::wal::record`]) with magic `RKMF`,
//! `file_id` = the manifest number and `seq` = the record's number (1, 2, …).
//! Record 1 is a snapshot (kind [`KIND_SNAPSHOT`]), every later one a group of
//! edits (kind [`KIND_EDITS`]). After the last record the file holds zeros up
//! to the end of its last page.
//!
//! Rewriting the last page is safe against a torn write: its earlier bytes are
//! rewritten with the same values, so whichever sectors land, only the new
//! record can be damaged.

use super::record::{apply_record, decode_edits, encode_edits};
use super::{ManifestEdit, ManifestState};
use crate::error::{Error, Result};
use crate::io::DirectFile;
use crate::limits::BLOCK_SIZE;
use crate::wal::record::{self, Decoded, Invalid, FRAME_ALIGN, MANIFEST_MAGIC};
use crate::wal::replay::{find_valid_frame, frame_at, Window};

/// Frame kind of the first record: the whole state.
pub const KIND_SNAPSHOT: u8 = 1;
/// Frame kind of every later record: one atomic group of edits.
pub const KIND_EDITS: u8 = 2;
// The limit lives in `crate::limits`; re-exported at its old path.
pub use crate::limits::MANIFEST_RECORD_SIZE_MAX;

/// An open manifest log being appended to.
pub(crate) struct LogWriter {
    file: DirectFile,
    number: u64,
    /// File offset of `buf[0]`, a multiple of the block size.
    buf_start: u64,
    /// Bytes from `buf_start` to the end of the last record.
    buf: Vec<u8>,
    next_seq: u64,
}

impl LogWriter {
    /// A writer for an empty new file.
    pub(crate) fn new(file: DirectFile, number: u64) -> Self {
        LogWriter {
            file,
            number,
            buf_start: 0,
            buf: Vec::new(),
            next_seq: 1,
        }
    }

    /// Bytes of records in the file.
    pub(crate) fn size(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    /// The manifest number this log belongs to.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// Appends one record and makes it durable (write + fdatasync). On error the
    /// in-memory tail is restored, but the file's state is unknown: the caller
    /// must stop using this log.
    pub(crate) async fn append(&mut self, kind: u8, edits: &[ManifestEdit]) -> Result<()> {
        let before = self.buf.len();
        let start = record::begin_frame(&mut self.buf);
        encode_edits(edits, &mut self.buf);
        let payload_len = self.buf.len() - start - record::FRAME_HEADER_SIZE;
        assert!(
            payload_len <= MANIFEST_RECORD_SIZE_MAX,
            "manifest record of {payload_len} bytes over the limit {MANIFEST_RECORD_SIZE_MAX}"
        );
        record::finish_frame(
            &mut self.buf,
            start,
            MANIFEST_MAGIC,
            kind,
            self.number,
            self.next_seq,
        );
        let mut page = self.file.alloc(self.buf.len());
        page.as_bytes_mut()[..self.buf.len()].copy_from_slice(&self.buf);
        let written = async {
            self.file.write_at(page, self.buf_start).await?;
            self.file.sync().await
        }
        .await;
        if let Err(e) = written {
            self.buf.truncate(before);
            return Err(e);
        }
        self.next_seq += 1;
        let whole = self.buf.len() - self.buf.len() % BLOCK_SIZE;
        self.buf.drain(..whole);
        self.buf_start += whole as u64;
        Ok(())
    }

    /// Closes the file.
    pub(crate) async fn close(self) -> Result<()> {
        self.file.close().await
    }
}

/// A damaged last record that replay cut off as a torn write.
#[derive(Debug, Clone)]
pub struct TornTail {
    /// The manifest log.
    pub file: std::path::PathBuf,
    /// Where the cut record starts.
    pub offset: u64,
    /// Why it did not decode.
    pub reason: String,
}

/// What [`replay`] recovered from one log.
pub(crate) struct Replayed {
    pub(crate) state: ManifestState,
    /// Appends after the last good record.
    pub(crate) writer: LogWriter,
    /// Set when a damaged (not merely unwritten) last record was cut.
    pub(crate) torn_tail: Option<TornTail>,
}

/// Replays manifest `number` from `file` (opened read-write) and returns its
/// state and a writer that appends after the last good record. A torn tail is
/// cut (logged, and reported in [`Replayed::torn_tail`]); a bad record
/// followed by a valid one, a missing first snapshot, or edits that
/// contradict the state are [`Error::Corruption`].
pub(crate) async fn replay(file: DirectFile, number: u64) -> Result<Replayed> {
    let path = file.path().to_path_buf();
    let size = file.size().await?;
    let mut window = Window::new(&file, size);
    let mut state = ManifestState::default();
    let mut pos = 0u64;
    let mut seq = 0u64;
    let mut torn_tail = None;
    loop {
        let decoded = frame_at(
            &mut window,
            pos,
            MANIFEST_MAGIC,
            number,
            MANIFEST_RECORD_SIZE_MAX,
        )
        .await?;
        let invalid = match decoded {
            Decoded::Frame {
                kind,
                seq: s,
                payload,
                len,
            } => {
                let expected_kind = if seq == 0 { KIND_SNAPSHOT } else { KIND_EDITS };
                if kind != expected_kind || s != seq + 1 {
                    return Err(Error::corruption(
                        &path,
                        pos,
                        format!("record {s} of kind {kind} where record {} of kind {expected_kind} belongs", seq + 1),
                    ));
                }
                let edits = decode_edits(payload).map_err(|(at, reason)| {
                    Error::corruption(&path, pos + (record::FRAME_HEADER_SIZE + at) as u64, reason)
                })?;
                apply_record(&mut state, &edits)
                    .map_err(|reason| Error::corruption(&path, pos, reason))?;
                seq = s;
                pos += len as u64;
                continue;
            }
            Decoded::Invalid(why) => why,
            Decoded::Incomplete { needed } => Invalid::Truncated {
                len: needed as u64,
                available: size.saturating_sub(pos),
            },
        };
        let later = find_valid_frame(
            &mut window,
            size,
            pos + FRAME_ALIGN as u64,
            MANIFEST_MAGIC,
            number,
            MANIFEST_RECORD_SIZE_MAX,
        )
        .await?;
        if let Some(at) = later {
            return Err(Error::corruption(
                &path,
                pos,
                format!("bad record ({invalid}) followed by a valid record at offset {at}: mid-log corruption"),
            ));
        }
        if seq == 0 {
            return Err(Error::corruption(
                &path,
                pos,
                format!("no valid snapshot record: {invalid}"),
            ));
        }
        if invalid != Invalid::Zeroed && !matches!(invalid, Invalid::Truncated { available: 0, .. })
        {
            tracing::warn!(file = %path.display(), offset = pos, reason = %invalid, "manifest: cutting a torn tail");
            torn_tail = Some(TornTail {
                file: path.clone(),
                offset: pos,
                reason: invalid.to_string(),
            });
        }
        break;
    }
    drop(window);
    let buf_start = pos - pos % BLOCK_SIZE as u64;
    let mut buf = Vec::new();
    if pos > buf_start {
        let page = file.read_at(buf_start, BLOCK_SIZE).await?;
        let keep = (pos - buf_start) as usize;
        buf.extend_from_slice(&page[..keep.min(page.len())]);
        buf.resize(keep, 0);
    }
    Ok(Replayed {
        state,
        writer: LogWriter {
            file,
            number,
            buf_start,
            buf,
            next_seq: seq + 1,
        },
        torn_tail,
    })
}
