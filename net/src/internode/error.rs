//! [`InternodeError`]: why an internode frame could not be encoded or decoded.
//! Every variant carries its evidence (sizes and limits, offsets, checksums).

/// An internode frame that cannot be encoded, or bytes that are not a valid
/// frame. After a decode error the connection can no longer be trusted: the
/// receiver closes it (the dialer reconnects and resends what it still needs).
// Variant fields are described in each variant's doc.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InternodeError {
    /// The archive is (or declares to be) larger than the limit. On decode,
    /// this is known from the first four bytes, before the body is buffered;
    /// on encode, nothing was appended.
    #[error("internode archive of {size} bytes at offset {offset} exceeds the limit of {size_max} bytes")]
    TooLarge {
        offset: usize,
        size: usize,
        size_max: usize,
    },
    /// A header field that must be zero is not (a peer speaking another
    /// version, or a stream out of step).
    #[error("internode frame header field at offset {offset} must be 0, got {value:#x}")]
    ReservedNotZero { offset: usize, value: u32 },
    /// The archive's CRC32C does not match the header's.
    #[error("internode frame at offset {offset}: crc32c of the {size} byte archive is {got:#010x}, header says {expected:#010x}")]
    ChecksumMismatch {
        offset: usize,
        size: usize,
        expected: u32,
        got: u32,
    },
    /// A padding byte after the archive is not zero.
    #[error("internode frame padding byte at offset {offset} must be 0, got {value:#04x}")]
    PaddingNotZero { offset: usize, value: u8 },
    /// The buffer handed to the decoder does not start on a 16-byte boundary
    /// (a bug in the caller's buffering: use [`super::FrameBuffer`]).
    #[error("internode receive buffer at address {address:#x} is not 16-byte aligned")]
    Misaligned { address: usize },
    /// The checksum matched but the archive is not a valid `Batch`
    /// (bytecheck refused it): a peer with a bug or another schema.
    #[error("internode archive at offset {offset} ({size} bytes) is invalid: {reason}")]
    InvalidArchive {
        offset: usize,
        size: usize,
        reason: String,
    },
    /// rkyv failed to serialize a batch (not expected: our types have no
    /// fallible serializers). Nothing was appended.
    #[error("internode batch could not be serialized: {reason}")]
    Serialize { reason: String },
}
