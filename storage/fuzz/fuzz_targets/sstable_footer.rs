//! Fuzzes `sstable::footer::decode` and `decode_properties`: never a panic.
//! Input: file size u64 | footer (72 bytes, its checksum fixed up when the
//! first size byte is odd) | properties section (correct checksum). A decoded
//! footer's sections lie within the file; decoded properties re-encode to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_storage::sstable::footer::{decode, decode_properties, FOOTER_SIZE};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 + FOOTER_SIZE {
        return;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&data[..8]);
    let file_size = u64::from_le_bytes(a);
    let mut footer = data[8..8 + FOOTER_SIZE].to_vec();
    let props = &data[8 + FOOTER_SIZE..];
    if file_size & 1 == 1 {
        footer[64..72].copy_from_slice(b"RINGKVST");
        footer[56..60].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&footer[0..60]), &footer[64..72]);
        footer[60..64].copy_from_slice(&crc.to_le_bytes());
    }
    if let Ok(f) = decode(&footer, file_size) {
        let meta_end = file_size - FOOTER_SIZE as u64;
        assert!(f.data_end <= meta_end && f.data_end % 4096 == 0);
        for s in [f.index, f.bloom, f.props] {
            assert!(s.offset >= f.data_end && s.offset + s.len as u64 <= meta_end);
        }
        assert_eq!(f.encode().as_slice(), footer.as_slice());
    }
    if let Ok(p) = decode_properties(props, crc32c::crc32c(props)) {
        let mut out = Vec::new();
        p.encode(&mut out);
        assert_eq!(out, props);
        assert!(p.tombstone_count <= p.entry_count);
    }
});
