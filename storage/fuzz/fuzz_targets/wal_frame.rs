//! Fuzzes `wal::record::decode_frame` (the frame of WAL and manifest
//! records): never a panic; the first byte chooses whether the header's
//! checksum is fixed up (to reach the checks after it) and the payload
//! limit. A decoded frame never claims more bytes than it was given, and
//! candidates from `magic_candidates` are aligned and in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_storage::wal::record::{
    decode_frame, frame_len, magic_candidates, Decoded, FRAME_ALIGN, FRAME_HEADER_SIZE, WAL_MAGIC,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    let file_id = if bytes.len() >= 16 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&bytes[8..16]);
        u64::from_le_bytes(a)
    } else {
        7
    };
    let max = match mode >> 1 & 3 {
        0 => 0,
        1 => 64,
        2 => 1 << 20,
        _ => usize::MAX,
    };
    if mode & 1 == 1 && bytes.len() >= FRAME_HEADER_SIZE {
        bytes[0..4].copy_from_slice(&WAL_MAGIC);
        let len = u32::from_le_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]) as usize;
        if let Some(covered) = bytes.get(8..FRAME_HEADER_SIZE + len) {
            let crc = crc32c::crc32c(covered);
            bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        }
    }
    match decode_frame(&bytes, WAL_MAGIC, file_id, max) {
        Decoded::Frame { payload, len, .. } => {
            assert!(payload.len() <= max);
            assert_eq!(len, frame_len(payload.len()));
            assert!(FRAME_HEADER_SIZE + payload.len() <= bytes.len());
        }
        Decoded::Incomplete { needed } => assert!(needed > bytes.len()),
        Decoded::Invalid(_) => {}
    }
    for c in magic_candidates(&bytes, WAL_MAGIC) {
        assert!(c % FRAME_ALIGN == 0 && c + 4 <= bytes.len());
    }
});
