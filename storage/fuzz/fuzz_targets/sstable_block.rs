//! Fuzzes `sstable::block::decode`: any bytes give Ok or Err, never a panic.
//! The first input byte chooses whether the block checksum is fixed up, so
//! the fuzzer gets past the crc32c and exercises the structure checks. A
//! decoded block must answer every accessor consistently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_storage::sstable::block::{decode, BLOCK_HEADER_SIZE};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 && bytes.len() >= BLOCK_HEADER_SIZE {
        let stored_len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        if let Some(covered) = bytes.get(4..BLOCK_HEADER_SIZE.saturating_add(stored_len)) {
            let crc = crc32c::crc32c(covered);
            bytes[0..4].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let Ok(block) = decode(&bytes) else {
        return;
    };
    assert!(block.len() >= 1);
    let mut prev: Option<Vec<u8>> = None;
    for i in 0..block.len() {
        let e = block.entry(i);
        if let Some(p) = &prev {
            assert!(p.as_slice() < e.key, "keys must increase");
        }
        assert_eq!(block.seek(e.key), i);
        assert_eq!(block.get(e.key), Some(e.to_record()));
        prev = Some(e.key.to_vec());
    }
    assert_eq!(Some(block.last_key()), prev.as_deref());
});
