//! The checksummed frame every WAL record (and every manifest record) is
//! wrapped in: plain functions over byte slices, no I/O.
//!
//! ```text
//! offset size field
//!      0    4 magic        b"RKWL" for the WAL, b"RKMF" for the manifest
//!      4    4 crc32c       over bytes [8, 32 + payload_len)
//!      8    8 file_id      WAL segment id / manifest number the frame was written for
//!     16    8 seq          WAL: LSN of the batch; manifest: record sequence number
//!     24    4 payload_len  bytes of payload following the header
//!     28    1 kind         meaning depends on the user (see wal and manifest docs)
//!     29    3 zero
//!     32    payload_len    payload
//!      …                   zero padding up to the next multiple of 8
//! ```
//! All integers little endian. Frames start at multiples of [`FRAME_ALIGN`]
//! from the start of their file, so a scan for a later valid frame only has
//! to look at aligned offsets.
//!
//! Why `file_id` is inside the checksum: a recycled WAL segment keeps the bytes
//! of its previous life. Those frames carry the old id, so they never validate
//! in the new file, whatever their checksum.

use crate::le::{u32_at, u64_at};

/// Size of a frame header in bytes.
pub const FRAME_HEADER_SIZE: usize = 32;
/// Alignment of frames within a file.
pub const FRAME_ALIGN: usize = 8;
/// Magic of WAL frames.
pub const WAL_MAGIC: [u8; 4] = *b"RKWL";
/// Magic of manifest frames.
pub const MANIFEST_MAGIC: [u8; 4] = *b"RKMF";

/// Bytes a frame with `payload_len` bytes of payload occupies, padding included.
pub fn frame_len(payload_len: usize) -> usize {
    (FRAME_HEADER_SIZE + payload_len).next_multiple_of(FRAME_ALIGN)
}

/// Starts a frame at the end of `out` (which must end at a multiple of
/// [`FRAME_ALIGN`] relative to the file): reserves the header and returns the
/// frame's start index. Append the payload to `out`, then call [`finish_frame`].
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.resize(start + FRAME_HEADER_SIZE, 0);
    start
}

/// Fills the header of the frame begun at `start` (its payload is everything
/// appended since) and pads it to [`FRAME_ALIGN`].
pub fn finish_frame(
    out: &mut Vec<u8>,
    start: usize,
    magic: [u8; 4],
    kind: u8,
    file_id: u64,
    seq: u64,
) {
    let payload_len = out.len() - start - FRAME_HEADER_SIZE;
    assert!(
        u32::try_from(payload_len).is_ok(),
        "frame payload of {payload_len} bytes"
    );
    let header = &mut out[start..start + FRAME_HEADER_SIZE];
    header[0..4].copy_from_slice(&magic);
    header[8..16].copy_from_slice(&file_id.to_le_bytes());
    header[16..24].copy_from_slice(&seq.to_le_bytes());
    header[24..28].copy_from_slice(&(payload_len as u32).to_le_bytes());
    header[28] = kind;
    header[29..32].fill(0);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    let padded = start + frame_len(payload_len);
    out.resize(padded, 0);
}

/// Why bytes at some offset are not a valid frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// The header is all zeros: the end of written data in a preallocated file.
    Zeroed,
    /// The magic does not match.
    BadMagic,
    /// A well-formed header written for another file (stale bytes of a recycled segment).
    OtherFile { found: u64 },
    /// Reserved bytes are not zero.
    BadReserved,
    /// The payload length is over the limit.
    BadLength { len: u64, len_max: u64 },
    /// The file ends inside the frame.
    Truncated { len: u64, available: u64 },
    /// The checksum does not match.
    BadChecksum { stored: u32, computed: u32 },
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Zeroed => write!(f, "zeroed header (end of written data)"),
            Invalid::BadMagic => write!(f, "bad magic"),
            Invalid::OtherFile { found } => {
                write!(f, "frame written for file id {found} (stale data)")
            }
            Invalid::BadReserved => write!(f, "reserved header bytes are not zero"),
            Invalid::BadLength { len, len_max } => {
                write!(f, "payload length {len} over the limit {len_max}")
            }
            Invalid::Truncated { len, available } => {
                write!(
                    f,
                    "truncated frame: {len} bytes needed, {available} available"
                )
            }
            Invalid::BadChecksum { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
        }
    }
}

/// Result of decoding a frame at the start of a byte slice.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid frame of `len` bytes (padding included).
    Frame {
        kind: u8,
        seq: u64,
        payload: &'a [u8],
        len: usize,
    },
    /// More bytes are needed to decide: at least `needed` from the frame's start.
    Incomplete { needed: usize },
    /// The bytes are not a valid frame.
    Invalid(Invalid),
}

/// Decodes the frame at the start of `bytes`, expecting `magic` and `file_id`
/// and a payload of at most `payload_len_max` bytes. Never panics.
pub fn decode_frame(
    bytes: &[u8],
    magic: [u8; 4],
    file_id: u64,
    payload_len_max: usize,
) -> Decoded<'_> {
    let Some(header) = bytes.get(..FRAME_HEADER_SIZE) else {
        return Decoded::Incomplete {
            needed: FRAME_HEADER_SIZE,
        };
    };
    if header.iter().all(|&b| b == 0) {
        return Decoded::Invalid(Invalid::Zeroed);
    }
    if header[0..4] != magic {
        return Decoded::Invalid(Invalid::BadMagic);
    }
    let found = u64_at(header, 8);
    if found != file_id {
        return Decoded::Invalid(Invalid::OtherFile { found });
    }
    if header[29..32] != [0, 0, 0] {
        return Decoded::Invalid(Invalid::BadReserved);
    }
    let payload_len = u64::from(u32_at(header, 24));
    if payload_len > payload_len_max as u64 {
        return Decoded::Invalid(Invalid::BadLength {
            len: payload_len,
            len_max: payload_len_max as u64,
        });
    }
    // Checked: `payload_len_max` may be `usize::MAX` and usize may be 32 bits.
    let Some(end) = usize::try_from(payload_len)
        .ok()
        .and_then(|len| len.checked_add(FRAME_HEADER_SIZE))
    else {
        return Decoded::Invalid(Invalid::BadLength {
            len: payload_len,
            len_max: payload_len_max as u64,
        });
    };
    let payload_len = end - FRAME_HEADER_SIZE;
    let Some(covered) = bytes.get(8..end) else {
        return Decoded::Incomplete { needed: end };
    };
    let stored = u32_at(header, 4);
    let computed = crc32c::crc32c(covered);
    if stored != computed {
        return Decoded::Invalid(Invalid::BadChecksum { stored, computed });
    }
    Decoded::Frame {
        kind: header[28],
        seq: u64_at(header, 16),
        payload: &bytes[FRAME_HEADER_SIZE..end],
        len: frame_len(payload_len),
    }
}

/// Offsets (relative to `bytes`, multiples of [`FRAME_ALIGN`]) at which
/// `magic` appears: candidates for a valid frame. `bytes` must start at a
/// multiple of [`FRAME_ALIGN`] relative to its file.
pub fn magic_candidates(bytes: &[u8], magic: [u8; 4]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= bytes.len() {
        if bytes[i..i + 4] == magic {
            out.push(i);
        }
        i += FRAME_ALIGN;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let start = begin_frame(&mut out);
        out.extend_from_slice(payload);
        finish_frame(&mut out, start, WAL_MAGIC, 1, 7, 42);
        out
    }

    #[test]
    fn frame_round_trips_and_is_aligned() {
        for n in [0usize, 1, 7, 8, 100, 5000] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let bytes = sample(&payload);
            assert_eq!(bytes.len(), frame_len(n));
            assert_eq!(bytes.len() % FRAME_ALIGN, 0);
            match decode_frame(&bytes, WAL_MAGIC, 7, 1 << 20) {
                Decoded::Frame {
                    kind,
                    seq,
                    payload: p,
                    len,
                } => {
                    assert_eq!((kind, seq, p, len), (1, 42, &payload[..], bytes.len()));
                }
                other => panic!("n={n}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_bit_flip_is_invalid() {
        let bytes = sample(b"hello world, a payload of some length");
        let end = FRAME_HEADER_SIZE + 37;
        for cut in 0..end {
            assert!(
                matches!(
                    decode_frame(&bytes[..cut], WAL_MAGIC, 7, 1 << 20),
                    Decoded::Incomplete { .. }
                ),
                "cut {cut}"
            );
        }
        for bit in 0..end * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            match decode_frame(&b, WAL_MAGIC, 7, 1 << 20) {
                Decoded::Invalid(_) | Decoded::Incomplete { .. } => {}
                Decoded::Frame { .. } => panic!("bit {bit} flipped still validates"),
            }
        }
    }

    #[test]
    fn frame_of_another_file_or_magic_is_rejected() {
        let bytes = sample(b"x");
        assert_eq!(
            decode_frame(&bytes, WAL_MAGIC, 8, 1 << 20),
            Decoded::Invalid(Invalid::OtherFile { found: 7 })
        );
        assert_eq!(
            decode_frame(&bytes, MANIFEST_MAGIC, 7, 1 << 20),
            Decoded::Invalid(Invalid::BadMagic)
        );
        assert_eq!(
            decode_frame(&[0u8; 64], WAL_MAGIC, 7, 1 << 20),
            Decoded::Invalid(Invalid::Zeroed)
        );
    }

    #[test]
    fn oversized_length_is_rejected_before_reading_payload() {
        let mut bytes = sample(b"abc");
        bytes[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_frame(&bytes, WAL_MAGIC, 7, 1024),
            Decoded::Invalid(Invalid::BadLength { .. })
        ));
    }

    #[test]
    fn the_largest_length_with_an_unbounded_limit_is_incomplete_not_an_overflow() {
        // `FRAME_HEADER_SIZE + len` is computed checked (it overflows on 32-bit).
        let mut bytes = sample(b"abc");
        bytes[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_frame(&bytes, WAL_MAGIC, 7, usize::MAX),
            Decoded::Incomplete {
                needed: FRAME_HEADER_SIZE + u32::MAX as usize
            }
        );
    }

    #[test]
    fn magic_candidates_are_aligned() {
        let mut bytes = sample(b"a");
        bytes.extend_from_slice(&sample(b"b"));
        assert_eq!(magic_candidates(&bytes, WAL_MAGIC), vec![0, frame_len(1)]);
    }
}
