//! Fuzzes `sstable::bloom::decode` with the correct checksum: never a
//! panic; a decoded filter re-encodes to the same bytes and answers queries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringkv_storage::sstable::bloom::decode;

fuzz_target!(|data: &[u8]| {
    let Ok(bloom) = decode(data, crc32c::crc32c(data)) else {
        return;
    };
    let mut out = Vec::new();
    bloom.encode(&mut out);
    assert_eq!(out, data);
    for key in [&b""[..], b"a", b"key", data] {
        let _ = bloom.may_contain(key);
    }
});
