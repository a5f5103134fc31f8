//! Encoding and decoding of one internode frame (layout drawn in the parent
//! module). The encoder serializes straight into the caller's `Vec` (no
//! intermediate buffer); the decoder validates length, reserved fields, CRC32C,
//! padding and then the archive (bytecheck) before handing out a reference
//! into the caller's buffer.

use rkyv::rancor;
use rkyv::ser::{Positional, Writer};

use super::error::InternodeError;
use super::{ArchivedBatch, Batch, FRAME_ALIGNMENT, FRAME_HEADER_SIZE};
use crate::limits::INTERNODE_FRAME_SIZE_MAX;

/// An rkyv writer that appends to a `Vec` and reports positions relative to
/// the start of the archive, so rkyv's alignment padding is computed for the
/// archive's own start (which the receiver places on a 16-byte boundary),
/// whatever `out` held before.
struct ArchiveWriter<'a> {
    out: &'a mut Vec<u8>,
    base: usize,
}

impl Positional for ArchiveWriter<'_> {
    fn pos(&self) -> usize {
        self.out.len() - self.base
    }
}

impl<E> Writer<E> for ArchiveWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), E> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

/// The number of zero bytes that follow an archive of `len` bytes.
fn padding_for(len: usize) -> usize {
    (FRAME_ALIGNMENT - len % FRAME_ALIGNMENT) % FRAME_ALIGNMENT
}

/// Appends one frame holding `batch` to `out` and returns the frame's size
/// (a multiple of 16). Err only if the archive exceeds
/// [`INTERNODE_FRAME_SIZE_MAX`] (then `out` is left as it was).
pub fn encode_frame(batch: &Batch, out: &mut Vec<u8>) -> Result<usize, InternodeError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_SIZE]);
    let base = out.len();
    let written =
        rkyv::api::high::to_bytes_in::<_, rancor::Error>(batch, ArchiveWriter { out, base });
    if let Err(e) = written {
        out.truncate(start);
        return Err(InternodeError::Serialize {
            reason: e.to_string(),
        });
    }
    let archive_len = out.len() - base;
    if archive_len > INTERNODE_FRAME_SIZE_MAX {
        out.truncate(start);
        return Err(InternodeError::TooLarge {
            offset: start,
            size: archive_len,
            size_max: INTERNODE_FRAME_SIZE_MAX,
        });
    }
    let crc = crc32c::crc32c(&out[base..]);
    // archive_len <= INTERNODE_FRAME_SIZE_MAX < u32::MAX (checked in limits.rs).
    out[start..start + 4].copy_from_slice(&(archive_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.resize(out.len() + padding_for(archive_len), 0);
    let frame_len = out.len() - start;
    assert!(frame_len % FRAME_ALIGNMENT == 0);
    Ok(frame_len)
}

fn header_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// The first complete frame in `buf` (which must start on a 16-byte
/// boundary, unless empty): validated (length limit, reserved fields, CRC32C, padding, rkyv
/// bytecheck) and read in place, with the frame's size (consume that many
/// bytes for the next frame).
///
/// `Ok(None)`: `buf` holds only part of a frame (so far valid); read more.
/// An archive length over [`INTERNODE_FRAME_SIZE_MAX`] is refused from the
/// first four bytes. `Err`: the peer is broken or hostile, close the
/// connection; the error names what was wrong and its offset in `buf`.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(&ArchivedBatch, usize)>, InternodeError> {
    let address = buf.as_ptr() as usize;
    // An empty slice's address is meaningless (often dangling): nothing to read.
    if !buf.is_empty() && address % FRAME_ALIGNMENT != 0 {
        return Err(InternodeError::Misaligned { address });
    }
    if buf.len() < 4 {
        return Ok(None);
    }
    let archive_len = header_u32(buf, 0) as usize;
    if archive_len > INTERNODE_FRAME_SIZE_MAX {
        return Err(InternodeError::TooLarge {
            offset: 0,
            size: archive_len,
            size_max: INTERNODE_FRAME_SIZE_MAX,
        });
    }
    if buf.len() < FRAME_HEADER_SIZE {
        return Ok(None);
    }
    for at in [8, 12] {
        let value = header_u32(buf, at);
        if value != 0 {
            return Err(InternodeError::ReservedNotZero { offset: at, value });
        }
    }
    let archive_end = FRAME_HEADER_SIZE + archive_len;
    let frame_len = archive_end + padding_for(archive_len);
    if buf.len() < frame_len {
        return Ok(None);
    }
    let archive = &buf[FRAME_HEADER_SIZE..archive_end];
    let expected = header_u32(buf, 4);
    let got = crc32c::crc32c(archive);
    if got != expected {
        return Err(InternodeError::ChecksumMismatch {
            offset: FRAME_HEADER_SIZE,
            size: archive_len,
            expected,
            got,
        });
    }
    if let Some(i) = buf[archive_end..frame_len].iter().position(|&b| b != 0) {
        return Err(InternodeError::PaddingNotZero {
            offset: archive_end + i,
            value: buf[archive_end + i],
        });
    }
    let batch = rkyv::access::<ArchivedBatch, rancor::Error>(archive).map_err(|e| {
        InternodeError::InvalidArchive {
            offset: FRAME_HEADER_SIZE,
            size: archive_len,
            reason: e.to_string(),
        }
    })?;
    Ok(Some((batch, frame_len)))
}
