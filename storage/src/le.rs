//! Little-endian integer fields read from a byte slice at a fixed offset,
//! for the formats whose fields sit at known places (WAL record headers, row
//! cache entries). The caller has checked the slice is long enough; a short
//! slice panics (slice indexing), so never pass unchecked input.

/// The `u32` at `b[at..at + 4]`.
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

/// The `u64` at `b[at..at + 8]`.
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}
